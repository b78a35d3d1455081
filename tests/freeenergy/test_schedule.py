"""The pilot's lambda schedule and the convergence verdict on an analytic case.

Two particles in 3D wells whose stiffness goes from k0 to k1 = 100 k0 along lambda
(k = k0 + lambda (k1 - k0)): dU/dlambda = (k1 - k0) r^2 / 2 with r^2 ~ (kT / k) chi^2_6, so

* sigma(lambda) = std(beta dU/dlambda) = sqrt(3 N / 2) (k1 - k0) / k(lambda),
* the thermodynamic length is L = sqrt(3 N / 2) ln(k1 / k0) (7.98 kT here),
* windows equally spaced in length are geometric in k: k_i = k0 (k1 / k0)^(i / (n - 1)),
* dF = (3 N / 2) ln(k1 / k0) kT.

Seeded runs on the Reference platform: each check gives the same answer every time.
"""

import math

import numpy as np
import openmm
import pytest
from openmm import unit

from openmm_ani.freeenergy.analysis import mbar_from_energies
from openmm_ani.freeenergy.convergence import correction_verdict, leg_verdict
from openmm_ani.freeenergy.equilibrium import run_replica_exchange
from openmm_ani.freeenergy.results import kt_kcal_per_mol, leg_summary
from openmm_ani.freeenergy.schedule import cumulative_length, pilot_schedule, windows_from_sigma
from openmm_ani.freeenergy.settings import ProtocolSettings
from openmm_ani.freeenergy.switching import run_switching

K0, K1, N, T = 20.0, 2000.0, 2, 300.0
SIGMA_SCALE = math.sqrt(1.5 * N) * (K1 - K0)
LENGTH = math.sqrt(1.5 * N) * math.log(K1 / K0)
EXACT_DF = 1.5 * N * math.log(K1 / K0)
POSITIONS = np.full((N, 3), 0.05) * unit.nanometer


def analytic_sigma(lam):
    return SIGMA_SCALE / (K0 + np.asarray(lam) * (K1 - K0))


def analytic_windows(n):
    k = K0 * (K1 / K0) ** (np.arange(n) / (n - 1))
    return (k - K0) / (K1 - K0)


def system() -> openmm.System:
    s = openmm.System()
    r2 = openmm.CustomExternalForce("x^2+y^2+z^2")
    for i in range(N):
        s.addParticle(1.0)
        r2.addParticle(i, [])
    force = openmm.CustomCVForce(f"0.5*({K0} + lambda_interpolate*{K1 - K0})*r2")
    force.addCollectiveVariable("r2", r2)
    force.addGlobalParameter("lambda_interpolate", 1.0)
    force.addEnergyParameterDerivative("lambda_interpolate")
    s.addForce(force)
    return s


def settings(**overrides) -> ProtocolSettings:
    values = dict(
        n_iterations=200, steps_per_iteration=50, timestep_fs=5.0, collision_rate_per_ps=5.0, temperature_k=T,
        n_switches=60, switching_steps=200, equilibration_steps=100, steps_between_switches=50, platform="Reference",
        minimize=False, check_interval=10, n_bootstrap=50, seed=5, pilot_samples=400, pilot_steps_per_sample=40,
        pilot_equilibration_steps=100, pilot_lambdas=[0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0],
    )
    values.update(overrides)
    return ProtocolSettings(**values)


@pytest.fixture(scope="module")
def pilot():
    return pilot_schedule(system(), POSITIONS, settings(), progress=False)


def test_windows_equally_spaced_in_thermodynamic_length_are_geometric():
    grid = np.linspace(0.0, 1.0, 401)
    _, length = cumulative_length(grid, analytic_sigma(grid))
    assert length[-1] == pytest.approx(LENGTH, rel=2e-3)
    windows = windows_from_sigma(grid, analytic_sigma(grid), 1.0, 40)
    assert len(windows) == math.ceil(LENGTH) + 1 == 9
    np.testing.assert_allclose(windows, analytic_windows(9), atol=2e-3)
    # the cap on the number of windows spreads them further apart, still geometrically
    np.testing.assert_allclose(windows_from_sigma(grid, analytic_sigma(grid), 1.0, 5), analytic_windows(5), atol=2e-3)


def test_pilot_measures_sigma_and_picks_the_analytic_schedule(pilot):
    schedule = pilot
    sigma = np.array(schedule.pilot_sigma_kt)
    expected = analytic_sigma(schedule.pilot_lambdas)
    # 400 samples 0.2 ps apart per lambda: the spread is known to ~10 %
    np.testing.assert_allclose(sigma, expected, rtol=0.2)
    # the coarse pilot grid and log-linear interpolation cost a few per cent of the length
    assert schedule.thermodynamic_length_kt == pytest.approx(LENGTH, rel=0.1)
    n = len(schedule.lambdas)
    assert n == math.ceil(schedule.thermodynamic_length_kt) + 1 and n in (9, 10)
    np.testing.assert_allclose(schedule.lambdas, analytic_windows(n), atol=0.02, rtol=0.15)


def test_verdict_converged_with_the_pilot_schedule(tmp_path, pilot):
    s = settings()
    lambdas = pilot.lambdas
    mbar = run_replica_exchange(system(), POSITIONS, s, str(tmp_path / "re.nc"), progress=False, lambdas=lambdas)
    switching = run_switching(system(), POSITIONS, s, progress=False)
    assert min(mbar.neighbour_overlaps) > 0.1  # equal thermodynamic length -> every pair overlaps
    kt = kt_kcal_per_mol(T)
    summary = leg_summary(mbar.to_dict(), switching.to_dict(), T)
    assert abs(mbar.delta_f_kt - EXACT_DF) < 2 * mbar.d_delta_f_kt
    verdict = leg_verdict("analytic", summary, mbar.to_dict(), switching.to_dict(), kt, 0.5, 1.0, mbar.n_iterations)
    assert verdict["converged"], verdict
    assert verdict["checks"]["mbar_bar_agreement"]["passed"] and verdict["checks"]["neighbour_overlap"]["passed"]
    # TI over the same windows (issue 16): equal to MBAR and to the analytic dF within their errors; the
    # slope-corrected rule's own error on these 9-10 geometric windows is below 0.23 kT (test_ti.py)
    ti = mbar.ti
    assert ti["status"] == "ok" and verdict["checks"]["mbar_ti_agreement"]["passed"]
    assert abs(ti["delta_f_kt"] - EXACT_DF) < 3 * ti["d_delta_f_kt"] + 0.23, ti
    assert abs(ti["delta_f_kt"] - mbar.delta_f_kt) < 2 * math.hypot(ti["d_delta_f_kt"], mbar.d_delta_f_kt) + ti["discretisation_kt"]
    overall = correction_verdict({"analytic": verdict}, summary["d_delta_g_kcal_per_mol"], 0.5)
    assert overall["converged"] and not overall["advice"], overall


def test_verdict_names_missing_windows_and_extension(tmp_path):
    s = settings(n_iterations=40)
    mbar = run_replica_exchange(system(), POSITIONS, s, str(tmp_path / "re.nc"), progress=False, lambdas=[0.0, 0.5, 1.0])
    kt = kt_kcal_per_mol(T)
    summary = leg_summary(mbar.to_dict(), None, T)
    verdict = leg_verdict("analytic", summary, mbar.to_dict(), None, kt, 0.01, 1.0, mbar.n_iterations)
    assert not verdict["converged"]
    assert not verdict["checks"]["neighbour_overlap"]["passed"]
    # the spread of u(0.5) - u(0) in each window is 0.5 sigma(lambda): their geometric mean
    # (12 kT) bounds the gap's thermodynamic length (6.8 kT) from above
    spread = mbar.neighbour_spread_kt[0]
    assert spread == pytest.approx(0.5 * math.sqrt(analytic_sigma(0.0) * analytic_sigma(0.5)), rel=0.3)
    missing = [a for a in verdict["advice"] if "windows 0 and 0.5 do not overlap" in a]
    assert len(missing) == 1 and "add lambda 0.0" in missing[0], verdict["advice"]
    assert any("extend replica exchange" in a for a in verdict["advice"])


def _disjoint_windows():
    """Reduced potentials of three windows whose ensembles do not overlap at all (kT)."""
    rng = np.random.default_rng(0)
    lambdas = np.array([0.0, 0.5, 1.0])
    du = [rng.normal(m, 30.0, 50) for m in (1000.0, 0.0, -1000.0)]
    energies = np.stack([np.outer(du[r], lambdas) for r in range(3)], axis=1)
    return energies, np.tile(np.arange(3), (50, 1)), lambdas


def test_windows_without_overlap_get_a_diagnosis():
    """Issue 9, case 13 (--lambdas 0,0.5,1 without overlap): the verdict names the gaps and what to add."""
    energies, states, lambdas = _disjoint_windows()
    result = mbar_from_energies(energies, states, lambdas, history_points=0)
    assert max(result.neighbour_overlaps) < 1e-6
    np.testing.assert_allclose(result.neighbour_spread_kt, 15.0, rtol=0.25)  # 0.5 * 30 kT in every window
    summary = leg_summary(result.to_dict(), None, T)
    verdict = leg_verdict("complex", summary, result.to_dict(), None, kt_kcal_per_mol(T), 0.2, 1.0, result.n_iterations)
    assert not verdict["converged"] and not verdict["checks"]["neighbour_overlap"]["passed"]
    gaps = [a for a in verdict["advice"] if "do not overlap" in a]
    assert len(gaps) == 2 and "windows 0 and 0.5" in gaps[0] and "windows 0.5 and 1" in gaps[1]
    added = gaps[0].split("add lambda ")[1].split(" (")[0].split(", ")
    assert len(added) == math.ceil(result.neighbour_spread_kt[0]) - 1  # pieces of at most 1 kT
    np.testing.assert_allclose(np.diff([0.0, *map(float, added), 0.5]), 0.5 / (len(added) + 1), atol=1e-5)


def test_mbar_failure_is_a_result_not_an_exception(monkeypatch):
    """Issue 9, case 13: pymbar's ParameterError escaped as a traceback on every rerun; now it is a
    failed result with the neighbour spreads, and the leg falls back to BAR where it has one."""
    import pymbar
    from pymbar.utils import ParameterError

    class Failing:
        def __init__(self, *args, **kwargs):
            raise ParameterError("the free energies did not converge")

    monkeypatch.setattr(pymbar, "MBAR", Failing)
    energies, states, lambdas = _disjoint_windows()
    result = mbar_from_energies(energies, states, lambdas, history_points=0)
    assert result.status == "failed" and "did not converge" in result.message and math.isnan(result.delta_f_kt)
    np.testing.assert_allclose(result.neighbour_spread_kt, 15.0, rtol=0.25)
    switching = {"bar_delta_f_kt": 1.0, "bar_d_delta_f_kt": 0.1, "jarzynski_forward_kt": 1.0, "jarzynski_reverse_kt": 1.0,
                 "forward_work": [1.0] * 60, "reverse_work": [-1.0] * 60}
    summary = leg_summary(result.to_dict(), switching, T)
    assert summary["estimator"] == "BAR" and summary["delta_g_kcal_per_mol"] == pytest.approx(kt_kcal_per_mol(T))
    verdict = leg_verdict("complex", summary, result.to_dict(), switching, kt_kcal_per_mol(T), 0.5, 1.0, result.n_iterations)
    assert not verdict["converged"] and not verdict["checks"]["mbar"]["passed"]
    assert any("MBAR failed" in a for a in verdict["advice"]) and sum("do not overlap" in a for a in verdict["advice"]) == 2


def test_verdict_asks_for_switches_when_too_few():
    """The T4 example's complex leg: MBAR within target and 9 switches per direction. The verdict failed on
    effective samples but its advice named only the replica exchange; now it asks for the switches too."""
    switching = {"forward_work": [1.0] * 9, "reverse_work": [-1.0] * 9, "bar_delta_f_kt": 1.0, "bar_d_delta_f_kt": 0.01,
                 "jarzynski_forward_kt": 1.0, "jarzynski_reverse_kt": 1.0}
    summary = leg_summary(None, switching, T)
    verdict = leg_verdict("complex", summary, None, switching, kt_kcal_per_mol(T), 0.2, 1.0, 0)
    assert not verdict["checks"]["effective_samples"]["passed"]
    assert "complex: only 9 switches per direction: run at least 50 (--n-switches)" in verdict["advice"]
