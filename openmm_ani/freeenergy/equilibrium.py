"""Equilibrium part of a leg: replica exchange along ``lambda_interpolate`` (openmmtools), MBAR.

The sampler writes an openmmtools ``MultiStateReporter`` file; calling
:func:`run_replica_exchange` again with the same ``storage`` resumes from its last checkpoint.
The run goes in blocks of ``settings.check_interval`` iterations and stops at the first
checkpoint where the MBAR uncertainty has reached the target, the next checkpoint would fall
past the time budget, or the iteration limit is reached; after any iteration once the budget is
spent (so it overruns by one iteration at most, :mod:`.budget`); and within about a second of
an interrupt request, between two chunks of MD steps (:func:`.md.run_steps`; one process) or
after the iteration (MPI): then ``KeyboardInterrupt`` is raised after the file is closed, and a
rerun resumes from the last checkpoint. Under ``mpirun`` openmmtools distributes the replicas
over the MPI ranks (mpiplus); only rank 0 writes and analyses.

openmmtools copies Systems (each copy serialises and parses the ANI ``TorchForce`` with its
TorchScript file): the states share one standardised System, and the energy and propagation
contexts share one ``ContextCache`` so that each process builds one Context.
"""

import copy
import logging
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import numba
import numpy as np
import openmm
from openmmtools import cache, mcmc

from ..thirdparty import stdout_to_debug
from .analysis import MIN_EFFECTIVE, MBARResult, analyze_storage, mbar_from_energies, read_samples
from .budget import Clock
from .interrupt import StopFlag, Stopped, never, stop_requested
from .md import ChunkedIntegrator, platform
from .mpi import broadcast, is_root, rank_and_size
from .settings import ProtocolSettings

logger = logging.getLogger(__name__)


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


class _InterruptibleCache(cache.ContextCache):
    """openmmtools' ``ContextCache`` handing out integrators whose ``step(n)`` polls ``stop`` between chunks of steps."""

    def __init__(self, stop: StopFlag, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stop = stop

    def get_context(self, thermodynamic_state: Any, integrator: Any = None) -> Any:
        context, integrator = super().get_context(thermodynamic_state, integrator)
        return context, ChunkedIntegrator(integrator, self._stop)


def _new_sampler(system: openmm.System, positions: Any, box_vectors: Any, lambdas: Sequence[float], settings: ProtocolSettings,
                 storage: str, move: Any, analysis_atoms: Sequence[int] = ()) -> Any:
    from openmmtools import multistate, states

    from .states import create_states

    thermodynamic_states = create_states(system, lambdas, settings.temperature_k, settings.pressure_atm)
    if box_vectors is None:
        box_vectors = system.getDefaultPeriodicBoxVectors()
    sampler_state = states.SamplerState(positions, box_vectors=box_vectors)
    sampler = multistate.ReplicaExchangeSampler(mcmc_moves=move, number_of_iterations=settings.n_iterations, online_analysis_interval=None)
    # openmmtools resumes from the last checkpoint: every stopping point is one.
    interval = math.gcd(settings.n_iterations, settings.check_interval) if settings.n_iterations else settings.check_interval
    # analysis_atoms (the ligand): their positions are written every iteration, not only at
    # checkpoints (the samples of the model uncertainty, openmm_ani.freeenergy.model_uncertainty)
    reporter = multistate.MultiStateReporter(storage, checkpoint_interval=interval,
                                             analysis_particle_indices=tuple(int(i) for i in analysis_atoms))
    with stdout_to_debug("openmmtools ReplicaExchangeSampler.create"):  # its citation block
        sampler.create(thermodynamic_states, sampler_state, reporter, metadata={"lambdas": [float(v) for v in lambdas]})
    return sampler, reporter, (thermodynamic_states[0], sampler_state)


def _warm_cache(shared: Any, move: Any, thermodynamic_state: Any, sampler_state: Any) -> None:
    """Create the propagation Context in ``shared`` before openmmtools' first energy evaluation.

    At iteration 0 openmmtools computes energies before propagating; with an empty cache that
    builds a Context with a default integrator, and the move then builds a second one. A
    zero-step application of the move creates the move's Context first, which the energy
    evaluation then reuses (a Context costs a copy of the System and a load of the TorchScript file).
    """
    warm = copy.deepcopy(move)
    warm.n_steps = 0
    warm.apply(thermodynamic_state, copy.deepcopy(sampler_state), context_cache=shared)


def _finished(storage: str, n_iterations: int) -> bool:
    """The reporter file's last checkpoint is at or beyond ``n_iterations``."""
    from openmmtools import multistate

    reporter = multistate.MultiStateReporter(storage, open_mode="r")
    try:
        return int(reporter.read_last_iteration(last_checkpoint=True)) >= n_iterations
    finally:
        reporter.close()


def run_replica_exchange(
    system: openmm.System,
    positions: Any,
    settings: ProtocolSettings,
    storage: str,
    box_vectors: Optional[Any] = None,
    progress: bool = True,
    description: str = "replica exchange",
    lambdas: Optional[Sequence[float]] = None,
    target_error_kt: Optional[float] = None,
    max_time_s: Optional[float] = None,
    stop: StopFlag = never,
    analysis_atoms: Sequence[int] = (),
    clock: Clock = time.monotonic,
) -> Optional[MBARResult]:
    """Run (or resume) replica exchange over ``lambda_interpolate`` and analyse it with MBAR.

    Parameters
    ----------
    system
        An interpolating System (``lambda_interpolate`` parameter). It is not modified.
    positions
        Initial positions (Quantity, or ``[N, 3]`` nm).
    settings
        Protocol settings (``n_iterations`` is the iteration limit).
    storage
        Path of the ``.nc`` reporter file; an existing file is resumed.
    box_vectors
        Initial box vectors (periodic systems), or ``None`` for the System's defaults.
    progress
        Show a progress bar (rank 0).
    description
        Label of the progress bar.
    lambdas
        Window values; default ``settings.lambda_values()``.
    target_error_kt
        Stop once the MBAR uncertainty is at most this (kT); ``None``: run to the limit.
    max_time_s
        Wall-clock budget of this call, s, on ``clock``: the run stops at the last checkpoint before
        it (from the measured time per iteration), and after any iteration once it is spent (at
        least one iteration runs); the iterations after the last checkpoint are then redone by a rerun.
    stop
        Polled between chunks of MD steps (one process) and after each iteration; when true the
        run closes its file and raises ``KeyboardInterrupt`` (a rerun resumes from the last checkpoint).
    analysis_atoms
        Particles whose positions (nm) a new reporter file stores at every iteration (the ligand);
        a resumed file keeps the set it was created with.
    clock
        The clock of ``max_time_s``, s.

    Returns
    -------
    MBARResult or None
        The MBAR result on MPI rank 0, ``None`` on other ranks.
    """
    from openmmtools import multistate
    from tqdm import tqdm

    settings.validate()
    if lambdas is None:
        lambdas = settings.lambda_values()
        if lambdas is None:
            raise ValueError("the windows are chosen by a pilot (schedule='auto'): pass lambdas")
    lambdas = [float(v) for v in lambdas]
    start = clock()
    move = SeededLangevinDynamicsMove(timestep=settings.timestep, collision_rate=settings.collision_rate,
                                      n_steps=settings.steps_per_iteration, reassign_velocities=False, seed=settings.seed)
    if os.path.exists(storage) and broadcast(_finished(storage, settings.n_iterations) if is_root() else None):
        return analyze_storage(storage, lambdas) if is_root() else None
    warm_with = None
    if os.path.exists(storage):
        logger.info("resuming replica exchange from %s", storage)
        reporter = multistate.MultiStateReporter(storage, open_mode="r+")
        with stdout_to_debug("openmmtools ReplicaExchangeSampler.from_storage"):  # its citation block
            sampler = multistate.ReplicaExchangeSampler.from_storage(reporter)
    else:
        sampler, reporter, warm_with = _new_sampler(system, positions, box_vectors, lambdas, settings, storage, move, analysis_atoms)
    # One cache for energies and propagation (one Context per process), platform chosen here. In one process
    # its integrators poll the stop flag between chunks of MD steps; under MPI the ranks stop together,
    # after the iteration.
    options: Dict[str, Any] = dict(capacity=None, time_to_live=None, platform=platform(settings.platform))
    shared = _InterruptibleCache(stop, **options) if rank_and_size()[1] == 1 else cache.ContextCache(**options)
    sampler.energy_context_cache = shared
    sampler.sampler_context_cache = shared
    if warm_with is not None:
        _warm_cache(shared, move, *warm_with)
    sampler.number_of_iterations = max(settings.n_iterations, sampler.iteration)
    _seed_mixing(settings.seed + sampler.iteration)
    checkpoint = reporter.checkpoint_interval
    bar = tqdm(total=settings.n_iterations, initial=sampler.iteration, desc=description, disable=not (progress and is_root()))
    interrupted = False
    loop_start, first_iteration = clock(), sampler.iteration
    try:
        while sampler.iteration < settings.n_iterations:
            try:
                sampler.run(n_iterations=1)
            except Stopped:  # mid-iteration: the file stays at its last checkpoint, where a rerun resumes
                interrupted = True
                break
            bar.update(1)
            if stop_requested(stop):  # after every iteration (the MD of one process polls it too)
                interrupted = True
                break
            at_checkpoint = sampler.iteration % checkpoint == 0 or sampler.iteration >= settings.n_iterations
            if max_time_s is not None:
                # a rerun resumes from a checkpoint: stop at this one when the next would fall past the budget
                now = clock()
                per_iteration = (now - loop_start) / max(sampler.iteration - first_iteration, 1)
                if broadcast(now - start >= max_time_s or (at_checkpoint and now - start + checkpoint * per_iteration > max_time_s)):
                    logger.info("%s: time budget reached at iteration %d%s", description, sampler.iteration, "" if at_checkpoint
                                else f" (a rerun resumes from iteration {sampler.iteration // checkpoint * checkpoint})")
                    break
            if not at_checkpoint:
                continue
            if target_error_kt is not None and sampler.iteration % settings.check_interval == 0:
                error = _current_error(reporter, lambdas) if is_root() else None
                if broadcast(error is not None and error <= target_error_kt):
                    logger.info("%s: MBAR error %.3f kT reached the target at iteration %d", description, error, sampler.iteration)
                    break
    finally:
        bar.close()
        reporter.close()  # flush everything before the analysis reads the file
        del sampler
    if interrupted:
        raise KeyboardInterrupt
    if not is_root():
        return None
    return analyze_storage(storage, lambdas)


def _current_error(reporter: Any, lambdas: List[float]) -> Optional[float]:
    """MBAR uncertainty (kT) of the samples written so far, or ``None`` when MBAR fails or there are fewer
    decorrelated iterations than the verdict needs (:data:`~.analysis.MIN_EFFECTIVE`): the run does not
    stop on its target before the verdict could call it converged."""
    energies, states = read_samples(reporter)
    if energies.shape[0] < MIN_EFFECTIVE:
        return None
    result = mbar_from_energies(energies, states, lambdas, history_points=0)
    if result.status != "ok" or result.n_effective < MIN_EFFECTIVE:
        return None
    return result.d_delta_f_kt
