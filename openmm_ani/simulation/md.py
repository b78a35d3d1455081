"""Langevin MD of an ANI (or ML/MM) System with trajectory, state-data and disagreement output.

:func:`run_md` is what ``openmm-ani simulate`` runs, as a library function: it builds the
OpenMM ``Simulation``, optionally minimises, attaches the reporters (DCD trajectory, state
data CSV, ensemble disagreement CSV), runs with a progress bar and returns the timing.
"""

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

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
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if self.minimize_iterations < 0:
            raise ValueError(f"minimize iterations must be >= 0, got {self.minimize_iterations}")
        directory = os.path.dirname(os.path.abspath(self.output))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"output folder does not exist: {directory}")

    def paths(self) -> Dict[str, str]:
        """The output files by kind."""
        return {
            "trajectory": self.output + ".dcd",
            "state_data": self.output + ".csv",
            "disagreement": self.output + ".disagreement.csv",
        }


@dataclass
class MDResult:
    """Outcome of :func:`run_md`: energies (kJ/mol) and speed."""

    initial_energy: float
    final_energy: float
    steps: int
    seconds: float
    timestep_fs: float

    @property
    def ms_per_step(self) -> float:
        """Wall time per step, ms."""
        return 1000.0 * self.seconds / self.steps if self.steps else float("nan")

    @property
    def ns_per_day(self) -> float:
        """Simulated ns per day of wall time."""
        return self.steps * self.timestep_fs * 1e-6 / (self.seconds / 86400.0) if self.steps else float("nan")


def run_md(
    topology: Any,
    system: Any,
    positions: Any,
    settings: MDSettings,
    potential: Any,
    ml_atoms: Optional[Sequence[int]] = None,
    progress: bool = True,
) -> MDResult:
    """Run Langevin MD with reporters.

    Parameters
    ----------
    topology, system, positions
        The OpenMM topology, System and initial positions (Quantity or nm).
    settings
        The job's settings.
    potential
        The :class:`~openmm_ani.ANIPotential` of the System (for the disagreement reporter).
    ml_atoms
        ML atoms of a mixed System (``None``: all atoms are ML).
    progress
        Show a progress bar on stderr.

    Returns
    -------
    MDResult
    """
    import sys

    import openmm
    from openmm import app, unit
    from tqdm import tqdm

    from ..openmm import EnsembleDisagreementReporter

    settings.validate()
    integrator = openmm.LangevinMiddleIntegrator(
        settings.temperature_k * unit.kelvin, settings.friction_per_ps / unit.picosecond, settings.timestep_fs * unit.femtosecond
    )
    integrator.setRandomNumberSeed(settings.seed)
    platform = openmm.Platform.getPlatformByName(settings.platform)
    properties = {"Threads": str(settings.threads)} if (settings.platform == "CPU" and settings.threads) else {}
    simulation = app.Simulation(topology, system, integrator, platform, properties)
    simulation.context.setPositions(positions)
    if settings.minimize_iterations:
        simulation.minimizeEnergy(maxIterations=settings.minimize_iterations)
    simulation.context.setVelocitiesToTemperature(settings.temperature_k * unit.kelvin, settings.seed)
    paths = settings.paths()
    simulation.reporters.append(app.DCDReporter(paths["trajectory"], settings.report_interval))
    simulation.reporters.append(
        app.StateDataReporter(
            paths["state_data"], settings.report_interval, step=True, time=True, potentialEnergy=True,
            kineticEnergy=True, totalEnergy=True, temperature=True, speed=True,
        )
    )
    disagreement = EnsembleDisagreementReporter(
        paths["disagreement"], settings.report_interval, topology, potential, ml_atoms=ml_atoms,
        threshold=settings.disagreement_threshold, forces=False,
    )
    simulation.reporters.append(disagreement)
    energy_unit = unit.kilojoule_per_mole
    initial = simulation.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(energy_unit)
    chunk = max(1, min(settings.report_interval, settings.steps or 1))
    done = 0
    start = time.perf_counter()
    try:
        with tqdm(total=settings.steps, unit="step", disable=not progress, file=sys.stderr) as bar:
            while done < settings.steps:
                n = min(chunk, settings.steps - done)
                simulation.step(n)
                done += n
                bar.update(n)
    finally:
        disagreement.close()
    elapsed = time.perf_counter() - start
    final = simulation.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(energy_unit)
    return MDResult(initial, final, done, elapsed, settings.timestep_fs)
