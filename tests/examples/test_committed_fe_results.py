"""The committed free-energy results of the examples (``examples/results/``, issue 16 items 1 and 6).

The files are what ``examples/t4_fe_correct.py`` wrote (copied by ``scripts/collect_fe_results.py``).
These tests recompute what the files claim from their own parts — ΔΔG from the legs, its error,
the per-member ΔΔG and their spread, each leg's verdict from its checks — check that the two seeds
are independent runs that agree within 2σ, and that docs/free_energy.md quotes the same numbers,
so neither the files nor the docs can drift.
"""

import glob
import json
import math
import os

import numpy as np
import pytest

from paths import ROOT

RESULTS = os.path.join(ROOT, "examples", "results")
#: Each committed case: its folder and the ΔΔG target of the run (kcal/mol).
CASES = {"t4_l99a": 0.3}


def seeds(case):
    folders = sorted(glob.glob(os.path.join(RESULTS, case, "seed-*")))
    return {int(os.path.basename(f).split("-", 1)[1]): f for f in folders}


def load(folder, name="results.json"):
    with open(os.path.join(folder, name), encoding="utf-8") as stream:
        return json.load(stream)


def docs_line(ddg, stat, model):
    """How docs/free_energy.md quotes a seed's ΔΔG ± statistical ± model (kcal/mol)."""
    return f"{ddg:.2f} ± {stat:.2f} ± {model:.2f}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_independent_seeds_are_committed(case):
    """Two runs of the same inputs and protocol that differ in their seed (start velocities,
    switching seeds), and in what an extending rerun may change, or the pilot chose."""
    found = seeds(case)
    assert len(found) >= 2, found
    records = {seed: load(folder, "settings.json") for seed, folder in found.items()}
    for seed, record in records.items():
        assert record["settings"]["seed"] == seed
    assert len({json.dumps(r["inputs"], sort_keys=True) for r in records.values()}) == 1
    free = {"seed", "max_time_s", "equilibrium_time_fraction", "n_iterations", "n_switches", "lambdas", "schedule",
            "n_states"}
    protocols = [{k: v for k, v in r["settings"].items() if k not in free} for r in records.values()]
    assert all(p == protocols[0] for p in protocols)


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_are_consistent_with_their_parts(case):
    for seed, folder in seeds(case).items():
        results = load(folder)
        legs, correction, verdict = results["legs"], results["correction"], results["verdict"]
        complex_, solvent = legs["complex"]["summary"], legs["solvent"]["summary"]
        assert correction["ddg_kcal_per_mol"] == pytest.approx(
            complex_["delta_g_kcal_per_mol"] - solvent["delta_g_kcal_per_mol"], abs=1e-9)
        assert correction["d_ddg_kcal_per_mol"] == pytest.approx(
            math.hypot(complex_["d_delta_g_kcal_per_mol"], solvent["d_delta_g_kcal_per_mol"]), abs=1e-9)
        assert correction["corrected_binding_kcal_per_mol"] == pytest.approx(
            correction["mm_binding_kcal_per_mol"] + correction["ddg_kcal_per_mol"], abs=1e-9)
        members = (np.array(legs["complex"]["model_uncertainty"]["delta_g_members_kcal_per_mol"])
                   - np.array(legs["solvent"]["model_uncertainty"]["delta_g_members_kcal_per_mol"]))
        np.testing.assert_allclose(correction["ddg_members_kcal_per_mol"], members, rtol=0, atol=1e-9)
        assert len(members) == 8  # one ΔΔG per ANI-1ccx member
        assert correction["ddg_model_spread_kcal_per_mol"] == pytest.approx(members.std(ddof=1), abs=1e-9)
        for name, leg in verdict["legs"].items():
            required = [c["passed"] for c in leg["checks"].values() if c["required"]]
            assert leg["converged"] == all(required), (seed, name)
            # MBAR, BAR and TI side by side, their agreement checked
            assert {"mbar_bar_agreement", "mbar_ti_agreement", "model_disagreement"} <= set(leg["checks"])
        assert verdict["converged"] == all(leg["converged"] for leg in verdict["legs"].values())
        assert verdict["target_kcal_per_mol"] == pytest.approx(CASES[case])
        assert correction["d_ddg_kcal_per_mol"] <= CASES[case]
        assert (len(verdict["advice"]) == 0) == verdict["converged"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_seeds_agree_within_two_sigma(case):
    values = [load(folder)["correction"] for folder in seeds(case).values()]
    for a in values:
        for b in values:
            gap = abs(a["ddg_kcal_per_mol"] - b["ddg_kcal_per_mol"])
            assert gap <= 2 * math.hypot(a["d_ddg_kcal_per_mol"], b["d_ddg_kcal_per_mol"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_docs_quote_the_committed_numbers(case):
    with open(os.path.join(ROOT, "docs", "free_energy.md"), encoding="utf-8") as stream:
        docs = stream.read()
    for seed, folder in seeds(case).items():
        results = load(folder)
        c = results["correction"]
        line = docs_line(c["ddg_kcal_per_mol"], c["d_ddg_kcal_per_mol"], c["ddg_model_spread_kcal_per_mol"])
        assert line in docs, (seed, line)
        for name in ("complex", "solvent"):
            wall = load(os.path.join(folder, name), "timing.json")["wall_time_s"]
            assert results["legs"][name]["wall_time_s"] == pytest.approx(wall)
            assert f"{wall / 60:.1f} min" in docs, (seed, name, wall)
            converged = results["verdict"]["legs"][name]["converged"]
            assert f"seed {seed}, {name}: {'converged' if converged else 'not converged'}" in docs
