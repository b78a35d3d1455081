"""Measurements of ``benchmarks/gpu_check.py`` (CUDA platform vs Reference, MD speed).

The systems are the project's benchmark cases (:mod:`openmm_ani.benchmark.systems`, the same names
everywhere): ``pxylene``, ``alanine-water``, ``water-2.5k`` and ``t4-mlmm``, with openmm-ml's own ANI
(``MLPotential("ani1ccx")``) as the speed peer where it is installed.

Energies are kJ/mol, forces kJ/mol/nm, times ms/step of 1 fs Langevin MD.
"""

import time
from typing import Any, Dict, List, Tuple

import numpy as np

from openmm_ani.benchmark.systems import Case, build_case, openmmml_available, openmmtools_data  # noqa: F401

#: Parity tolerances (energy kJ/mol, force relative to the largest force), as the CPU tests use.
TOLERANCES: Dict[str, Tuple[float, float]] = {"double": (1e-6, 1e-9), "single": (0.25, 5e-4)}
TIMESTEP_FS = 1.0
#: The cases of the GPU check (names of :data:`openmm_ani.benchmark.systems.CASES`).
GPU_CASES: Tuple[str, ...] = ("pxylene", "alanine-water", "water-2.5k", "t4-mlmm")
#: The box case, whose Reference-platform double run takes minutes on 2 cores (built only in a dry run).
BOX_CASE = "water-2.5k"


def peer_available() -> bool:
    """Whether openmm-ml with TorchANI (its ANI backend) can be the peer."""
    return openmmml_available()


def platform_properties(platform: str, precision: str) -> Dict[str, str]:
    """Context properties: the platform's precision setting where it has one."""
    if platform in ("CUDA", "OpenCL"):
        return {"Precision": precision}
    return {}


#: Force group the parity step puts the ANI forces in (MM forces stay in group 0).
ANI_GROUP = 1


def isolate_ani(system: Any) -> Any:
    """Put the ANI forces (named "ANI ...") of ``system`` in :data:`ANI_GROUP`; returns ``system``."""
    for force in system.getForces():
        if force.getName().startswith("ANI"):
            force.setForceGroup(ANI_GROUP)
    return system


def energy_forces(system: Any, case: Case, platform: str, precision: str) -> Tuple[float, np.ndarray]:
    """ANI energy (kJ/mol) and ANI forces ``[N, 3]`` (kJ/mol/nm) of ``case`` on ``platform``.

    Only :data:`ANI_GROUP` is evaluated: the MM part of an ML/MM system differs between platforms
    by their own precision (PME in single precision on CPU), which is not what parity checks.
    """
    import openmm
    from openmm import unit

    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform),
                             platform_properties(platform, precision))
    box = case.topology.getPeriodicBoxVectors()
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(case.positions)
    state = context.getState(getEnergy=True, getForces=True, groups={ANI_GROUP})
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    del context
    return energy, np.asarray(forces)


def parity(case: Case, platform: str, precision: str) -> Dict[str, Any]:
    """``platform`` against the Reference platform for one case and precision, with the CPU tests' tolerances."""
    system = isolate_ani(case.build(precision))
    energy, forces = energy_forces(system, case, platform, precision)
    ref_energy, ref_forces = energy_forces(system, case, "Reference", precision)
    tol_e, tol_f = TOLERANCES[precision]
    scale = float(np.abs(ref_forces).max())
    d_energy = abs(energy - ref_energy)
    d_force = float(np.abs(forces - ref_forces).max())
    ok = d_energy <= tol_e * case.energy_scale and d_force <= tol_f * scale
    return {
        "case": case.name, "platform": platform, "precision": precision, "atoms": case.topology.getNumAtoms(),
        "energy": energy, "reference_energy": ref_energy, "energy_difference": d_energy,
        "max_force_difference": d_force, "max_force": scale, "energy_tolerance": tol_e * case.energy_scale,
        "force_tolerance": tol_f * scale, "ok": bool(ok),
    }


def md_speed(system: Any, case: Case, platform: str, precision: str, steps: int) -> float:
    """ms/step of Langevin MD (300 K, 1/ps, 1 fs) after 20 warm-up steps."""
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, TIMESTEP_FS * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform),
                             platform_properties(platform, precision))
    box = case.topology.getPeriodicBoxVectors()
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(case.positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(20)
    context.getState(getEnergy=True)
    start = time.perf_counter()
    integrator.step(steps)
    context.getState(getEnergy=True)  # waits for the device
    elapsed = time.perf_counter() - start
    del context, integrator
    return 1000.0 * elapsed / steps


def speed_rows(case: Case, platform: str, steps: int, with_peer: bool) -> List[Dict[str, Any]]:
    """MD speed of openmm-ani (single precision) and, when available, openmm-ml on ``platform``."""
    rows = []
    for engine, build in case.engines("single", with_peer).items():
        ms = md_speed(build(), case, platform, "single", steps)
        rows.append({"case": case.name, "engine": engine, "platform": platform, "ms_per_step": ms,
                     "ns_per_day": TIMESTEP_FS * 1e-6 / (ms * 1e-3 / 86400.0)})
    return rows
