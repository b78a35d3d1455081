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
"""

import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import openmm
from openmm import unit

from ..openmm.embedding import LAMBDA_PARAMETER
from .settings import ProtocolSettings

logger = logging.getLogger(__name__)

#: Points of the lambda grid on which the interpolated spread is integrated.
_GRID = 2001


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
    """

    lambdas: List[float]
    pilot_lambdas: List[float]
    pilot_sigma_kt: List[float]
    thermodynamic_length_kt: float
    length_per_window: float
    pilot_steps: int = 0

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
    if settings.platform:
        return openmm.Context(system, integrator, openmm.Platform.getPlatformByName(settings.platform))
    return openmm.Context(system, integrator)


def sample_derivative(
    context: openmm.Context, positions: Any, box_vectors: Optional[Any], lam: float, settings: ProtocolSettings, seed: int
) -> np.ndarray:
    """``beta dU/dlambda`` (kT) sampled by Langevin MD at ``lam`` from ``positions``.

    Returns
    -------
    numpy.ndarray
        ``[settings.pilot_samples]`` values.
    """
    kt = (unit.MOLAR_GAS_CONSTANT_R * settings.temperature).value_in_unit(unit.kilojoule_per_mole)
    if box_vectors is not None:
        context.setPeriodicBoxVectors(*box_vectors)
    context.setPositions(positions)
    context.setParameter(LAMBDA_PARAMETER, float(lam))
    context.setVelocitiesToTemperature(settings.temperature, seed)
    integrator = context.getIntegrator()
    integrator.step(settings.pilot_equilibration_steps)
    values = np.empty(settings.pilot_samples)
    for k in range(settings.pilot_samples):
        integrator.step(settings.pilot_steps_per_sample)
        state = context.getState(getParameterDerivatives=True)
        values[k] = state.getEnergyParameterDerivatives()[LAMBDA_PARAMETER] / kt
    return values


def pilot_schedule(
    system: openmm.System, positions: Any, settings: ProtocolSettings, box_vectors: Optional[Any] = None, progress: bool = True, description: str = "pilot"
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

    Returns
    -------
    Schedule
    """
    import mpiplus
    from tqdm import tqdm

    comm = mpiplus.get_mpicomm()
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    pilot = [float(v) for v in settings.pilot_lambdas]
    mine = list(range(rank, len(pilot), size))
    context = _context(system, settings, settings.seed + 104729 * (rank + 1))
    bar = tqdm(total=len(pilot), desc=description, disable=not (progress and rank == 0))
    local: Dict[int, List[float]] = {}
    for k in mine:
        local[k] = sample_derivative(context, positions, box_vectors, pilot[k], settings, settings.seed + k).tolist()
        bar.update(size)
    bar.close()
    del context
    if comm is not None and size > 1:
        for part in comm.allgather(local):
            local.update(part)
    sigma = [float(np.std(local[k], ddof=1)) for k in range(len(pilot))]
    lambdas = windows_from_sigma(pilot, sigma, settings.length_per_window, settings.max_states)
    total = float(cumulative_length(pilot, sigma)[1, -1])
    logger.info("pilot: thermodynamic length %.1f kT -> %d windows", total, len(lambdas))
    steps = len(pilot) * (settings.pilot_equilibration_steps + settings.pilot_samples * settings.pilot_steps_per_sample)
    return Schedule(lambdas=lambdas, pilot_lambdas=pilot, pilot_sigma_kt=sigma, thermodynamic_length_kt=total,
                    length_per_window=float(settings.length_per_window), pilot_steps=int(steps))
