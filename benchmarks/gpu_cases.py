"""Systems and measurements of ``benchmarks/gpu_check.py`` (CUDA platform vs Reference, MD speed).

Each case builds one OpenMM System from openmmtools' data files with the public openmm-ani API
(``ANIPotential.createSystem`` / ``createMixedSystem``) and, where openmm-ml is installed, the same
system with openmm-ml's own ANI (``MLPotential("ani1ccx")``) as the speed peer:

* ``pxylene``: p-xylene (18 atoms) in vacuum, pure ANI-1ccx;
* ``alanine-water``: alanine dipeptide with ANI-1ccx in TIP3P water (MM, PME), 2269 atoms;
* ``waterbox``: a periodic box of TIP3P-geometry waters (about 2.5k atoms), pure ANI-1ccx;
* ``t4-mlmm``: T4 lysozyme L99A (Amber, GB-OBC2) with p-xylene by ANI-1ccx (2621 atoms).

Energies are kJ/mol, forces kJ/mol/nm, times ms/step of 1 fs Langevin MD.
"""

import contextlib
import importlib.util
import io
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

#: Parity tolerances (energy kJ/mol, force relative to the largest force), as the CPU tests use.
TOLERANCES: Dict[str, Tuple[float, float]] = {"double": (1e-6, 1e-9), "single": (0.25, 5e-4)}
#: Waters in the periodic ANI box (3 atoms each).
WATERBOX_WATERS = 830
TIMESTEP_FS = 1.0


@dataclass
class Case:
    """A test system: topology, positions, and a System builder per engine and precision."""

    name: str
    topology: Any
    positions: Any
    build: Callable[[str], Any]
    peer: Optional[Callable[[], Any]] = None
    #: Scale of the energy tolerance (periodic boxes have |E| ~ 20x a molecule's).
    energy_scale: float = 1.0


def openmmtools_data(*parts: str) -> str:
    """Path of a file in openmmtools' data folder."""
    spec = importlib.util.find_spec("openmmtools")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("openmmtools is not installed: its data files are needed")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", *parts)


def _openmmml() -> Any:
    from openmm_ani.openmm.openmmtorch import import_openmmtorch

    import_openmmtorch()
    with contextlib.redirect_stdout(io.StringIO()):
        import openmmml
    return openmmml


def peer_available() -> bool:
    """Whether openmm-ml with TorchANI (its ANI backend) can be the peer."""
    return importlib.util.find_spec("openmmml") is not None and importlib.util.find_spec("torchani") is not None


def pxylene() -> Case:
    from openmm import app

    from openmm_ani import ANIPotential

    pdb = app.PDBFile(openmmtools_data("T4-lysozyme-L99A-implicit", "ligand.pdb"))
    return Case(
        "pxylene", pdb.topology, pdb.positions,
        lambda precision: ANIPotential("ani1ccx", precision=precision).createSystem(pdb.topology),
        lambda: _openmmml().MLPotential("ani1ccx").createSystem(pdb.topology),
    )


def alanine_water() -> Case:
    from openmm import app, unit

    from openmm_ani import ANIPotential

    prmtop = app.AmberPrmtopFile(openmmtools_data("alanine-dipeptide-explicit", "alanine-dipeptide.prmtop"))
    crd = app.AmberInpcrdFile(openmmtools_data("alanine-dipeptide-explicit", "alanine-dipeptide.crd"))
    topology = prmtop.topology
    topology.setPeriodicBoxVectors(crd.boxVectors)
    solute = [a.index for a in topology.atoms() if a.residue.name not in ("HOH", "WAT")]

    def mm() -> Any:
        system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds)
        system.setDefaultPeriodicBoxVectors(*crd.boxVectors)
        return system

    return Case(
        "alanine-water", topology, crd.positions,
        lambda precision: ANIPotential("ani1ccx", precision=precision).createMixedSystem(topology, mm(), solute),
        lambda: _openmmml().MLPotential("ani1ccx").createMixedSystem(topology, mm(), solute),
    )


def waterbox(waters: int = WATERBOX_WATERS) -> Case:
    from openmm import app

    from openmm_ani import ANIPotential

    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), model="tip3p", numAdded=waters, neutralize=False)
    topology = modeller.topology
    return Case(
        "waterbox", topology, modeller.positions,
        lambda precision: ANIPotential("ani1ccx", precision=precision).createSystem(topology),
        lambda: _openmmml().MLPotential("ani1ccx").createSystem(topology),
        energy_scale=20.0,
    )


def t4_mlmm() -> Case:
    from openmm import app, unit

    from openmm_ani import ANIPotential

    prmtop = app.AmberPrmtopFile(openmmtools_data("T4-lysozyme-L99A-implicit", "complex.prmtop"))
    positions = app.AmberInpcrdFile(openmmtools_data("T4-lysozyme-L99A-implicit", "complex.crd")).positions
    topology = prmtop.topology
    ligand = [a.index for a in topology.atoms() if a.residue.name == "TMP"]

    def mm() -> Any:
        return prmtop.createSystem(nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=1.5 * unit.nanometer,
                                   constraints=app.HBonds, implicitSolvent=app.OBC2)

    return Case(
        "t4-mlmm", topology, positions,
        lambda precision: ANIPotential("ani1ccx", precision=precision).createMixedSystem(topology, mm(), ligand),
        lambda: _openmmml().MLPotential("ani1ccx").createMixedSystem(topology, mm(), ligand),
    )


CASES: Dict[str, Callable[[], Case]] = {
    "pxylene": pxylene, "alanine-water": alanine_water, "waterbox": waterbox, "t4-mlmm": t4_mlmm,
}


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
    engines: List[Tuple[str, Callable[[], Any]]] = [("openmm-ani", lambda: case.build("single"))]
    if with_peer and case.peer is not None:
        engines.append(("openmm-ml", case.peer))
    for engine, build in engines:
        ms = md_speed(build(), case, platform, "single", steps)
        rows.append({"case": case.name, "engine": engine, "platform": platform, "ms_per_step": ms,
                     "ns_per_day": TIMESTEP_FS * 1e-6 / (ms * 1e-3 / 86400.0)})
    return rows
