"""MBAR analysis of replica-exchange energies, neighbour diagnostics, and the estimate against time.

The reduced potentials come straight from the openmmtools reporter file
(``energies[iteration, replica, state]`` and ``states[iteration, replica]``); the systems stored
in the file are never read, so analysing a run costs seconds whatever the size of the
serialised ANI force. Equilibration is detected on the sum over replicas of each replica's
reduced potential in its own state (pymbar's ``detect_equilibration``), the iterations after it
are subsampled by their statistical inefficiency, and pymbar's MBAR gives the free energy, its
uncertainty and the overlap matrix.

When MBAR cannot be solved (windows without overlap, pymbar's ``ParameterError``) the result
carries ``status="failed"`` and a diagnosis instead of raising: for each pair of neighbouring
windows the spread (standard deviation, kT) of their reduced-potential difference sampled in
both windows, which says where windows are missing (see :func:`windows_to_add`).
"""

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .ti import MIN_SAMPLES_PER_WINDOW, NOT_ENOUGH_SAMPLES, ti_from_energies

logger = logging.getLogger(__name__)

#: Neighbour overlap (MBAR overlap-matrix element) below which a pair of windows needs more windows between them.
MIN_NEIGHBOUR_OVERLAP = 0.03
#: Least decorrelated iterations / switches per direction for a verdict of converged; a leg's run
#: does not stop on its error target before it has them.
MIN_EFFECTIVE = 50


@dataclass
class MBARResult:
    """MBAR estimate of the MM -> ML/MM free energy of one leg (all energies in kT).

    Attributes
    ----------
    status
        ``"ok"`` or ``"failed"`` (MBAR could not be solved; see ``message``).
    delta_f_kt, d_delta_f_kt
        Free energy of lambda 1 relative to lambda 0 and its uncertainty (NaN when failed).
    overlap
        ``[n_states, n_states]`` MBAR overlap matrix (empty when failed).
    neighbour_overlaps
        ``overlap[i, i + 1]`` for each pair of neighbouring windows.
    neighbour_spread_kt
        Spread of ``u_{i+1} - u_i`` in windows i and i+1 (:func:`neighbour_spreads`).
    lambdas
        Window values.
    n_iterations
        Iterations in the file (the initial energies are iteration 0).
    n_equilibration_iterations
        Iterations discarded by equilibration detection.
    statistical_inefficiency
        Of the replica energy timeseries, in iterations.
    n_effective
        Number of decorrelated iterations used (each gives one sample per window).
    message
        Why MBAR failed or has no error estimate (``d_delta_f_kt`` NaN: fewer than
        :data:`~openmm_ani.freeenergy.ti.MIN_SAMPLES_PER_WINDOW` decorrelated iterations), or ``""``.
    ti
        ``TIResult.to_dict()`` of the same decorrelated iterations (:mod:`.ti`).
    """

    status: str
    delta_f_kt: float
    d_delta_f_kt: float
    overlap: List[List[float]]
    neighbour_overlaps: List[float]
    neighbour_spread_kt: List[float]
    lambdas: List[float]
    n_iterations: int
    n_equilibration_iterations: int
    statistical_inefficiency: float
    n_effective: float
    message: str = ""
    history: List[Dict[str, float]] = field(default_factory=list)
    ti: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def _decorrelated_iterations(energies: np.ndarray, states: np.ndarray) -> Tuple[np.ndarray, int, float, float]:
    """Indices of decorrelated iterations after equilibration, with (t0, g, n_eff)."""
    from pymbar import timeseries

    n_iterations, n_replicas = states.shape
    own = energies[np.arange(n_iterations)[:, None], np.arange(n_replicas)[None, :], states].sum(axis=1)
    if n_iterations < 4 or np.std(own) == 0.0:
        return np.arange(n_iterations), 0, 1.0, float(n_iterations)
    t0, g, n_eff = timeseries.detect_equilibration(own, fast=True)
    indices = np.asarray(timeseries.subsample_correlated_data(own[t0:], g=g)) + t0
    return indices, int(t0), float(g), float(n_eff)


def neighbour_spreads(u_kn: np.ndarray, sampled_state: np.ndarray) -> List[float]:
    """Spread (kT) of ``u_{i+1} - u_i`` for each pair of neighbouring windows.

    The geometric mean of the pair's two standard deviations, each over the samples of one
    window: an estimate of the gap's thermodynamic length (exact when both agree; between the
    two common interpolations of a spread that falls steeply along lambda).

    Parameters
    ----------
    u_kn
        ``[n_states, n_samples]`` reduced potentials of every sample in every window.
    sampled_state
        ``[n_samples]`` window each sample was drawn in.
    """
    spreads = []
    for i in range(u_kn.shape[0] - 1):
        diff = u_kn[i + 1] - u_kn[i]
        stds = [float(np.std(diff[sampled_state == k], ddof=1)) for k in (i, i + 1) if np.count_nonzero(sampled_state == k) > 1]
        spreads.append(float(np.exp(np.mean(np.log(np.maximum(stds, 1e-12))))) if stds else float("nan"))
    return spreads


def mbar_from_energies(energies: np.ndarray, states: np.ndarray, lambdas: Sequence[float], history_points: int = 8) -> MBARResult:
    """MBAR over replica-exchange samples.

    Parameters
    ----------
    energies
        ``[n_iterations, n_replicas, n_states]`` reduced potentials (kT) of each replica in each state.
    states
        ``[n_iterations, n_replicas]`` state of each replica.
    lambdas
        Window values, for the record.
    history_points
        Number of earlier iteration counts at which the estimate is repeated (for the plot of
        the estimate against simulation time); 0 for none.

    Returns
    -------
    MBARResult
        ``status="failed"`` with the neighbour spreads when MBAR cannot be solved.
    """
    from pymbar import MBAR
    from pymbar.utils import ParameterError

    energies = np.asarray(energies, dtype=float)
    states = np.asarray(states, dtype=int)
    n_iterations, n_replicas, n_states = energies.shape
    indices, t0, g, n_eff = _decorrelated_iterations(energies, states)
    u_kn = energies[indices].transpose(2, 0, 1).reshape(n_states, -1)
    sampled = states[indices].reshape(-1)
    n_k = np.bincount(sampled, minlength=n_states)
    spreads = neighbour_spreads(u_kn, sampled)
    base = dict(lambdas=[float(v) for v in lambdas], n_iterations=int(n_iterations - 1), n_equilibration_iterations=t0,
                statistical_inefficiency=g, n_effective=float(len(indices)), neighbour_spread_kt=spreads,
                ti=ti_from_energies(energies, states, lambdas, indices).to_dict())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mbar = MBAR(u_kn, n_k, solver_protocol="robust")
            result = mbar.compute_free_energy_differences()
            overlap = np.asarray(mbar.compute_overlap()["matrix"])
        delta_f, d_delta_f = float(result["Delta_f"][0, -1]), float(result["dDelta_f"][0, -1])
        message = ""
        if n_k.min() < MIN_SAMPLES_PER_WINDOW:  # pymbar's error of one sample per window is 0 or noise
            d_delta_f = float("nan")
            message = (f"{NOT_ENOUGH_SAMPLES}: {n_k.min()} decorrelated iteration(s), at least {MIN_SAMPLES_PER_WINDOW} "
                       f"needed for an error estimate")
        elif not (math.isfinite(delta_f) and math.isfinite(d_delta_f)):
            raise ParameterError(f"MBAR gave a non-finite estimate ({delta_f} +- {d_delta_f})")
    except (ParameterError, np.linalg.LinAlgError, FloatingPointError) as error:
        logger.warning("MBAR failed: %s", error)
        return MBARResult(status="failed", delta_f_kt=float("nan"), d_delta_f_kt=float("nan"), overlap=[],
                          neighbour_overlaps=[], message=f"MBAR failed: {error}", **base)  # type: ignore[arg-type]
    history: List[Dict[str, float]] = []
    if history_points > 0 and n_iterations > 2 * history_points:
        for stop in np.linspace(n_iterations / history_points, n_iterations, history_points).astype(int)[:-1]:
            part = mbar_from_energies(energies[:stop], states[:stop], lambdas, history_points=0)
            history.append({"iteration": int(stop - 1), "delta_f_kt": part.delta_f_kt, "d_delta_f_kt": part.d_delta_f_kt})
        history.append({"iteration": int(n_iterations - 1), "delta_f_kt": delta_f, "d_delta_f_kt": d_delta_f})
    return MBARResult(
        status="ok", delta_f_kt=delta_f, d_delta_f_kt=d_delta_f, overlap=overlap.tolist(), message=message,
        neighbour_overlaps=[float(overlap[i, i + 1]) for i in range(n_states - 1)], history=history,
        **base,  # type: ignore[arg-type]
    )


def windows_to_add(lambdas: Sequence[float], spreads: Sequence[float], length_per_window: float, pairs: Sequence[int]) -> Dict[int, List[float]]:
    """Lambda values to insert into the gaps ``pairs`` (index of the lower window of each gap).

    The spread of a gap is its thermodynamic length (kT): it is cut into pieces of
    ``length_per_window`` by equally spaced new windows.
    """
    added: Dict[int, List[float]] = {}
    for i in pairs:
        spread = spreads[i] if i < len(spreads) and math.isfinite(spreads[i]) else 2.0 * length_per_window
        pieces = max(2, int(math.ceil(spread / length_per_window)))
        lo, hi = float(lambdas[i]), float(lambdas[i + 1])
        added[i] = [round(lo + (hi - lo) * k / pieces, 6) for k in range(1, pieces)]
    return added


def analyze_storage(storage: str, lambdas: Optional[Sequence[float]] = None, history_points: int = 8) -> MBARResult:
    """:func:`mbar_from_energies` of an openmmtools reporter file (read only).

    Parameters
    ----------
    storage
        The ``.nc`` file of :func:`openmm_ani.freeenergy.equilibrium.run_replica_exchange`.
    lambdas
        Window values, for the record (read from the file's metadata when ``None``).
    """
    from openmmtools import multistate

    reporter = multistate.MultiStateReporter(storage, open_mode="r")
    try:
        energies, states = read_samples(reporter)
        if lambdas is None:
            lambdas = [float(v) for v in reporter.read_dict("metadata")["lambdas"]]
    finally:
        reporter.close()
    return mbar_from_energies(energies, states, lambdas, history_points)


def read_samples(reporter: Any) -> Tuple[np.ndarray, np.ndarray]:
    """``(energies [T, R, K], states [T, R])`` of an open openmmtools reporter."""
    energies = np.asarray(reporter.read_energies()[0], dtype=float)
    states = np.asarray(reporter.read_replica_thermodynamic_states(), dtype=int)
    n = min(energies.shape[0], states.shape[0])
    return energies[:n], states[:n]
