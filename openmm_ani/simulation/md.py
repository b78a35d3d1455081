"""Langevin MD of an ANI (or ML/MM) System with trajectory, state-data and disagreement output.

:func:`run_md` is what ``openmm-ani simulate`` runs, as a library function: it builds the
OpenMM ``Simulation``, optionally minimises, attaches the reporters (DCD trajectory, state
data CSV, ensemble disagreement CSV), runs with a progress bar and returns the timing.

Jobs are resumable. At every report (and when stopped by Ctrl-C, and at the end) the job
writes ``<output>.chk`` atomically: the OpenMM checkpoint, the step, the output file sizes and
the settings and input fingerprints the trajectory depends on (:mod:`.checkpoint`). A run with
``resume=True`` continues from it — same step count, output files cut back to the checkpoint
and appended — when the settings and inputs are the same; ``steps`` is the total, so a larger
value extends a finished run. Without ``resume`` or ``overwrite`` a job refuses to write over
the files of an earlier one. Ctrl-C stops the job between steps (:mod:`openmm_ani.interrupts`), after a
checkpoint of the state it reached.
"""

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from .checkpoint import JobState, check_resumable, read_job_state, write_job_state
from ..interrupts import deferred_interrupts
from .outputs import KINDS, MDOutputs, TrajectoryReporter

logger = logging.getLogger(__name__)


@dataclass
class MDSettings:
    """Settings of an MD job.

    Attributes
    ----------
    steps
        MD steps to run.
    timestep_fs, temperature_k, friction_per_ps
        Langevin middle integrator parameters (fs, K, 1/ps).
    minimize_iterations
        Minimise first with at most this many iterations (0: no minimisation).
    platform
        OpenMM platform name.
    threads
        CPU platform threads (0: OpenMM's choice).
    seed
        Integrator and initial-velocity seed.
    report_interval
        Steps between trajectory/state-data/disagreement reports.
    output
        Output prefix: ``<output>.dcd``, ``.csv``, ``.disagreement.csv``.
    disagreement_threshold
        Ensemble energy std (kJ/mol) above which a warning is issued, or ``None``.
    """

    steps: int = 1000
    timestep_fs: float = 0.5
    temperature_k: float = 300.0
    friction_per_ps: float = 1.0
    minimize_iterations: int = 0
    platform: str = "CPU"
    threads: int = 0
    seed: int = 1
    report_interval: int = 100
    output: str = "openmm-ani-md"
    disagreement_threshold: Optional[float] = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.report_interval < 1:
            raise ValueError(f"report interval must be >= 1, got {self.report_interval}")
        for name in ("timestep_fs", "temperature_k", "friction_per_ps"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be positive, got {value}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if self.minimize_iterations < 0:
            raise ValueError(f"minimize iterations must be >= 0, got {self.minimize_iterations}")
        directory = os.path.dirname(os.path.abspath(self.output))
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise NotADirectoryError(f"output folder {directory} is a file")
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"output folder does not exist: {directory}")
        if self.threads and self.platform != "CPU":
            raise ValueError(f"threads={self.threads} applies to the CPU platform only, not {self.platform}")
        from ..openmm.platforms import get_platform

        get_platform(self.platform)  # an unavailable platform fails here, before the job writes any file

    def paths(self) -> Dict[str, str]:
        """The output files by kind (the job's checkpoint included)."""
        return {
            "trajectory": self.output + ".dcd",
            "state_data": self.output + ".csv",
            "disagreement": self.output + ".disagreement.csv",
            "checkpoint": self.output + ".chk",
        }

    def determining(self) -> Dict[str, Any]:
        """The settings the trajectory depends on (``steps`` only extends a run; threads and output do not matter)."""
        return {
            "timestep_fs": self.timestep_fs, "temperature_k": self.temperature_k, "friction_per_ps": self.friction_per_ps,
            "minimize_iterations": self.minimize_iterations, "platform": self.platform, "seed": self.seed,
            "report_interval": self.report_interval,
        }


@dataclass
class MDResult:
    """Outcome of :func:`run_md`: energies (kJ/mol), the steps run by this call and its speed.

    ``first_step`` is the step the call started from (0, or the checkpoint's step when
    resumed); ``interrupted`` says the call stopped early on Ctrl-C (its state is in the
    checkpoint).
    """

    initial_energy: float
    final_energy: float
    steps: int
    seconds: float
    timestep_fs: float
    first_step: int = 0
    interrupted: bool = False

    @property
    def last_step(self) -> int:
        """The step reached."""
        return self.first_step + self.steps

    @property
    def ms_per_step(self) -> float:
        """Wall time per step, ms."""
        return 1000.0 * self.seconds / self.steps if self.steps else float("nan")

    @property
    def ns_per_day(self) -> float:
        """Simulated ns per day of wall time."""
        return self.steps * self.timestep_fs * 1e-6 / (self.seconds / 86400.0) if self.steps else float("nan")


#: Wall time (s) aimed at between two checks for Ctrl-C.
_POLL_SECONDS = 0.5
#: How to start afresh, as error messages say it.
_AFRESH = "--overwrite or a new --output"


def prepare_job(settings: MDSettings, requested: Mapping[str, Any], resume: bool, overwrite: bool) -> Optional[JobState]:
    """Decide how a job starts: ``None`` for a fresh run, or the checkpoint state it continues.

    Raises
    ------
    ValueError
        Output files of an earlier run exist and neither ``resume`` nor ``overwrite`` is set;
        ``resume`` with output files but no checkpoint; a checkpoint of a run with other
        settings or inputs (listing the differences) or beyond ``settings.steps``.
    """
    paths = settings.paths()
    checkpoint = paths["checkpoint"]
    existing = [path for path in paths.values() if os.path.exists(path)]
    if overwrite or not existing:
        return None
    if not resume:
        raise ValueError(
            f"output files of an earlier run exist ({', '.join(existing)}); continue that run with --resume, "
            "replace it with --overwrite, or choose a new --output"
        )
    if not os.path.isfile(checkpoint):
        raise ValueError(f"cannot resume: {', '.join(existing)} exist but the checkpoint {checkpoint} does not; "
                         f"start afresh with {_AFRESH}")
    state = read_job_state(checkpoint)
    check_resumable(checkpoint, state.settings, requested, _AFRESH)
    if settings.steps < state.step:
        raise ValueError(f"{checkpoint} is at step {state.step}, beyond --steps {settings.steps} (the total); "
                         "give a larger total to extend the run")
    return state


def run_md(
    topology: Any,
    system: Any,
    positions: Any,
    settings: MDSettings,
    potential: Any,
    ml_atoms: Optional[Sequence[int]] = None,
    progress: bool = True,
    inputs: Optional[Mapping[str, Any]] = None,
    resume: bool = False,
    overwrite: bool = False,
) -> MDResult:
    """Run Langevin MD with reporters and checkpoints, or continue a checkpointed run.

    Parameters
    ----------
    topology, system, positions
        The OpenMM topology, System and initial positions (Quantity or nm).
    settings
        The job's settings; ``settings.steps`` is the total number of steps of the run.
    potential
        The :class:`~openmm_ani.ANIPotential` of the System (for the disagreement reporter).
    ml_atoms
        ML atoms of a mixed System (``None``: all atoms are ML).
    progress
        Show a progress bar on stderr.
    inputs
        Fingerprints of the inputs (file hashes, model, selection...), JSON values; stored in
        the checkpoint and compared, with :meth:`MDSettings.determining`, on resume.
    resume
        Continue from ``<output>.chk`` when it exists (a fresh run when no output exists).
    overwrite
        Start afresh even when output files exist.

    Returns
    -------
    MDResult

    Raises
    ------
    ValueError
        See :func:`prepare_job`; also bad settings.
    """
    import sys

    import openmm
    from openmm import app, unit
    from tqdm import tqdm

    from ..openmm import EnsembleDisagreementReporter
    from ..openmm.platforms import get_platform

    settings.validate()
    if resume and overwrite:
        raise ValueError("resume and overwrite are exclusive")
    requested = {**settings.determining(), **dict(inputs or {})}
    state = prepare_job(settings, requested, resume, overwrite)
    paths = settings.paths()
    integrator = openmm.LangevinMiddleIntegrator(
        settings.temperature_k * unit.kelvin, settings.friction_per_ps / unit.picosecond, settings.timestep_fs * unit.femtosecond
    )
    integrator.setRandomNumberSeed(settings.seed)
    platform = get_platform(settings.platform)
    properties = {"Threads": str(settings.threads)} if (settings.platform == "CPU" and settings.threads) else {}
    simulation = app.Simulation(topology, system, integrator, platform, properties)
    if state is None:
        simulation.context.setPositions(positions)
        if settings.minimize_iterations:
            simulation.minimizeEnergy(maxIterations=settings.minimize_iterations)
        simulation.context.setVelocitiesToTemperature(settings.temperature_k * unit.kelvin, settings.seed)
    else:
        simulation.context.loadCheckpoint(state.checkpoint)
        logger.info("resuming %s at step %d", paths["checkpoint"], state.step)
    # Evaluate before any file is touched: a structure OpenMM or ANI refuses leaves no half-made outputs.
    initial = simulation.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    if not math.isfinite(initial):
        raise ValueError(f"the initial potential energy is {initial} kJ/mol: check the structure and the force field")
    if state is None:
        if os.path.exists(paths["checkpoint"]):
            os.remove(paths["checkpoint"])
        outputs = MDOutputs({kind: paths[kind] for kind in KINDS})
    else:
        outputs = MDOutputs({kind: paths[kind] for kind in KINDS}, state.outputs, state.frames)
    frames = 0 if state is None else state.frames
    try:
        trajectory = TrajectoryReporter(outputs.streams["trajectory"], settings.report_interval, outputs.appending["trajectory"])
        simulation.reporters.append(trajectory)
        simulation.reporters.append(
            app.StateDataReporter(
                outputs.streams["state_data"], settings.report_interval, step=True, time=True, potentialEnergy=True,
                kineticEnergy=True, totalEnergy=True, temperature=True, speed=True, append=outputs.appending["state_data"],
            )
        )
        simulation.reporters.append(EnsembleDisagreementReporter(
            outputs.streams["disagreement"], settings.report_interval, topology, potential, ml_atoms=ml_atoms,
            threshold=settings.disagreement_threshold, forces=True, append=outputs.appending["disagreement"],
        ))
        bar = tqdm(total=settings.steps, initial=simulation.currentStep, unit="step", disable=not progress, file=sys.stderr)
        with bar:
            return _integrate(simulation, settings, outputs, requested, frames, trajectory, bar, initial)
    finally:
        outputs.close()


def _integrate(simulation: Any, settings: MDSettings, outputs: MDOutputs, requested: Dict[str, Any], frames: int,
               trajectory: TrajectoryReporter, bar: Any, initial: float) -> MDResult:
    """The MD loop: steps in pieces short enough to notice Ctrl-C, a checkpoint at every report."""
    from openmm import unit

    checkpoint = settings.paths()["checkpoint"]
    interval = settings.report_interval
    first = simulation.currentStep

    def save() -> None:
        write_job_state(checkpoint, JobState(simulation.currentStep, requested, outputs.sizes(), frames + trajectory.frames,
                                             simulation.context.createCheckpoint()))

    save()
    chunk = 1
    start = time.perf_counter()
    with deferred_interrupts() as interrupt:
        while simulation.currentStep < settings.steps and not interrupt.requested:
            step = simulation.currentStep
            n = min(chunk, settings.steps - step, interval - step % interval)
            began = time.perf_counter()
            simulation.step(n)
            bar.update(n)
            per_step = (time.perf_counter() - began) / n
            chunk = max(1, int(_POLL_SECONDS / per_step)) if per_step > 0 else interval
            if simulation.currentStep % interval == 0 or simulation.currentStep == settings.steps:
                save()
        if interrupt.requested:
            save()
    elapsed = time.perf_counter() - start
    final = simulation.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    return MDResult(initial, final, simulation.currentStep - first, elapsed, settings.timestep_fs, first,
                    bool(interrupt.requested and simulation.currentStep < settings.steps))
