"""The MM -> ML/MM binding correction of one ligand: complex leg, solvent leg, verdict, results.

Output directory layout (self-contained, one ligand per directory)::

    <output>/settings.json                   (settings + input fingerprints; a rerun must match)
    <output>/results.json                    (written last, atomically)
    <output>/<leg>/start.xml                 (minimised start configuration)
    <output>/<leg>/schedule.json, schedule.png  (pilot and chosen windows, schedule="auto")
    <output>/<leg>/replica_exchange.nc       (openmmtools reporter; resumed when present)
    <output>/<leg>/switching.json (+ chain states)  (work values; continued when present)
    <output>/<leg>/overlap.png, work.png, convergence.png
    <output>/<leg>/timing.json               (wall-clock seconds spent on the leg, all calls)

Every run stops on its own: at the iteration/switch limits, when the uncertainty reaches the
target, when the time budget (:mod:`.budget`: set-up, pilot, sampling and analysis) is spent,
or within about a second of Ctrl-C, between chunks of MD steps (a second Ctrl-C stops at once);
a rerun with the same settings continues.
"""

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import openmm
from openmm import app

from ..files import write_text
from ..openmm.topology import validate_ml_atoms
from .convergence import add_model_checks, correction_verdict, leg_target, leg_verdict
from ..interrupts import deferred_interrupts
from .budget import Clock, LegBudget
from .interrupt import NOTICE, StopFlag, never
from .md import make_context
from .mpi import broadcast, is_root
from .model_uncertainty import correction_model_uncertainty, leg_model_uncertainty
from .results import binding_correction, kt_kcal_per_mol, leg_summary, write_json
from .resume import check_resumable, clear_output, leg_fingerprint, ligand_elements, record
from .settings import ProtocolSettings

logger = logging.getLogger(__name__)


@dataclass
class LegInput:
    """An MM system and its ligand selection.

    Attributes
    ----------
    name
        ``"complex"`` or ``"solvent"`` (names the sub-directory).
    topology, system
        The MM topology and System.
    positions
        Positions (Quantity or nm).
    ml_atoms
        Ligand atom indices. The two legs list the ligand's atoms in the same order (that order
        is the mapping between them).
    box_vectors
        Box vectors of a periodic system, or ``None``.
    files
        Input files the leg was read from (option -> path), fingerprinted for resuming.
    """

    name: str
    topology: app.Topology
    system: openmm.System
    positions: Any
    ml_atoms: Sequence[int]
    box_vectors: Optional[Any] = None
    files: Optional[Dict[str, str]] = None


def check_same_ligand(first: LegInput, second: LegInput) -> None:
    """Raise ``ValueError`` unless both legs' ligands have the same elements in the same order."""
    a = ligand_elements(first.topology, [int(i) for i in first.ml_atoms])
    b = ligand_elements(second.topology, [int(i) for i in second.ml_atoms])
    if a == b:
        return

    def formula(symbols: List[str]) -> str:
        return "".join(f"{e}{symbols.count(e)}" for e in sorted(set(symbols)))

    detail = f"{first.name} {len(a)} atoms {formula(a)}, {second.name} {len(b)} atoms {formula(b)}"
    if len(a) == len(b) and sorted(a) == sorted(b):
        k = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        detail += (f"; position {k}: {first.name} atom {int(first.ml_atoms[k])} is {a[k]}, {second.name} atom "
                   f"{int(second.ml_atoms[k])} is {b[k]} (list the ligand atoms of both legs in the same order)")
    raise ValueError(f"the {first.name} and {second.name} legs hold different ligands ({detail})")


def minimize_mm(leg: LegInput, platform: Optional[str], max_iterations: int = 0) -> Any:
    """Positions of ``leg`` minimised with its MM System (the lambda = 0 end state, no ANI cost)."""
    from openmm import unit

    context = make_context(leg.system, openmm.VerletIntegrator(0.001), platform, leg.positions, leg.box_vectors)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=int(max_iterations))
    positions = context.getState(getPositions=True).getPositions(asNumpy=True)
    del context
    return positions.in_units_of(unit.nanometer)


def _start_positions(leg: LegInput, settings: ProtocolSettings, directory: str) -> Any:
    """The minimised (or given) start positions, stored once in ``start.xml`` and reused."""
    path = os.path.join(directory, "start.xml")
    if os.path.exists(path):
        with open(path) as stream:
            return openmm.XmlSerializer.deserialize(stream.read()).getPositions(asNumpy=True)
    positions = minimize_mm(leg, settings.platform, settings.minimize_iterations) if settings.minimize else leg.positions
    if is_root():
        context = make_context(leg.system, openmm.VerletIntegrator(0.001), "Reference", positions)
        write_text(path, openmm.XmlSerializer.serialize(context.getState(getPositions=True)))
        del context
    return positions


def interpolating_system(leg: LegInput, settings: ProtocolSettings) -> openmm.System:
    """The leg's ``lambda_interpolate`` System (ANI ligand in a ``TorchForce``), with a barostat for NPT.

    Raises
    ------
    ValueError
        ``remove_constraints`` with ligand constraints that have no bond term in the MM System,
        or a pressure for a non-periodic System.
    """
    from ..openmm import ANIPotential
    from .states import add_barostat

    if settings.remove_constraints:
        unbonded = constrained_without_bond(leg.system, leg.ml_atoms)
        if unbonded:
            raise ValueError(f"the {leg.name} MM System constrains ligand bonds without bond terms (atoms "
                             f"{', '.join(f'{i}-{j}' for i, j in unbonded[:5])}{' ...' if len(unbonded) > 5 else ''}): "
                             "build it with flexibleConstraints=True, or keep the constraints (remove_constraints=False)")
    potential = ANIPotential(settings.model, precision=settings.precision)
    system = potential.createMixedSystem(leg.topology, leg.system, leg.ml_atoms, interpolate=True,
                                         removeConstraints=settings.remove_constraints)
    if settings.pressure_atm is not None:
        if not system.usesPeriodicBoundaryConditions():
            raise ValueError(f"a pressure needs a periodic {leg.name} system")
        add_barostat(system, settings.pressure_atm, settings.temperature_k)
    return system


def constrained_without_bond(system: openmm.System, ml_atoms: Sequence[int]) -> List[Tuple[int, int]]:
    """Constrained pairs of ML atoms that no ``HarmonicBondForce`` term connects."""
    ml = {int(i) for i in ml_atoms}
    bonded = set()
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                i, j = force.getBondParameters(k)[:2]
                bonded.add((min(i, j), max(i, j)))
    pairs = []
    for k in range(system.getNumConstraints()):
        i, j = system.getConstraintParameters(k)[:2]
        if i in ml and j in ml and (min(i, j), max(i, j)) not in bonded:
            pairs.append((min(i, j), max(i, j)))
    return pairs


def _schedule(system: openmm.System, positions: Any, leg: LegInput, settings: ProtocolSettings, directory: str,
              progress: bool, max_time_s: Optional[float] = None, stop: StopFlag = never, clock: Clock = time.monotonic
              ) -> Tuple[List[float], Optional[Dict[str, Any]]]:
    """The leg's windows: fixed by the settings, stored by an earlier call, or from a new pilot (given
    ``max_time_s`` seconds, ``None``: unlimited; ``stop`` polled between chunks of its MD)."""
    from .plots import plot_schedule
    from .schedule import pilot_schedule

    fixed = settings.lambda_values()
    if fixed is not None:
        return fixed, None
    path = os.path.join(directory, "schedule.json")
    stored = None
    if is_root() and os.path.exists(path):
        with open(path) as stream:
            stored = json.load(stream)
    stored = broadcast(stored)
    if stored is None:
        schedule = pilot_schedule(system, positions, settings, leg.box_vectors, progress, f"{leg.name} pilot",
                                  max_time_s=max_time_s, clock=clock, stop=stop).to_dict()
        if is_root():
            write_json(schedule, path)
            plot_schedule(schedule["pilot_lambdas"], schedule["pilot_sigma_kt"], schedule["lambdas"],
                          os.path.join(directory, "schedule.png"), f"{leg.name}: pilot and windows")
        stored = schedule
    return [float(v) for v in stored["lambdas"]], stored


def run_leg(leg: LegInput, settings: ProtocolSettings, output_dir: str, progress: bool = True, stop: StopFlag = never,
            clock: Clock = time.monotonic) -> Optional[Dict[str, Any]]:
    """Run (or continue) the equilibrium and switching parts of one leg.

    Parameters
    ----------
    leg
        The system and ligand.
    settings
        Protocol settings.
    output_dir
        The ligand's output directory (the leg writes into ``output_dir/leg.name``).
    progress
        Show progress bars.
    stop
        Polled between chunks of MD steps and after iterations and switches; when true the leg
        saves and raises ``KeyboardInterrupt``.
    clock
        The clock of ``settings.max_time_s`` (:mod:`.budget`), s.

    Returns
    -------
    dict or None
        ``{"equilibrium", "switching", "summary", "schedule", "wall_time_s", ...}`` (kT and
        kcal/mol) on MPI rank 0, ``None`` on other ranks.
    """
    from .equilibrium import run_replica_exchange
    from .plots import plot_overlap, plot_work
    from .switching import run_switching

    settings.validate()
    started = time.monotonic()
    directory = os.path.join(output_dir, leg.name)
    os.makedirs(directory, exist_ok=True)
    timing_path = os.path.join(directory, "timing.json")
    timing: Dict[str, Any] = {"wall_time_s": 0.0}
    if os.path.exists(timing_path):
        with open(timing_path) as stream:
            timing = json.load(stream)
    spent = float(timing["wall_time_s"])
    # --max-time counts from here: set-up, pilot, sampling and a reserve for the analysis (as long as the last one took)
    budget = LegBudget(settings.max_time_s, settings.equilibrium_time_fraction, settings.n_switches > 0,
                       float(timing.get("analysis_s", 0.0)), clock=clock)
    kt = kt_kcal_per_mol(settings.temperature_k)
    target_kt = leg_target(settings.target_error_kcal_per_mol) / kt if settings.target_error_kcal_per_mol is not None else None
    try:
        system = interpolating_system(leg, settings)
        positions = _start_positions(leg, settings, directory)
        lambdas, schedule = _schedule(system, positions, leg, settings, directory, progress, budget.pilot_s(), stop, clock)
        equilibrium = switching = None
        storage = os.path.join(directory, "replica_exchange.nc")
        if settings.n_iterations > 0:
            mbar = run_replica_exchange(system, positions, settings, storage, box_vectors=leg.box_vectors, progress=progress,
                                 description=f"{leg.name} replica exchange", lambdas=lambdas, target_error_kt=target_kt,
                                 max_time_s=budget.equilibrium_s(), stop=stop, analysis_atoms=leg.ml_atoms, clock=clock)
            equilibrium = None if mbar is None else mbar.to_dict()
        if settings.n_switches > 0:
            result = run_switching(system, positions, settings, box_vectors=leg.box_vectors, progress=progress,
                                   description=f"{leg.name} switching", store=os.path.join(directory, "switching.json"),
                                   target_error_kt=target_kt, max_time_s=budget.switching_s(), stop=stop,
                                   record_atoms=leg.ml_atoms, clock=clock)
            switching = None if result is None else result.to_dict()
    finally:
        if is_root():
            write_json({**timing, "wall_time_s": spent + time.monotonic() - started}, timing_path)
    if not is_root():
        return None
    analysis_started = time.monotonic()
    if equilibrium is not None and equilibrium["status"] == "ok":
        plot_overlap(equilibrium["overlap"], lambdas, os.path.join(directory, "overlap.png"), f"{leg.name}: MBAR overlap")
    if switching is not None:
        plot_work(switching["forward_work"], switching["reverse_work"], switching["bar_delta_f_kt"],
                  os.path.join(directory, "work.png"), f"{leg.name}: switching work")
    summary = leg_summary(equilibrium, switching, settings.temperature_k)
    _plot_convergence(equilibrium, switching, settings, len(lambdas), kt, os.path.join(directory, "convergence.png"), leg.name)
    n_iterations = 0 if equilibrium is None else equilibrium["n_iterations"]
    verdict = leg_verdict(leg.name, summary, equilibrium, switching, kt, leg_target(settings.target_error_kcal_per_mol),
                          settings.length_per_window, n_iterations)
    model = leg_model_uncertainty(leg, settings.model, directory, equilibrium, summary["delta_g_kcal_per_mol"], kt)
    add_model_checks(verdict, leg.name, model)
    wall = spent + time.monotonic() - started
    write_json({"wall_time_s": wall, "analysis_s": time.monotonic() - analysis_started}, timing_path)
    return {"equilibrium": equilibrium, "switching": switching, "summary": summary, "schedule": schedule, "lambdas": lambdas,
            "verdict": verdict, "wall_time_s": wall, "ml_atoms": [int(i) for i in leg.ml_atoms], "model_uncertainty": model}


def _plot_convergence(equilibrium: Optional[Dict[str, Any]], switching: Optional[Dict[str, Any]], settings: ProtocolSettings,
                      n_states: int, kt: float, path: str, name: str) -> None:
    """dG against simulated time (ns): MBAR at earlier iteration counts, BAR at earlier switch counts."""
    from .plots import plot_convergence
    from .switching import bar_estimate

    ns_per_step = settings.timestep_fs * 1e-6
    series: Dict[str, List[Tuple[float, float, float]]] = {}
    if equilibrium is not None and equilibrium.get("history"):
        per_iteration = settings.steps_per_iteration * n_states * ns_per_step
        series["MBAR (replica exchange)"] = [(h["iteration"] * per_iteration, h["delta_f_kt"] * kt, h["d_delta_f_kt"] * kt)
                                             for h in equilibrium["history"] if math.isfinite(h["delta_f_kt"])]
    if switching is not None:
        n = min(len(switching["forward_work"]), len(switching["reverse_work"]))
        per_switch = 2 * (settings.switching_steps + settings.steps_between_switches) * ns_per_step
        points = []
        for k in sorted({max(4, int(round(n * f))) for f in (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)}):
            if k <= n:
                value, _, error = bar_estimate(switching["forward_work"][:k], switching["reverse_work"][:k], 0, settings.seed)
                points.append((k * per_switch, value * kt, error * kt))
        series["BAR (switching)"] = points
    if any(series.values()):
        plot_convergence(series, path, f"{name}: dG against simulated time")


def run_correction(
    complex_leg: LegInput,
    solvent_leg: LegInput,
    settings: ProtocolSettings,
    output_dir: str,
    mm_binding_kcal_per_mol: Optional[float] = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Optional[Dict[str, Any]]:
    """Both legs, the binding correction and the convergence verdict; writes ``results.json``.

    Parameters
    ----------
    complex_leg, solvent_leg
        The two systems with the same ligand (same elements in the same order).
    settings
        Protocol settings (shared by both legs).
    output_dir
        Output directory of this ligand. A directory holding a run with other settings or
        inputs is refused (``ValueError`` listing the differences) unless ``overwrite``.
    mm_binding_kcal_per_mol
        MM binding free energy to correct, kcal/mol.
    progress
        Show progress bars.
    overwrite
        Remove an earlier run in ``output_dir`` first.

    Returns
    -------
    dict or None
        The results (also in ``output_dir/results.json``) on MPI rank 0, else ``None``.

    Raises
    ------
    KeyboardInterrupt
        After Ctrl-C, once the files are saved (the run can be continued).
    """
    settings.validate()
    for leg in (complex_leg, solvent_leg):
        validate_ml_atoms(leg.topology, leg.system, leg.ml_atoms)
    check_same_ligand(complex_leg, solvent_leg)
    current = record(settings, {leg.name: leg_fingerprint(leg) for leg in (complex_leg, solvent_leg)})
    problem = None
    if is_root():  # rank 0 owns the directory; the other ranks learn the outcome
        os.makedirs(output_dir, exist_ok=True)
        if overwrite:
            clear_output(output_dir)
        try:
            check_resumable(output_dir, current)
            write_json(current, os.path.join(output_dir, "settings.json"))
        except ValueError as error:
            problem = str(error)
    problem = broadcast(problem)
    if problem is not None:
        raise ValueError(problem)
    legs: Dict[str, Any] = {}
    with deferred_interrupts(NOTICE) as interrupt:
        for leg in (complex_leg, solvent_leg):
            legs[leg.name] = run_leg(leg, settings, output_dir, progress, stop=interrupt)
    if not is_root():
        return None
    correction = binding_correction(legs[complex_leg.name]["summary"], legs[solvent_leg.name]["summary"], mm_binding_kcal_per_mol)
    correction.update(correction_model_uncertainty(legs[complex_leg.name]["model_uncertainty"], legs[solvent_leg.name]["model_uncertainty"]))
    verdict = correction_verdict({name: leg.pop("verdict") for name, leg in legs.items()}, correction["d_ddg_kcal_per_mol"],
                                 settings.target_error_kcal_per_mol)
    results = {
        "settings": settings.to_dict(),
        "legs": legs,
        "correction": correction,
        "verdict": verdict,
        "units": {"energies": "kcal/mol unless the key ends in _kt (units of k_B T)", "work": "k_B T", "time": "s"},
    }
    write_json(results, os.path.join(output_dir, "results.json"))
    return results
