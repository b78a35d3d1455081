"""``openmm-ani benchmark``: MD speed (ms/step, ns/day) of reference systems on the CPU platform.

Cases (all Langevin, 1 fs, OpenMM CPU platform):

* ``pxylene`` — p-xylene (18 atoms, from openmmtools' T4 lysozyme L99A ligand) in vacuum,
  pure ANI-1ccx ensemble;
* ``alanine-water`` — alanine dipeptide in explicit TIP3P water (openmmtools data, PME), the
  solute with ANI and the water MM (mechanical embedding), plus the MM-only time of the
  same system;
* ``waterbox`` — a periodic box of 85 waters (255 atoms), pure ANI.

Each case is timed single-threaded (``torch.set_num_threads(1)``, CPU platform
``Threads=1``) and with the default threads; when openmm-ml with TorchANI is installed the
same systems through ``openmmml.MLPotential("ani1ccx")`` are timed in the same run and the
ratio (openmm-ml time / openmm-ani time) is printed, along with the energy difference at
the starting configuration (openmm-ml 1.8's ANI forces are 10x too small, so only energies
are compared).
"""

import contextlib
import importlib
import importlib.util
import io
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

import torch

CASES: Tuple[str, ...] = ("pxylene", "alanine-water", "waterbox")
TIMESTEP_FS = 1.0
WARMUP_STEPS = 10


@dataclass
class Timing:
    """One timed run."""

    case: str
    engine: str
    threads: str
    ms_per_step: float
    energy: float

    @property
    def ns_per_day(self) -> float:
        """Simulated ns per day of wall time at :data:`TIMESTEP_FS`."""
        return TIMESTEP_FS * 1e-6 / (self.ms_per_step * 1e-3 / 86400.0)


@dataclass
class Case:
    """A benchmark system: topology, positions and system builders per engine."""

    name: str
    topology: Any
    positions: Any
    builders: Dict[str, Callable[[], Any]]


def openmmtools_data(*parts: str) -> str:
    """Path of a file in openmmtools' data folder (without importing openmmtools)."""
    spec = importlib.util.find_spec("openmmtools")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("openmmtools is not installed: its data files are needed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"openmmtools data file not found: {path}")
    return path


def quiet_import(name: str) -> Any:
    """Import a module whose import prints banners (pymbar via openmmtools) without the noise."""
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module(name)


def openmmml_available() -> bool:
    """Whether openmm-ml and TorchANI (its ANI backend) are importable."""
    return importlib.util.find_spec("openmmml") is not None and importlib.util.find_spec("torchani") is not None


def mixed_available() -> bool:
    """Whether :mod:`openmm_ani.mixed` (ML/MM systems) exists in this installation."""
    return importlib.util.find_spec("openmm_ani.mixed") is not None


def pxylene_case(precision: str, with_openmmml: bool) -> Case:
    """p-xylene in vacuum, pure ANI."""
    from openmm import app

    from ..openmm import ANIPotential

    pdb = app.PDBFile(openmmtools_data("T4-lysozyme-L99A-implicit", "ligand.pdb"))
    builders: Dict[str, Callable[[], Any]] = {
        "openmm-ani": lambda: ANIPotential("ani1ccx", precision=precision).createSystem(pdb.topology)
    }
    if with_openmmml:
        builders["openmm-ml"] = lambda: _openmmml().MLPotential("ani1ccx").createSystem(pdb.topology)
    return Case("pxylene", pdb.topology, pdb.positions, builders)


def alanine_water_case(precision: str, with_openmmml: bool) -> Case:
    """Alanine dipeptide (ANI) in explicit water (MM, PME)."""
    from openmm import app, unit

    from ..openmm import ANIPotential

    prmtop = app.AmberPrmtopFile(openmmtools_data("alanine-dipeptide-explicit", "alanine-dipeptide.prmtop"))
    crd = app.AmberInpcrdFile(openmmtools_data("alanine-dipeptide-explicit", "alanine-dipeptide.crd"))
    topology = prmtop.topology
    if crd.boxVectors is not None:
        topology.setPeriodicBoxVectors(crd.boxVectors)

    def mm_system() -> Any:
        system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                     constraints=app.HBonds)
        if crd.boxVectors is not None:
            system.setDefaultPeriodicBoxVectors(*crd.boxVectors)
        return system

    solute = [atom.index for atom in topology.atoms() if atom.residue.name not in ("HOH", "WAT")]
    builders: Dict[str, Callable[[], Any]] = {
        "MM only": mm_system,
        "openmm-ani": lambda: ANIPotential("ani1ccx", precision=precision).createMixedSystem(
            topology, mm_system(), solute),
    }
    if with_openmmml:
        builders["openmm-ml"] = lambda: _openmmml().MLPotential("ani1ccx").createMixedSystem(
            topology, mm_system(), solute)
    return Case("alanine-water", topology, crd.positions, builders)


def waterbox_case(precision: str, with_openmmml: bool, waters: int = 85) -> Case:
    """A periodic box of ``waters`` TIP3P-geometry waters, pure ANI."""
    from openmm import app

    from ..openmm import ANIPotential

    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), model="tip3p", numAdded=waters, neutralize=False)
    topology, positions = modeller.topology, modeller.positions
    builders: Dict[str, Callable[[], Any]] = {
        "openmm-ani": lambda: ANIPotential("ani1ccx", precision=precision).createSystem(topology)
    }
    if with_openmmml:
        builders["openmm-ml"] = lambda: _openmmml().MLPotential("ani1ccx").createSystem(topology)
    return Case("waterbox", topology, positions, builders)


def _openmmml() -> Any:
    from ..openmm.openmmtorch import import_openmmtorch

    import_openmmtorch()
    return quiet_import("openmmml")


def time_system(system: Any, positions: Any, steps: int, threads: Optional[int]) -> Tuple[float, float]:
    """``(ms/step, initial potential energy kJ/mol)`` of Langevin MD on the CPU platform.

    ``threads=None`` leaves OpenMM's CPU thread count at its default.
    """
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                                 TIMESTEP_FS * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    properties = {} if threads is None else {"Threads": str(threads)}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), properties)
    context.setPositions(positions)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(WARMUP_STEPS)
    context.getState(getEnergy=True)
    start = time.perf_counter()
    integrator.step(steps)
    context.getState(getEnergy=True)  # synchronise
    elapsed = time.perf_counter() - start
    del context, integrator
    return 1000.0 * elapsed / steps, energy


def run_benchmarks(
    cases: Optional[Sequence[str]] = None,
    steps: int = 200,
    threads: int = 0,
    openmmml: bool = True,
    precision: str = "single",
    out: Optional[TextIO] = None,
) -> int:
    """Run the benchmark cases and print a table; returns an exit status.

    Parameters
    ----------
    cases
        Subset of :data:`CASES` (default all).
    steps
        Timed MD steps per run (after :data:`WARMUP_STEPS` warm-up steps).
    threads
        Threads of the "default" runs (0: torch's default intra-op threads and OpenMM's default).
    openmmml
        Also time openmm-ml's ``ani1ccx`` when openmm-ml and TorchANI are installed.
    precision
        openmm-ani precision, ``"single"`` or ``"double"``.
    out
        Output stream (default stdout).

    Raises
    ------
    ValueError
        For unknown case names or a non-positive step count.
    """
    import sys

    stream = sys.stdout if out is None else out
    chosen = list(CASES) if not cases else list(cases)
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise ValueError(f"unknown benchmark case(s) {unknown}; choose from {', '.join(CASES)}")
    if steps < 1:
        raise ValueError("steps must be positive")

    def say(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    with_openmmml = openmmml and openmmml_available()
    if openmmml and not with_openmmml:
        say("openmm-ml comparison: skipped (openmmml and torchani are not both installed)")
    default_threads = threads if threads > 0 else torch.get_num_threads()
    builders = {"pxylene": pxylene_case, "alanine-water": alanine_water_case, "waterbox": waterbox_case}
    results: List[Timing] = []
    say(f"openmm-ani benchmark: CPU platform, {TIMESTEP_FS:g} fs Langevin, {steps} steps, "
        f"precision {precision}, default threads = {default_threads}")
    say(f"{'case':<14} {'engine':<11} {'threads':>7} {'ms/step':>9} {'ns/day':>9} {'E0 kJ/mol':>16}")
    original_threads = torch.get_num_threads()
    try:
        for name in chosen:
            if name == "alanine-water" and not mixed_available():
                say(f"{name:<14} skipped: mixed systems not available")
                continue
            case = builders[name](precision, with_openmmml)
            for engine, build in case.builders.items():
                with contextlib.redirect_stdout(io.StringIO()):  # TorchANI prints its resource path
                    system = build()
                for label, count in (("1", 1), ("default", default_threads)):
                    torch.set_num_threads(count)
                    ms, energy = time_system(system, case.positions, steps, 1 if count == 1 else
                                             (threads if threads > 0 else None))
                    timing = Timing(name, engine, f"{label}" if label == "1" else str(count), ms, energy)
                    results.append(timing)
                    say(f"{name:<14} {engine:<11} {timing.threads:>7} {ms:>9.3f} {timing.ns_per_day:>9.2f} "
                        f"{energy:>16.4f}")
    finally:
        torch.set_num_threads(original_threads)
    _summarise(results, say)
    return 0


def _summarise(results: List[Timing], say: Callable[[str], None]) -> None:
    """Print ratios against the peers timed in the same run."""
    by_key = {(r.case, r.engine, r.threads): r for r in results}
    lines = []
    for r in results:
        if r.engine != "openmm-ani":
            continue
        peer = by_key.get((r.case, "openmm-ml", r.threads))
        if peer is not None:
            lines.append(f"{r.case} threads={r.threads}: openmm-ml/openmm-ani time ratio {peer.ms_per_step / r.ms_per_step:.2f}, "
                         f"energy difference {r.energy - peer.energy:+.4f} kJ/mol")
        mm = by_key.get((r.case, "MM only", r.threads))
        if mm is not None:
            lines.append(f"{r.case} threads={r.threads}: ML/MM cost over MM {r.ms_per_step - mm.ms_per_step:.3f} ms/step")
    if lines:
        say("")
        for line in lines:
            say(line)
