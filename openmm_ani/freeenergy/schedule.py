"""Lambda windows from pilot sampling: equal spacing in thermodynamic length.

The interpolating System's energy is linear in lambda, ``U(lambda) = U_0 + lambda * dU``, so the
reduced-potential difference of two windows is ``(lambda_j - lambda_i) * beta * dU`` and its
spread in window lambda is ``|lambda_j - lambda_i| * sigma(lambda)`` with ``sigma(lambda)`` the
standard deviation of ``beta * dU/dlambda`` sampled at lambda. Neighbouring windows overlap well
when that spread is about 1 kT. The thermodynamic length ``L = integral_0^1 sigma(lambda) dlambda``
(Crooks, PRL 99, 100602 (2007); Shenfeld et al., PRE 80, 046705 (2009)) counts the windows a
path needs; placing them at equal increments of the cumulative length gives every neighbour
pair the same spread.

The pilot runs short Langevin MD at each of ``settings.pilot_lambdas`` (independently, so they
are spread over MPI ranks), records ``dU/dlambda`` from OpenMM's energy-parameter derivative,
interpolates ``log sigma`` piecewise linearly between the pilot values and integrates it.

With a time budget (:mod:`.budget`) each pilot window gets an even share of the time left;
its equilibration and sampling stop when their parts of that share are spent (at least
:data:`MIN_PILOT_SAMPLES` samples), and the schedule records the steps and samples taken.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import openmm
from openmm import unit

from ..openmm.embedding import LAMBDA_PARAMETER
from .budget import Clock
from .interrupt import StopFlag, never
from .md import make_context, run_steps
from .mpi import merge_all, rank_and_size
from .settings import ProtocolSettings

logger = logging.getLogger(__name__)

#: Points of the lambda grid on which the interpolated spread is integrated.
_GRID = 2001
#: Fewest samples of ``dU/dlambda`` per pilot window when the budget shortens the pilot
#: (the standard deviation needs 2; 3 keep it from being a single difference).
MIN_PILOT_SAMPLES = 3


@dataclass
class Schedule:
    """Windows chosen from a pilot.

    Attributes
    ----------
    lambdas
        The windows (0 ... 1).
    pilot_lambdas, pilot_sigma_kt
        Where the pilot sampled, and the standard deviation of ``beta dU/dlambda`` there (kT).
    thermodynamic_length_kt
        ``integral sigma dlambda`` over [0, 1].
    length_per_window
        The target spacing (kT).
    pilot_steps
        MD steps the pilot ran (all pilot lambdas).
    pilot_samples_taken, pilot_equilibration_taken
        Samples and equilibration steps of each pilot lambda (fewer than the settings' when
        the time budget shortened the pilot).
    pilot_shortened
        Whether the time budget shortened the pilot.
    """

    lambdas: List[float]
    pilot_lambdas: List[float]
    pilot_sigma_kt: List[float]
    thermodynamic_length_kt: float
    length_per_window: float
    pilot_steps: int = 0
    pilot_samples_taken: List[int] = field(default_factory=list)
    pilot_equilibration_taken: List[int] = field(default_factory=list)
    pilot_shortened: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def cumulative_length(pilot_lambdas: Sequence[float], sigma: Sequence[float]) -> np.ndarray:
    """``[grid, L(grid)]``: the cumulative thermodynamic length on a fine lambda grid.

    ``log sigma`` is interpolated linearly between the pilot points (sigma spans orders of
    magnitude near lambda 0 when the MM ensemble gives broad ANI energies).
    """
    x = np.asarray(pilot_lambdas, dtype=float)
    s = np.maximum(np.asarray(sigma, dtype=float), 1e-6)
    grid = np.linspace(0.0, 1.0, _GRID)
    sigma_grid = np.exp(np.interp(grid, x, np.log(s)))
    steps = 0.5 * (sigma_grid[1:] + sigma_grid[:-1]) * np.diff(grid)
    return np.stack([grid, np.concatenate([[0.0], np.cumsum(steps)])])


def windows_from_sigma(pilot_lambdas: Sequence[float], sigma: Sequence[float], length_per_window: float, max_states: int) -> List[float]:
    """Windows equally spaced in thermodynamic length, at most ``length_per_window`` apart.

    Parameters
    ----------
    pilot_lambdas, sigma
        Pilot lambda values (0 ... 1) and the spread of ``beta dU/dlambda`` there (kT).
    length_per_window
        Largest thermodynamic length between neighbours (kT).
    max_states
        Upper bound on the number of windows (the spacing grows beyond the target then).
    """
    grid, length = cumulative_length(pilot_lambdas, sigma)
    total = float(length[-1])
    n = int(min(max_states, max(2, math.ceil(total / length_per_window - 1e-9) + 1)))
    targets = np.linspace(0.0, total, n)
    values = np.interp(targets, length, grid)
    values[0], values[-1] = 0.0, 1.0
    rounded = [0.0] + [round(float(v), 5) for v in values[1:-1]] + [1.0]
    return sorted(set(rounded))


def _context(system: openmm.System, settings: ProtocolSettings, seed: int) -> openmm.Context:
    integrator = openmm.LangevinMiddleIntegrator(settings.temperature, settings.collision_rate, settings.timestep)
    integrator.setRandomNumberSeed(seed)
    return make_context(system, integrator, settings.platform)


def sample_derivative(
    context: openmm.Context, positions: Any, box_vectors: Optional[Any], lam: float, settings: ProtocolSettings, seed: int,
    max_time_s: Optional[float] = None, clock: Clock = time.monotonic, stop: StopFlag = never,
) -> np.ndarray:
    """``beta dU/dlambda`` (kT) sampled by Langevin MD at ``lam`` from ``positions``.

    Parameters
    ----------
    max_time_s
        Time for this window, s, on ``clock``; ``None``: all the settings' steps. Equilibration
        stops once its share of it (its share of the settings' steps) is spent, sampling once
        all of it is, after at least :data:`MIN_PILOT_SAMPLES` samples.
    stop
        Polled between chunks of MD steps (:func:`~.md.run_steps`).

    Returns
    -------
    numpy.ndarray
        ``[settings.pilot_samples]`` values, fewer when the time ran out.
    """
    return _sample(context, positions, box_vectors, lam, settings, seed, max_time_s, clock, stop)[0]


def _sample(context: openmm.Context, positions: Any, box_vectors: Optional[Any], lam: float, settings: ProtocolSettings, seed: int,
            max_time_s: Optional[float], clock: Clock, stop: StopFlag) -> Tuple[np.ndarray, int]:
    """:func:`sample_derivative`'s samples and the equilibration steps it ran."""
    kt = (unit.MOLAR_GAS_CONSTANT_R * settings.temperature).value_in_unit(unit.kilojoule_per_mole)
    started = clock()
    if box_vectors is not None:
        context.setPeriodicBoxVectors(*box_vectors)
    context.setPositions(positions)
    context.setParameter(LAMBDA_PARAMETER, float(lam))
    context.setVelocitiesToTemperature(settings.temperature, seed)
    integrator = context.getIntegrator()
    sampling = settings.pilot_samples * settings.pilot_steps_per_sample
    equilibration = settings.pilot_equilibration_steps
    if max_time_s is None:
        run_steps(integrator, equilibration, stop)
    else:  # in pieces of a sample's steps, until its share of the time is spent
        share = max_time_s * equilibration / max(equilibration + sampling, 1)
        done = 0
        while done < equilibration and clock() - started < share:
            piece = min(settings.pilot_steps_per_sample, equilibration - done)
            run_steps(integrator, piece, stop)
            done += piece
        equilibration = done
    values = []
    for k in range(settings.pilot_samples):
        if max_time_s is not None and k >= MIN_PILOT_SAMPLES and clock() - started >= max_time_s:
            break
        run_steps(integrator, settings.pilot_steps_per_sample, stop)
        state = context.getState(getParameterDerivatives=True)
        values.append(state.getEnergyParameterDerivatives()[LAMBDA_PARAMETER] / kt)
    return np.asarray(values, dtype=float), equilibration


def pilot_schedule(
    system: openmm.System, positions: Any, settings: ProtocolSettings, box_vectors: Optional[Any] = None, progress: bool = True,
    description: str = "pilot", max_time_s: Optional[float] = None, clock: Clock = time.monotonic, stop: StopFlag = never,
) -> Schedule:
    """Choose the windows of a leg from pilot sampling (collective under MPI: pilot lambdas are spread over ranks).

    Parameters
    ----------
    system
        The interpolating System (``lambda_interpolate``, with its energy derivative).
    positions, box_vectors
        Start configuration (Quantity or nm) and box of a periodic System.
    settings
        ``pilot_lambdas``, ``pilot_samples``, ``pilot_steps_per_sample``,
        ``pilot_equilibration_steps``, ``length_per_window``, ``max_states`` and the MD settings.
    progress
        Show a progress bar (rank 0).
    description
        Label of the progress bar and of the log records.
    max_time_s
        Time for the pilot from now, s, on ``clock`` (Context creation included); each pilot
        lambda of a rank gets an even share of what is left when it starts. ``None``: no limit.
    stop
        Polled between chunks of MD steps; when set, the MD raises :class:`~.interrupt.Stopped`.

    Returns
    -------
    Schedule
    """
    from tqdm import tqdm

    started = clock()
    rank, size = rank_and_size()
    pilot = [float(v) for v in settings.pilot_lambdas]
    mine = list(range(rank, len(pilot), size))
    context = _context(system, settings, settings.seed + 104729 * (rank + 1))
    bar = tqdm(total=len(pilot), desc=description, disable=not (progress and rank == 0))
    local: Dict[int, Tuple[List[float], int]] = {}
    for n, k in enumerate(mine):
        share = None if max_time_s is None else (max_time_s - (clock() - started)) / (len(mine) - n)
        values, equilibration = _sample(context, positions, box_vectors, pilot[k], settings, settings.seed + k, share, clock, stop)
        local[k] = (values.tolist(), equilibration)
        bar.update(size)
    bar.close()
    del context
    local = merge_all(local)  # every rank's pilot lambdas, on every rank
    sigma = [float(np.std(local[k][0], ddof=1)) for k in range(len(pilot))]
    lambdas = windows_from_sigma(pilot, sigma, settings.length_per_window, settings.max_states)
    total = float(cumulative_length(pilot, sigma)[1, -1])
    samples = [len(local[k][0]) for k in range(len(pilot))]
    equilibrations = [int(local[k][1]) for k in range(len(pilot))]
    shortened = min(samples) < settings.pilot_samples or min(equilibrations) < settings.pilot_equilibration_steps
    if shortened:
        logger.warning("%s: shortened to the time budget's share: %d-%d of %d samples and %d-%d of %d equilibration steps "
                       "per pilot lambda", description, min(samples), max(samples), settings.pilot_samples, min(equilibrations),
                       max(equilibrations), settings.pilot_equilibration_steps)
    logger.info("pilot: thermodynamic length %.1f kT -> %d windows", total, len(lambdas))
    steps = sum(equilibrations) + sum(samples) * settings.pilot_steps_per_sample
    return Schedule(lambdas=lambdas, pilot_lambdas=pilot, pilot_sigma_kt=sigma, thermodynamic_length_kt=total,
                    length_per_window=float(settings.length_per_window), pilot_steps=int(steps), pilot_samples_taken=samples,
                    pilot_equilibration_taken=equilibrations, pilot_shortened=bool(shortened))
