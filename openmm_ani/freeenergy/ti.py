"""Thermodynamic integration (TI) over the replica-exchange windows: a third estimator beside MBAR and BAR.

The interpolating System's energy is linear in lambda, ``U(lambda) = U0 + lambda * dU``, so the
integrand of one sample needs no extra force evaluation: from the reduced potentials the
openmmtools reporter stores for every sample in every state,

    a = beta dU/dlambda = (u_K - u_0) / (lambda_K - lambda_0)

(kT per unit lambda; the pV term of NPT is the same in every state and cancels). TI integrates the
window means ``<a>_lambda`` over lambda: ``dF = integral_0^1 <a>_lambda dlambda`` (kT).

**The rule.** For an energy linear in lambda the slope of the integrand is known exactly from the
same samples: ``d<a>/dlambda = -Var_lambda(a)`` (the derivative of a canonical average; the second
derivative of U vanishes). :func:`integrate` uses it in the cubic-Hermite (end-corrected) trapezoid
rule, per gap of width h: ``h (f_i + f_j) / 2 + h^2 (f'_i - f'_j) / 12``, exact for cubic
integrands (error O(h^5) per gap) where the trapezoid rule is exact only for straight lines.
``<a>`` is steep and curved where the windows crowd (equal thermodynamic length puts them where
``Var(a)`` is large): on the analytic case of ``tests/freeenergy/test_ti.py`` (wells stiffening
100x, nine geometric windows as the pilot places them, exact dF 13.82 kT) the plain trapezoid is
0.78 kT too high and the corrected rule 0.05 kT low. A cubic spline through the means is no
alternative: with five windows it is tens of kT off there. The correction needs the gaps to be
short in thermodynamic length (``h sigma`` of order 1 kT, as the pilot's schedule and MBAR's
overlap need anyway); over gaps many kT long it overshoots (nine equally spaced windows on that
case: corrected 26 kT low, trapezoid 12 kT high).

**The discretisation estimate** is ``|corrected - trapezoid|``, the size of the correction: it
bounded the corrected rule's error on every grid tried on the analytic case (3 to 17 windows,
geometric or equally spaced), but loosely (0.83 kT against 0.05 kT with the nine geometric
windows), so the verdict's MBAR-TI check that adds it is lenient where windows are sparse.
A Richardson estimate from every other window would be tight in the asymptotic regime but
underestimates the error by orders of magnitude outside it.

**The statistical uncertainty.** Window k contributes ``w_k <a>_k + c_k Var_k(a)`` (trapezoid
weight ``w_k``, Hermite coefficient ``c_k``); its standard error is that of the mean of the
influence series ``w_k a + c_k (a - <a>_k)^2`` over the window's samples (which carries the
mean's error, the variance's error and their covariance),
``SE_k = std * sqrt(g_k / n_k)``, with ``g_k >= 1`` pymbar's statistical inefficiency of that
series. The samples are the decorrelated iterations MBAR uses (subsampled by the inefficiency of
the sum over replicas); ``g_k`` catches the correlation left in one window's series, whose
samples come from whichever replica visited the window. Windows are taken as independent:
``sigma_TI = sqrt(sum_k SE_k^2)``.

Fewer than :data:`MIN_SAMPLES_PER_WINDOW` samples in a window give no error estimate:
``status="insufficient"`` with the reason in ``message``, and a NaN error (never 0).
"""

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

#: Least samples in every window for a standard error (a sample variance needs two).
MIN_SAMPLES_PER_WINDOW = 2
#: Largest departure (kT) of the stored reduced potentials from linearity in lambda that is
#: accepted silently; beyond it TI's integrand is not ``(u_K - u_0) / (lambda_K - lambda_0)``.
NONLINEARITY_WARNING_KT = 0.1
#: Reason given when a window has too few samples.
NOT_ENOUGH_SAMPLES = "not enough samples"


@dataclass
class TIResult:
    """TI estimate of lambda 0 -> 1 (energies in kT; see the module docstring).

    Attributes
    ----------
    status
        ``"ok"``, or ``"insufficient"`` (a window has fewer than :data:`MIN_SAMPLES_PER_WINDOW`
        samples: no error estimate; see ``message``).
    delta_f_kt
        Cubic-Hermite (slope-corrected) trapezoid integral, kT.
    d_delta_f_kt
        Its statistical uncertainty, kT (NaN when insufficient).
    trapezoid_kt
        Plain trapezoid integral, kT.
    discretisation_kt
        ``|delta_f_kt - trapezoid_kt|``, kT (NaN when insufficient).
    lambdas
        Window values.
    mean_kt, variance_kt2
        Per window: mean (kT) and variance (kT^2) of ``beta dU/dlambda``.
    standard_error_kt
        Per window: standard error of the window's contribution to the integral, kT.
    statistical_inefficiency
        Per window: ``g_k`` of the contribution series (>= 1).
    n_samples
        Per window: samples used.
    max_nonlinearity_kt
        Largest ``|u_k - u_0 - (lambda_k - lambda_0) a|`` over the samples, kT (0 for a System
        linear in lambda, up to rounding of the stored energies).
    message
        Why there is no error estimate, or ``""``.
    """

    status: str
    delta_f_kt: float
    d_delta_f_kt: float
    trapezoid_kt: float
    discretisation_kt: float
    lambdas: List[float]
    mean_kt: List[float] = field(default_factory=list)
    variance_kt2: List[float] = field(default_factory=list)
    standard_error_kt: List[float] = field(default_factory=list)
    statistical_inefficiency: List[float] = field(default_factory=list)
    n_samples: List[int] = field(default_factory=list)
    max_nonlinearity_kt: float = 0.0
    message: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def weights(lambdas: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """Trapezoid weights ``w_k`` and Hermite slope coefficients ``s_k`` of the windows.

    ``integral f = sum_k w_k f(lambda_k) + sum_k s_k f'(lambda_k)`` with
    ``w_k = (h_{k-1} + h_k) / 2`` and ``s_k = (h_k^2 - h_{k-1}^2) / 12`` (``h_k`` the width of
    the gap above window k; 0 beyond the ends).
    """
    lam = np.asarray(lambdas, dtype=float)
    gaps = np.diff(lam)
    below = np.concatenate([[0.0], gaps])
    above = np.concatenate([gaps, [0.0]])
    return (below + above) / 2.0, (above**2 - below**2) / 12.0


def integrate(lambdas: Sequence[float], values: Sequence[float], slopes: Sequence[float]) -> Tuple[float, float]:
    """``(cubic-Hermite integral, trapezoid integral)`` of a function known with its slope at ``lambdas``.

    Parameters
    ----------
    lambdas
        Increasing abscissae.
    values, slopes
        The function and its derivative at each abscissa (any unit; the integrals are in that
        unit times the unit of lambda).
    """
    w, s = weights(lambdas)
    trapezoid = float(np.dot(w, np.asarray(values, dtype=float)))
    return trapezoid + float(np.dot(s, np.asarray(slopes, dtype=float))), trapezoid


def _inefficiency(series: np.ndarray) -> float:
    """pymbar's statistical inefficiency of ``series`` (1 for a constant or too short series)."""
    from pymbar import timeseries

    if series.size < MIN_SAMPLES_PER_WINDOW + 1 or np.std(series) == 0.0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return max(1.0, float(timeseries.statistical_inefficiency(series)))


def ti_from_energies(energies: np.ndarray, states: np.ndarray, lambdas: Sequence[float], indices: Sequence[int]) -> TIResult:
    """TI over replica-exchange samples (kT).

    Parameters
    ----------
    energies
        ``[n_iterations, n_replicas, n_states]`` reduced potentials (kT) of each replica in each state.
    states
        ``[n_iterations, n_replicas]`` state of each replica.
    lambdas
        Lambda of each state (increasing; the integral runs from the first to the last).
    indices
        The iterations to use (the decorrelated iterations after equilibration).

    Returns
    -------
    TIResult
        ``status="insufficient"`` with a NaN error when a window has fewer than
        :data:`MIN_SAMPLES_PER_WINDOW` samples.
    """
    lam = np.asarray(lambdas, dtype=float)
    index = np.asarray(indices, dtype=int)
    u = np.asarray(energies, dtype=float)[index]
    sampled = np.asarray(states, dtype=int)[index]
    a = (u[..., -1] - u[..., 0]) / (lam[-1] - lam[0])  # [n, R]: beta dU/dlambda of each sample
    linear = u[..., :1] + (lam - lam[0]) * a[..., None]
    nonlinearity = float(np.max(np.abs(u - linear))) if u.size else 0.0
    if nonlinearity > NONLINEARITY_WARNING_KT:
        logger.warning("TI: the reduced potentials depart from linearity in lambda by up to %.3g kT", nonlinearity)
    w, s = weights(lam)
    per_window = [a[sampled == k] for k in range(lam.size)]  # row-major: iteration order
    n = [int(x.size) for x in per_window]
    mean = [float(x.mean()) if x.size else float("nan") for x in per_window]
    base = dict(lambdas=[float(v) for v in lam], mean_kt=mean, n_samples=n, max_nonlinearity_kt=nonlinearity)
    if min(n) < MIN_SAMPLES_PER_WINDOW:
        worst = int(np.argmin(n))
        message = (f"{NOT_ENOUGH_SAMPLES}: {n[worst]} decorrelated sample(s) in window lambda={lam[worst]:g}, "
                   f"at least {MIN_SAMPLES_PER_WINDOW} needed")
        trapezoid = float(np.dot(w, mean))
        return TIResult(status="insufficient", delta_f_kt=trapezoid, d_delta_f_kt=float("nan"), trapezoid_kt=trapezoid,
                        discretisation_kt=float("nan"), message=message, **base)  # type: ignore[arg-type]
    variance = [float(np.var(x, ddof=1)) for x in per_window]
    errors, inefficiencies = [], []
    for k, x in enumerate(per_window):
        influence = w[k] * x + (-s[k]) * (x - mean[k]) ** 2  # slope = -variance
        g = _inefficiency(influence)
        inefficiencies.append(g)
        errors.append(float(np.std(influence, ddof=1) * math.sqrt(g / x.size)))
    corrected, trapezoid = integrate(lam, mean, [-v for v in variance])
    return TIResult(status="ok", delta_f_kt=corrected, d_delta_f_kt=float(math.sqrt(sum(e * e for e in errors))),
                    trapezoid_kt=trapezoid, discretisation_kt=abs(corrected - trapezoid), variance_kt2=variance,
                    standard_error_kt=errors, statistical_inefficiency=inefficiencies, **base)  # type: ignore[arg-type]
