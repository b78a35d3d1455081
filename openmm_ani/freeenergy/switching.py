"""Nonequilibrium switching between MM (lambda 0) and ML/MM (lambda 1), and BAR.

Start configurations are drawn from Langevin MD at each end state; each switch changes
``lambda_interpolate`` linearly over ``switching_steps`` steps with openmmtools'
``AlchemicalNonequilibriumLangevinIntegrator``, which accumulates the protocol work. The
free energy is estimated with pymbar's BAR (bootstrap uncertainty over the work values);
forward and reverse Jarzynski (exponential averaging, pymbar) are reported as diagnostics.
"""

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import openmm
from openmm import unit

from ..openmm.embedding import LAMBDA_PARAMETER
from .settings import ProtocolSettings

logger = logging.getLogger(__name__)


@dataclass
class SwitchingResult:
    """Work values (kT) and free-energy estimates (kT) of one leg.

    Attributes
    ----------
    forward_work, reverse_work
        Protocol work of the MM -> ML/MM and ML/MM -> MM switches, kT.
    bar_delta_f_kt, bar_d_delta_f_kt
        BAR estimate and its bootstrap standard error.
    bar_analytic_d_delta_f_kt
        pymbar's asymptotic BAR uncertainty.
    jarzynski_forward_kt, jarzynski_reverse_kt
        Exponential averages of the forward work and of minus the reverse work.
    """

    forward_work: List[float]
    reverse_work: List[float]
    bar_delta_f_kt: float
    bar_d_delta_f_kt: float
    bar_analytic_d_delta_f_kt: float
    jarzynski_forward_kt: float
    jarzynski_reverse_kt: float

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def bar_estimate(forward_work: np.ndarray, reverse_work: np.ndarray, n_bootstrap: int, seed: int) -> Tuple[float, float, float]:
    """BAR free energy (kT) with bootstrap and analytic uncertainties (pymbar).

    Parameters
    ----------
    forward_work, reverse_work
        Work values of the forward and reverse switches, kT.
    n_bootstrap
        Bootstrap resamples (0: the bootstrap error is NaN).
    seed
        Random seed of the bootstrap.

    Returns
    -------
    (delta_f, bootstrap_error, analytic_error)
    """
    from pymbar import other_estimators

    forward_work = np.asarray(forward_work, dtype=float)
    reverse_work = np.asarray(reverse_work, dtype=float)
    constant = forward_work.mean()
    if np.allclose(forward_work, constant, rtol=0, atol=1e-8) and np.allclose(reverse_work, -constant, rtol=0, atol=1e-8):
        # Deterministic work (the end states differ by a constant): BAR's solution is that
        # constant with no error; pymbar's bracketing solver cannot handle zero variance.
        return float(constant), 0.0, 0.0
    result = other_estimators.bar(forward_work, reverse_work, uncertainty_method="BAR")
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(n_bootstrap):
        f = rng.choice(forward_work, size=forward_work.size, replace=True)
        r = rng.choice(reverse_work, size=reverse_work.size, replace=True)
        estimates.append(other_estimators.bar(f, r, compute_uncertainty=False)["Delta_f"])
    bootstrap = float(np.std(estimates, ddof=1)) if len(estimates) > 1 else float("nan")
    return float(result["Delta_f"]), bootstrap, float(result["dDelta_f"])


def _integrator(settings: ProtocolSettings, expression: str) -> openmm.CustomIntegrator:
    from openmmtools.integrators import AlchemicalNonequilibriumLangevinIntegrator

    return AlchemicalNonequilibriumLangevinIntegrator(
        alchemical_functions={LAMBDA_PARAMETER: expression},
        splitting="O V R H R V O",
        nsteps_neq=settings.switching_steps,
        temperature=settings.temperature_k * unit.kelvin,
        collision_rate=settings.collision_rate_per_ps / unit.picosecond,
        timestep=settings.timestep_fs * unit.femtosecond,
    )


def _end_state_samples(
    system: openmm.System, positions: Any, box_vectors: Any, lam: float, settings: ProtocolSettings, platform: Optional[openmm.Platform], progress: Any
) -> List[openmm.State]:
    integrator = openmm.LangevinMiddleIntegrator(
        settings.temperature_k * unit.kelvin, settings.collision_rate_per_ps / unit.picosecond, settings.timestep_fs * unit.femtosecond
    )
    integrator.setRandomNumberSeed(settings.seed + int(lam))
    context = openmm.Context(system, integrator, platform) if platform else openmm.Context(system, integrator)
    if box_vectors is not None:
        context.setPeriodicBoxVectors(*box_vectors)
    context.setPositions(positions)
    context.setParameter(LAMBDA_PARAMETER, lam)
    context.setVelocitiesToTemperature(settings.temperature_k * unit.kelvin, settings.seed)
    integrator.step(settings.equilibration_steps)
    samples = []
    for _ in range(settings.n_switches):
        integrator.step(settings.steps_between_switches)
        samples.append(context.getState(getPositions=True, getVelocities=True))
        progress.update(1)
    return samples


def run_switching(
    system: openmm.System,
    positions: Any,
    settings: ProtocolSettings,
    box_vectors: Optional[Any] = None,
    progress: bool = True,
    description: str = "switching",
) -> SwitchingResult:
    """Forward and reverse nonequilibrium switches and their BAR estimate.

    Parameters
    ----------
    system
        An interpolating System (``lambda_interpolate``).
    positions
        Initial positions (Quantity or nm).
    settings
        Protocol settings (``n_switches`` per direction, ``switching_steps`` ...).
    box_vectors
        Initial box vectors of a periodic system.
    progress
        Show progress bars.
    description
        Label of the progress bars.

    Returns
    -------
    SwitchingResult
    """
    from tqdm import tqdm

    settings.validate()
    if settings.n_switches < 1:
        raise ValueError("n_switches must be at least 1 for the switching leg")
    platform = openmm.Platform.getPlatformByName(settings.platform) if settings.platform else None
    works: Dict[str, List[float]] = {}
    for direction, start, expression in (("forward", 0.0, "lambda"), ("reverse", 1.0, "1 - lambda")):
        bar = tqdm(total=2 * settings.n_switches, desc=f"{description} {direction}", disable=not progress)
        samples = _end_state_samples(system, positions, box_vectors, start, settings, platform, bar)
        integrator = _integrator(settings, expression)
        integrator.setRandomNumberSeed(settings.seed + 7)
        context = openmm.Context(system, integrator, platform) if platform else openmm.Context(system, integrator)
        works[direction] = []
        for state in samples:
            context.setState(state)
            context.setParameter(LAMBDA_PARAMETER, start)
            integrator.reset()
            integrator.step(settings.switching_steps)
            works[direction].append(float(integrator.get_protocol_work(dimensionless=True)))
            bar.update(1)
        bar.close()
        del context, integrator
    from pymbar import other_estimators

    forward = np.array(works["forward"])
    reverse = np.array(works["reverse"])
    delta_f, bootstrap, analytic = bar_estimate(forward, reverse, settings.n_bootstrap, settings.seed)
    jf = float(other_estimators.exp(forward, compute_uncertainty=False)["Delta_f"])
    jr = -float(other_estimators.exp(reverse, compute_uncertainty=False)["Delta_f"])
    return SwitchingResult(
        forward_work=forward.tolist(),
        reverse_work=reverse.tolist(),
        bar_delta_f_kt=delta_f,
        bar_d_delta_f_kt=bootstrap,
        bar_analytic_d_delta_f_kt=analytic,
        jarzynski_forward_kt=jf,
        jarzynski_reverse_kt=jr,
    )
