"""Thermodynamic integration (openmm_ani.freeenergy.ti) and errors that mean what they say.

The synthetic case is the analytic one of test_schedule.py without MD: two particles in 3D wells
whose stiffness goes from K0 to K1 = 100 K0 along lambda. In the window of stiffness k,
``a = beta dU/dlambda = (K1 - K0) / (2 k) chi^2_6``, so ``<a> = 3 (K1 - K0) / k``,
``Var(a) = 6 (K1 - K0)^2 / (2 k^2)`` and ``dF = 3 ln(K1 / K0)`` kT. Every sample's reduced
potential in state j is ``u0 + lambda_j a`` with a large random ``u0`` (the absolute ANI energy,
pV), as the reporter stores them; exact samples of each window replace MD.
"""

import math

import numpy as np
import pytest

from openmm_ani.freeenergy.analysis import mbar_from_energies
from openmm_ani.freeenergy.convergence import compare, correction_verdict, leg_verdict, verdict_lines
from openmm_ani.freeenergy.results import binding_correction, kt_kcal_per_mol, leg_summary
from openmm_ani.freeenergy.switching import summarize
from openmm_ani.freeenergy.ti import integrate, ti_from_energies

K0, K1, DOF, T = 20.0, 2000.0, 6, 300.0
DK = K1 - K0
EXACT_DF = DOF / 2 * math.log(K1 / K0)  # kT
N_WINDOWS = 9
STIFFNESS = K0 * (K1 / K0) ** (np.arange(N_WINDOWS) / (N_WINDOWS - 1))  # the pilot's geometric windows
LAMBDAS = (STIFFNESS - K0) / DK


def synthetic(n_iterations: int, seed: int, repeat: int = 1):
    """``(energies [T, R, K], states [T, R])``: each iteration a random permutation of windows over replicas."""
    rng = np.random.default_rng(seed)
    energies = np.empty((n_iterations, N_WINDOWS, N_WINDOWS))
    states = np.empty((n_iterations, N_WINDOWS), dtype=int)
    for t in range(n_iterations):
        states[t] = rng.permutation(N_WINDOWS)
        a = DK / (2 * STIFFNESS[states[t]]) * rng.chisquare(DOF, N_WINDOWS)
        u0 = 1e5 + rng.normal(0.0, 50.0, N_WINDOWS)
        energies[t] = u0[:, None] + a[:, None] * LAMBDAS[None, :]
    return np.repeat(energies, repeat, axis=0), np.repeat(states, repeat, axis=0)


def hermite_error_bound() -> float:
    """Analytic bound of the slope-corrected rule's error: sum over gaps of h^5 / 720 max|f''''| (kT)."""
    h = np.diff(LAMBDAS)
    fourth = 24 * (DOF / 2 * DK) * DK**4 / STIFFNESS[:-1] ** 5  # f = 3 DK / k(lambda), largest at the lower end
    return float(np.sum(h**5 / 720 * fourth))


def test_slope_corrected_trapezoid_is_exact_for_cubics():
    grid = [0.0, 0.05, 0.2, 0.45, 0.8, 1.0]
    lam = np.array(grid)
    corrected, trapezoid = integrate(grid, lam**3 - 2 * lam + 1, 3 * lam**2 - 2)
    assert corrected == pytest.approx(0.25, abs=1e-13)  # integral of x^3 - 2x + 1 over [0, 1]
    h, mid = np.diff(lam), (lam[1:] + lam[:-1]) / 2
    assert trapezoid - 0.25 == pytest.approx(np.sum(h**3 / 12 * 6 * mid), abs=1e-13)  # Euler-Maclaurin, f'' = 6x


def test_ti_on_synthetic_samples_equals_mbar_and_the_analytic_value():
    energies, states = synthetic(1000, seed=1)
    mbar = mbar_from_energies(energies, states, LAMBDAS, history_points=0)
    ti = mbar.ti
    assert ti["status"] == "ok" and ti["n_samples"] == [int(mbar.n_effective)] * N_WINDOWS
    assert ti["max_nonlinearity_kt"] < 1e-6  # the u0 offsets cancel
    np.testing.assert_allclose(ti["mean_kt"], DOF / 2 * DK / STIFFNESS, rtol=0.1)
    np.testing.assert_allclose(ti["variance_kt2"], DOF * DK**2 / (2 * STIFFNESS**2), rtol=0.25)
    sigma = ti["d_delta_f_kt"]
    assert 0.0 < sigma < 0.3
    # the rule's error is one-signed (f'''' > 0) and below the analytic bound (0.23 kT)
    assert -3 * sigma <= EXACT_DF - ti["delta_f_kt"] <= hermite_error_bound() + 3 * sigma
    assert abs(mbar.delta_f_kt - EXACT_DF) < 3 * mbar.d_delta_f_kt
    assert abs(mbar.delta_f_kt - ti["delta_f_kt"]) < 2 * math.hypot(sigma, mbar.d_delta_f_kt) + ti["discretisation_kt"]
    # the plain trapezoid is 0.78 kT high on these windows; the discretisation estimate covers it
    assert ti["trapezoid_kt"] - EXACT_DF > 0.5
    assert ti["trapezoid_kt"] - EXACT_DF < ti["discretisation_kt"] + 3 * sigma
    summary = leg_summary(mbar.to_dict(), None, T)
    kt = kt_kcal_per_mol(T)
    assert summary["ti_kcal_per_mol"] == pytest.approx(EXACT_DF * kt, abs=(hermite_error_bound() + 3 * sigma) * kt)
    verdict = leg_verdict("analytic", summary, mbar.to_dict(), None, kt, 0.5, 1.0, mbar.n_iterations)
    assert verdict["checks"]["mbar_ti_agreement"]["passed"] and verdict["converged"], verdict


def test_ti_error_matches_the_scatter_of_repeats_and_counts_correlation():
    """The reported sigma against the standard deviation of 40 independent repeats; the same samples each
    repeated 4 times (correlated series, no new information) keep about the same sigma."""
    values, sigmas, ratios = [], [], []
    for seed in range(40):
        energies, states = synthetic(150, seed=100 + seed)
        result = ti_from_energies(energies, states, LAMBDAS, np.arange(len(states)))
        values.append(result.delta_f_kt)
        sigmas.append(result.d_delta_f_kt)
        if seed < 5:
            energies, states = synthetic(150, seed=100 + seed, repeat=4)
            ratios.append(ti_from_energies(energies, states, LAMBDAS, np.arange(len(states))).d_delta_f_kt / result.d_delta_f_kt)
    assert np.mean(sigmas) == pytest.approx(np.std(values, ddof=1), rel=0.35)
    np.testing.assert_allclose(ratios, 1.0, rtol=0.25)  # without g_k it would be 0.5


def test_too_few_decorrelated_samples_give_no_error_for_mbar_and_ti():
    energies, states = synthetic(1, seed=3)
    mbar = mbar_from_energies(energies, states, LAMBDAS, history_points=0)
    assert math.isnan(mbar.d_delta_f_kt) and mbar.message.startswith("not enough samples")
    assert mbar.ti["status"] == "insufficient" and math.isnan(mbar.ti["d_delta_f_kt"])
    assert "not enough samples" in mbar.ti["message"]
    summary = leg_summary(mbar.to_dict(), None, T)
    assert math.isnan(summary["mbar_error_kcal_per_mol"]) and summary["error_reason"].startswith("not enough samples")
    verdict = leg_verdict("complex", summary, mbar.to_dict(), None, kt_kcal_per_mol(T), 0.5, 1.0, mbar.n_iterations)
    for name in ("error", "mbar_ti_agreement"):
        check = verdict["checks"][name]
        assert not check["passed"] and check["value"] is None and "not enough samples" in check["reason"]


def test_one_switch_per_direction_is_not_enough_samples_instead_of_zero():
    """Issue 16: a leg with one switch per direction reported 'BAR ... +- 0.000' (pymbar's bootstrap of one value)."""
    switching = summarize([3.0], [-2.0], n_bootstrap=50, seed=1).to_dict()
    assert switching["bar_d_delta_f_kt"] == pytest.approx(0.0, abs=1e-9)  # what pymbar gives
    summary = leg_summary(None, switching, T)
    assert summary["estimator"] == "BAR" and math.isnan(summary["d_delta_g_kcal_per_mol"])
    assert summary["bar_error_reason"] == ("not enough samples: 1 switch(es) per direction, at least 2 needed for an "
                                           "error estimate")
    verdict = leg_verdict("complex", summary, None, switching, kt_kcal_per_mol(T), 0.5, 1.0, 0)
    assert not verdict["checks"]["error"]["passed"] and "not enough samples" in verdict["checks"]["error"]["reason"]
    assert any("complex: BAR error: not enough samples" in a for a in verdict["advice"])
    other = leg_summary(None, summarize([3.0, 3.5, 2.9], [-2.0, -2.6, -2.2], 50, 1).to_dict(), T)
    assert other["d_delta_g_kcal_per_mol"] > 0
    correction = binding_correction(summary, other)
    assert math.isnan(correction["d_ddg_kcal_per_mol"]) and correction["error_reason"].startswith("complex: not enough")
    overall = correction_verdict({"complex": verdict, "solvent": verdict}, correction["d_ddg_kcal_per_mol"], 0.3)
    lines = verdict_lines(overall)
    assert lines[0].startswith("verdict: NOT CONVERGED (ddG error: complex: not enough samples"), lines
    assert "error [not enough samples" in lines[1]


def test_comparisons_show_enough_digits_to_differ():
    """Issue 16: the verdict printed 'ddG error 0.71 > 0.71'."""
    assert compare(0.7134, 0.7100) == "0.713 > 0.710"
    assert compare(0.30, 0.21) == "0.30 > 0.21"
    assert compare(0.7100004, 0.71) == "0.710000 > 0.710000"  # at most 6 decimals
    verdict = {"converged": False, "checks": {"error": {"passed": True, "value": 0.5, "limit": 0.51, "required": True}},
               "advice": [], "notes": []}
    overall = correction_verdict({"complex": verdict}, 0.7134, 0.71)
    assert overall["advice"][0] == "ddG error 0.713 > 0.710 kcal/mol: the complex leg contributes most"
    assert verdict_lines(overall)[0] == "verdict: NOT CONVERGED (ddG error vs target: 0.713 > 0.710 kcal/mol)"
