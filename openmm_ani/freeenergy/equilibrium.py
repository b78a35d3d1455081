"""Equilibrium leg: replica exchange along ``lambda_interpolate`` and MBAR (openmmtools + pymbar).

The sampler writes an openmmtools ``MultiStateReporter`` file with checkpoints; calling
:func:`run_replica_exchange` again with the same ``storage`` resumes from the last
checkpoint and runs up to ``settings.n_iterations``. Under ``mpirun`` openmmtools
distributes the replicas over the MPI ranks (mpiplus); only rank 0 writes and analyses.
"""

import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numba
import numpy as np
import openmm
from openmm import unit
from openmmtools import mcmc

from .settings import ProtocolSettings

logger = logging.getLogger(__name__)


@dataclass
class EquilibriumResult:
    """MBAR estimate of the MM -> ML/MM free energy of one leg.

    Attributes
    ----------
    delta_f_kt, d_delta_f_kt
        Free energy of lambda 1 relative to lambda 0 and its uncertainty, in kT.
    overlap
        ``[n_states, n_states]`` MBAR overlap matrix.
    lambdas
        Window values.
    n_iterations
        Iterations in the reporter file.
    n_equilibration_iterations
        Iterations discarded by openmmtools' automatic equilibration detection.
    statistical_inefficiency
        Of the energy timeseries, in iterations.
    """

    delta_f_kt: float
    d_delta_f_kt: float
    overlap: List[List[float]]
    lambdas: List[float]
    n_iterations: int
    n_equilibration_iterations: int
    statistical_inefficiency: float

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


class SeededLangevinDynamicsMove(mcmc.LangevinDynamicsMove):
    """openmmtools' ``LangevinDynamicsMove`` with a fixed integrator random seed.

    With a seeded replica-mixing RNG, the OpenMM Reference platform then reproduces a run
    exactly, which makes the estimator tests deterministic.
    """

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seed = int(seed)

    def __getstate__(self) -> Dict[str, Any]:
        serialization = super().__getstate__()
        serialization["seed"] = self.seed
        return serialization

    def __setstate__(self, serialization: Dict[str, Any]) -> None:
        super().__setstate__(serialization)
        self.seed = int(serialization.get("seed", 0))

    def _get_integrator(self, thermodynamic_state: Any) -> openmm.Integrator:
        integrator = super()._get_integrator(thermodynamic_state)
        integrator.setRandomNumberSeed(self.seed)
        return integrator


@numba.njit(cache=False)
def _seed_numba(seed: int) -> None:  # pragma: no cover - compiled
    np.random.seed(seed)


def _seed_mixing(seed: int) -> None:
    """Seed the RNGs openmmtools uses to mix replicas (numpy's, and numba's own in jitted code)."""
    np.random.seed(seed)
    _seed_numba(seed)


def _is_root() -> bool:
    import mpiplus

    comm = mpiplus.get_mpicomm()
    return comm is None or comm.rank == 0


def _platform(name: Optional[str]) -> Optional[openmm.Platform]:
    return openmm.Platform.getPlatformByName(name) if name else None


def run_replica_exchange(
    system: openmm.System,
    positions: Any,
    settings: ProtocolSettings,
    storage: str,
    box_vectors: Optional[Any] = None,
    progress: bool = True,
    description: str = "replica exchange",
) -> Optional[EquilibriumResult]:
    """Run (or resume) replica exchange over ``lambda_interpolate`` and analyse it with MBAR.

    Parameters
    ----------
    system
        An interpolating System (``lambda_interpolate`` parameter), preferably built with
        ``backend="python"`` so openmmtools can copy and hash it cheaply.
    positions
        Initial positions (Quantity, or ``[N, 3]`` nm).
    settings
        Protocol settings.
    storage
        Path of the ``.nc`` reporter file; an existing file is resumed.
    box_vectors
        Initial box vectors (periodic systems), or ``None`` for the System's defaults.
    progress
        Show a progress bar (rank 0).
    description
        Label of the progress bar.

    Returns
    -------
    EquilibriumResult or None
        The MBAR result on MPI rank 0, ``None`` on other ranks.
    """
    from openmmtools import cache, multistate, states
    from tqdm import tqdm

    from .states import create_states

    settings.validate()
    lambdas = settings.lambda_values()
    platform = _platform(settings.platform)
    move = SeededLangevinDynamicsMove(
        timestep=settings.timestep_fs * unit.femtosecond,
        collision_rate=settings.collision_rate_per_ps / unit.picosecond,
        n_steps=settings.steps_per_iteration,
        reassign_velocities=False,
        seed=settings.seed,
    )
    if os.path.exists(storage):
        logger.info("resuming replica exchange from %s", storage)
        reporter = multistate.MultiStateReporter(storage, open_mode="r+", checkpoint_interval=settings.checkpoint_interval)
        sampler = multistate.ReplicaExchangeSampler.from_storage(reporter)
        sampler.number_of_iterations = settings.n_iterations
    else:
        thermodynamic_states = create_states(system, lambdas, settings.temperature_k, settings.pressure_atm)
        if box_vectors is None:
            box_vectors = system.getDefaultPeriodicBoxVectors()
        sampler_state = states.SamplerState(positions, box_vectors=box_vectors)
        sampler = multistate.ReplicaExchangeSampler(
            mcmc_moves=move, number_of_iterations=settings.n_iterations, online_analysis_interval=None
        )
        # openmmtools resumes from the last checkpoint: make the final iteration one.
        interval = math.gcd(settings.n_iterations, settings.checkpoint_interval)
        reporter = multistate.MultiStateReporter(storage, checkpoint_interval=interval)
        sampler.create(thermodynamic_states, sampler_state, reporter)
    # Own context caches: a platform choice must not touch openmmtools' global cache.
    sampler.energy_context_cache = cache.ContextCache(capacity=None, time_to_live=None, platform=platform)
    sampler.sampler_context_cache = cache.ContextCache(capacity=None, time_to_live=None, platform=platform)
    _seed_mixing(settings.seed + sampler.iteration)
    bar = tqdm(total=settings.n_iterations, initial=sampler.iteration, desc=description, disable=not (progress and _is_root()))
    while sampler.iteration < settings.n_iterations:
        sampler.run(n_iterations=1)
        bar.update(1)
    bar.close()
    reporter.close()  # flush everything before the analysis reads the file
    del sampler
    if not _is_root():
        return None
    return analyze(storage, lambdas)


def analyze(storage: str, lambdas: Optional[List[float]] = None) -> EquilibriumResult:
    """MBAR analysis of a replica-exchange reporter file (openmmtools' analyzer + pymbar).

    Parameters
    ----------
    storage
        Path of the ``.nc`` reporter file.
    lambdas
        Window values, for the record (read from the file when ``None``).

    Returns
    -------
    EquilibriumResult
    """
    from openmmtools import multistate

    reporter = multistate.MultiStateReporter(storage, open_mode="r")
    try:
        if lambdas is None:
            thermodynamic_states, _ = reporter.read_thermodynamic_states()
            lambdas = [float(s.lambda_interpolate) for s in thermodynamic_states]
        analyzer = multistate.MultiStateSamplerAnalyzer(reporter)
        delta_f, d_delta_f = analyzer.get_free_energy()
        overlap = analyzer.mbar.compute_overlap()["matrix"]
        n_equilibration = analyzer.n_equilibration_iterations
        g_t = analyzer.statistical_inefficiency
        n_iterations = int(reporter.read_last_iteration(last_checkpoint=False))
    finally:
        reporter.close()
    return EquilibriumResult(
        delta_f_kt=float(delta_f[0, -1]),
        d_delta_f_kt=float(d_delta_f[0, -1]),
        overlap=np.asarray(overlap).tolist(),
        lambdas=list(lambdas),
        n_iterations=n_iterations,
        n_equilibration_iterations=int(n_equilibration),
        statistical_inefficiency=float(g_t),
    )
