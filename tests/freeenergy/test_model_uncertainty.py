"""The model uncertainty of a leg (issue 16 item 2) against closed forms and an independent recomputation.

* Gaussian member-mean differences ``du ~ N(mu, s^2)`` (kT): ``-ln <exp(-du)> = mu - s^2 / 2``, the
  delta-method error ``sqrt((exp(s^2) - 1) / N)`` and the Kish effective fraction ``exp(-s^2)``.
* Two members with harmonic energies ``k_i x^2 / 2`` in ``d`` dimensions, sampled exactly from
  their mean: each member's free energy relative to the mean is ``(d / 2) ln(k_i / k_mean)`` kT.
* End to end: ``openmm-ani fe-correct`` on alanine dipeptide; each member's dG in results.json
  equals dG + (-kT ln <exp(-beta (E_k - E))>) recomputed from the ligand positions read from the
  reporter file with netCDF4 (switching.json for the reverse-switch starts) and TorchANI 2.2.4's
  ANI-1ccx members.
"""

import json
import math
import os

import numpy as np
import pytest
from openmm import unit

from openmm_ani.freeenergy.convergence import MAX_FRACTION_ABOVE_QBC, add_model_checks
from openmm_ani.freeenergy.model_uncertainty import (
    correction_model_uncertainty,
    disagreement_statistics,
    exponential_reweighting,
    member_free_energies,
)
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL, KCAL_TO_KJ, NM_TO_ANGSTROM

TEMPERATURE = 300.0
KT_KCAL = (unit.MOLAR_GAS_CONSTANT_R * TEMPERATURE * unit.kelvin).value_in_unit(unit.kilocalorie_per_mole)


def test_gaussian_reweighting_matches_closed_form():
    mu, s, n = 0.7, 0.6, 200_000
    du = np.random.default_rng(5).normal(mu, s, n)
    result = exponential_reweighting(du)
    exact_error = math.sqrt((math.exp(s * s) - 1.0) / n)
    assert result["d_delta_f_kt"] == pytest.approx(exact_error, rel=0.05)
    assert abs(result["delta_f_kt"] - (mu - s * s / 2)) < 4 * exact_error
    assert result["n_effective"] / n == pytest.approx(math.exp(-s * s), rel=0.03)
    assert result["statistical_inefficiency"] == pytest.approx(1.0, abs=0.1)
    # a constant difference is exact
    assert exponential_reweighting(np.full(10, -1.25))["delta_f_kt"] == pytest.approx(-1.25, abs=1e-12)


def test_two_harmonic_members_have_known_free_energies():
    """Members k1 x^2/2 and k2 x^2/2 in d dimensions, samples drawn from their mean ((k1 + k2)/4 x^2)."""
    d, n, k1, k2 = 3, 100_000, 300.0, 500.0  # kJ/mol/nm^2
    k_mean = 0.5 * (k1 + k2)
    kt_kj = KT_KCAL * KCAL_TO_KJ
    x = np.random.default_rng(3).normal(0.0, math.sqrt(kt_kj / k_mean), (n, d))
    r2 = (x * x).sum(1)
    members = np.stack([0.5 * k1 * r2, 0.5 * k2 * r2], axis=1)
    base = -4.0  # the leg's dG with the mean, kcal/mol
    result = member_free_energies(members, KT_KCAL, base)
    for k, row in zip((k1, k2), result["members"]):
        exact = base + 0.5 * d * math.log(k / k_mean) * KT_KCAL
        assert abs(row["delta_g_kcal_per_mol"] - exact) < 4 * row["d_reweighting_kcal_per_mol"], (row, exact)
        assert row["d_reweighting_kcal_per_mol"] < 0.01 and not row["flagged"]
    exact_spread = abs(0.5 * d * math.log(k1 / k2) * KT_KCAL) / math.sqrt(2.0)
    assert result["spread_kcal_per_mol"] == pytest.approx(exact_spread, rel=0.02)

    # ddG per member: a solvent leg whose members differ by a constant from the mean (df_k = offset_k exactly)
    offsets_kj = np.array([-0.5, 0.5]) * KCAL_TO_KJ
    solvent = member_free_energies(np.zeros((50, 2)) + offsets_kj, KT_KCAL, 1.0)
    assert solvent["delta_g_members_kcal_per_mol"] == pytest.approx([0.5, 1.5], abs=1e-12)
    both = correction_model_uncertainty({"available": True, **result}, {"available": True, **solvent})
    expected = [c - s for c, s in zip(result["delta_g_members_kcal_per_mol"], [0.5, 1.5])]
    assert both["ddg_members_kcal_per_mol"] == pytest.approx(expected, abs=1e-12)
    assert both["ddg_model_spread_kcal_per_mol"] == pytest.approx(abs(expected[0] - expected[1]) / math.sqrt(2), abs=1e-12)
    missing = correction_model_uncertainty({"available": False, "reason": "old file"}, {"available": True, **solvent})
    assert missing["ddg_model_spread_kcal_per_mol"] is None and "complex: old file" in missing["model_uncertainty_reason"]


def test_disagreement_statistics_and_verdict_entry():
    # 4 atoms; sample 0: members +-1 kcal/mol (std sqrt(2) with ddof=1... of [1, -1] = 1.414), sample 1: all equal
    members = np.array([[1.0, -1.0], [2.0, 2.0]]) * KCAL_TO_KJ
    stats = disagreement_statistics(members, np.array([41.84, 10.0]), 4)
    assert stats["energy_std_max_kcal_per_mol"] == pytest.approx(math.sqrt(2.0))
    assert stats["rho_max_kcal_per_mol_per_sqrt_atom"] == pytest.approx(math.sqrt(2.0) / 2.0)
    assert stats["fraction_above_threshold"] == 0.5
    assert stats["max_force_spread_kcal_per_mol_per_angstrom"] == pytest.approx(41.84 / KCAL_TO_KJ / NM_TO_ANGSTROM)
    verdict = {"converged": True, "checks": {}, "notes": []}
    add_model_checks(verdict, "complex", {"available": True, "disagreement": {**stats, "fraction_above_threshold": 0.75},
                                          "flagged_members": [], "min_reweighting_effective": 40.0})
    check = verdict["checks"]["model_disagreement"]
    assert not check["passed"] and check["required"] is False and check["limit"] == MAX_FRACTION_ABOVE_QBC
    assert "75 %" in verdict["notes"][0] and "0.707" in verdict["notes"][0]
    verdict = {"converged": True, "checks": {}, "notes": []}
    add_model_checks(verdict, "solvent", {"available": False, "reason": "switching.json records no reverse-switch starts"})
    assert verdict["checks"] == {} and "unavailable: switching.json" in verdict["notes"][0]


def _torchani_members(reference, numbers, positions_nm):
    """Member energies [N, M] (kJ/mol) and max per-atom force spreads [N] (kJ/mol/nm) by TorchANI."""
    import torch

    energies, spreads = [], []
    z = torch.tensor([numbers])
    for x in positions_nm:
        coordinates = torch.tensor(np.asarray(x, dtype=float) * NM_TO_ANGSTROM)[None].requires_grad_(True)
        members = reference.members_energies((z, coordinates)).energies[:, 0]
        forces = torch.stack([-torch.autograd.grad(e, coordinates, retain_graph=True)[0][0] for e in members])
        deviation = forces - forces.mean(0, keepdim=True)
        spreads.append(float(deviation.pow(2).sum(-1).mean(0).sqrt().max()) * HARTREE_TO_KCAL_PER_MOL * KCAL_TO_KJ * NM_TO_ANGSTROM)
        energies.append(members.detach().numpy() * HARTREE_TO_KCAL_PER_MOL * KCAL_TO_KJ)
    return np.array(energies), np.array(spreads)


def _expected(members_kj, delta_g, kt_kcal):
    du = (members_kj - members_kj.mean(1, keepdims=True)) / (kt_kcal * KCAL_TO_KJ)
    return [delta_g - kt_kcal * math.log(np.mean(np.exp(-du[:, k]))) for k in range(du.shape[1])]


def test_fe_correct_reports_members_matching_torchani(tmp_path, capsys):
    torchani = pytest.importorskip("torchani", reason="TorchANI (test-only reference) is not installed")
    netCDF4 = pytest.importorskip("netCDF4")
    from openmm import app
    from pymbar import timeseries

    from openmm_ani.cli import main
    from openmm_ani.freeenergy.model_uncertainty import leg_model_uncertainty
    from openmm_ani.freeenergy.workflow import LegInput

    openmmtools = pytest.importorskip("openmmtools")
    data = os.path.join(os.path.dirname(openmmtools.__file__), "data", "alanine-dipeptide-gbsa")
    prmtop, crd = os.path.join(data, "alanine-dipeptide.prmtop"), os.path.join(data, "alanine-dipeptide.crd")
    indices = ",".join(str(i) for i in range(22))
    legs = [a for leg in ("complex", "solvent") for a in (f"--{leg}-prmtop", prmtop, f"--{leg}-coords", crd, f"--{leg}-ligand-atoms", indices)]
    out = str(tmp_path / "lig")
    protocol = ["--n-states", "3", "--n-iterations", "6", "--steps-per-iteration", "10", "--n-switches", "4", "--switching-steps", "10",
                "--equilibration-steps", "10", "--steps-between-switches", "5", "--platform", "Reference", "--precision", "single",
                "--minimize-iterations", "50", "--no-progress", "--temperature", str(TEMPERATURE)]
    assert main(["fe-correct", *legs, "--output", out, *protocol]) == 0
    screen = capsys.readouterr().out
    with open(os.path.join(out, "results.json")) as stream:
        results = json.load(stream)
    leg = results["legs"]["complex"]
    model = leg["model_uncertainty"]
    assert model["available"] and model["source"].startswith("replica exchange")

    # Independent samples: the lambda = 1 replica at MBAR's decorrelated iterations, read with netCDF4
    with netCDF4.Dataset(os.path.join(out, "complex", "replica_exchange.nc")) as nc:
        energies, states = np.array(nc["energies"][:]), np.array(nc["states"][:])
        positions = np.array(nc["positions"][:], dtype=float)
        assert list(nc["analysis_particle_indices"][:]) == list(range(22))
    eq = leg["equilibrium"]
    own = energies[np.arange(len(states))[:, None], np.arange(3)[None], states].sum(1)
    t0 = eq["n_equilibration_iterations"]
    iterations = np.asarray(timeseries.subsample_correlated_data(own[t0:], g=eq["statistical_inefficiency"])) + t0
    assert len(iterations) == eq["n_effective"] == model["disagreement"]["n_samples"]
    samples = [positions[i, int(np.flatnonzero(states[i] == 2)[0])] for i in iterations]

    reference = torchani.models.ANI1ccx(periodic_table_index=True).double()
    numbers = [a.element.atomic_number for a in app.AmberPrmtopFile(prmtop).topology.atoms()]
    members, spreads = _torchani_members(reference, numbers, samples)
    kt = KT_KCAL
    expected = _expected(members, leg["summary"]["delta_g_kcal_per_mol"], kt)
    assert model["delta_g_members_kcal_per_mol"] == pytest.approx(expected, abs=1e-4)
    assert model["spread_kcal_per_mol"] == pytest.approx(float(np.std(expected, ddof=1)), abs=1e-4)
    std = members.std(1, ddof=1) / KCAL_TO_KJ
    d = model["disagreement"]
    assert d["energy_std_mean_kcal_per_mol"] == pytest.approx(std.mean(), rel=1e-6)
    assert d["rho_max_kcal_per_mol_per_sqrt_atom"] == pytest.approx(std.max() / math.sqrt(22), rel=1e-6)
    assert d["max_force_spread_kcal_per_mol_per_angstrom"] == pytest.approx(spreads.max() / KCAL_TO_KJ / NM_TO_ANGSTROM, rel=1e-5)

    # identical legs: every member's ddG is 0, so the spread is 0 only if members are paired
    correction = results["correction"]
    assert correction["ddg_members_kcal_per_mol"] == pytest.approx([0.0] * 8, abs=1e-9)
    assert correction["ddg_model_spread_kcal_per_mol"] == pytest.approx(0.0, abs=1e-9)
    assert "+- stat +- model" in screen and "model complex: +- model" in screen and "ensemble disagreement on" in screen
    assert "model_disagreement" in results["verdict"]["legs"]["complex"]["checks"]

    # The reverse-switch starts as lambda = 1 samples (the BAR route), against switching.json + TorchANI
    with open(os.path.join(out, "complex", "switching.json")) as stream:
        starts = json.load(stream)["reverse_starts"]
    assert len(starts) == len(leg["switching"]["reverse_work"]) == 4
    mm = app.AmberPrmtopFile(prmtop)
    leg_input = LegInput("complex", mm.topology, mm.createSystem(), None, list(range(22)))
    switching = leg_model_uncertainty(leg_input, "ani1ccx", os.path.join(out, "complex"), None, -1.0, kt)
    assert switching["source"].startswith("switching")
    members, _ = _torchani_members(reference, numbers, [s["positions_nm"] for s in starts])
    assert switching["delta_g_members_kcal_per_mol"] == pytest.approx(_expected(members, -1.0, kt), abs=1e-4)

    # A store from before the starts were recorded: unavailable with a reason, not an error
    with open(os.path.join(out, "complex", "switching.json"), "w") as stream:
        json.dump({"forward_work": [1.0], "reverse_work": [-1.0]}, stream)
    old = leg_model_uncertainty(leg_input, "ani1ccx", os.path.join(out, "complex"), None, -1.0, kt)
    assert old == {"available": False, "reason": old["reason"]} and "records no reverse-switch start" in old["reason"]


def test_periodic_ligand_is_made_whole_from_its_positions_and_box():
    """A periodic leg: the stored ligand positions may straddle the box; the members see the whole ligand."""
    torchani = pytest.importorskip("torchani", reason="TorchANI (test-only reference) is not installed")
    openmmtools = pytest.importorskip("openmmtools")
    import openmm
    from openmm import app

    from openmm_ani.freeenergy.model_uncertainty import evaluate_members, ligand_evaluator
    from openmm_ani.freeenergy.workflow import LegInput

    data = os.path.join(os.path.dirname(openmmtools.__file__), "data", "alanine-dipeptide-gbsa")
    prmtop = app.AmberPrmtopFile(os.path.join(data, "alanine-dipeptide.prmtop"))
    x = app.AmberInpcrdFile(os.path.join(data, "alanine-dipeptide.crd")).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    box = np.diag([2.5, 2.6, 2.7])
    prmtop.topology.setPeriodicBoxVectors([openmm.Vec3(*row) for row in box] * unit.nanometer)
    system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=1.0 * unit.nanometer)
    evaluator = ligand_evaluator(LegInput("solvent", prmtop.topology, system, None, list(range(22))), "ani1ccx")
    assert evaluator.needs_box
    split = np.array(x)
    split[11:] += box[0] - box[2]  # half the molecule one image away
    members, _ = evaluate_members(evaluator, np.array([split]), np.array([box]))
    reference, _ = _torchani_members(torchani.models.ANI1ccx(periodic_table_index=True).double(),
                                     [a.element.atomic_number for a in prmtop.topology.atoms()], [x])
    assert members == pytest.approx(reference, abs=1e-6)
