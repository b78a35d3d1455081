"""``benchmarks/gpu_check.py --dry-run`` (issue 11): the prepared GPU check runs its CPU parts here.

The dry run must exercise every step, skip exactly what needs CUDA (saying so), and report real
numbers: its Reference-platform p-xylene energy is checked against TorchANI 2.2.4.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from paths import ROOT

SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")
STEPS = ["install", "environment", "parity", "md_speed", "training", "fe_correct"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu")
    result = subprocess.run([sys.executable, SCRIPT, "--dry-run", "--out", str(out)], capture_output=True, text=True,
                            timeout=600, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out / "gpu_check.json") as stream:
        report = json.load(stream)
    return report, (out / "gpu_check.md").read_text()


def test_every_step_ran_or_was_skipped_with_a_reason(dry_run):
    report, text = dry_run
    assert report["mode"] == "dry run"
    assert list(report["steps"]) == STEPS
    for name in ("md_speed", "training", "fe_correct"):
        assert report["steps"][name]["skipped"].startswith("no CUDA device"), name
        assert f"| {name} | skipped: no CUDA device" in text
    assert "error" not in json.dumps(report["steps"])
    assert report["steps"]["fe_correct"]["help_exit_status"] == 0
    assert "--platform CUDA" in report["steps"]["fe_correct"]["command"]


def test_parity_rows_are_real_numbers(dry_run):
    """The Reference energy the script reports for p-xylene (double) is TorchANI 2.2.4's ANI-1ccx energy."""
    torchani = pytest.importorskip("torchani", reason="TorchANI 2.2.4 reference (scripts/setup_test_reference.py)")
    import torch
    from openmm import app, unit

    from openmm_ani.units import HARTREE_TO_KJ_PER_MOL

    report, _ = dry_run
    rows = {(r["case"], r["precision"]): r for r in report["steps"]["parity"]["rows"]}
    assert set(rows) == {(c, p) for c in ("pxylene", "alanine-water") for p in ("single", "double")}
    assert all(r["ok"] for r in rows.values())
    import openmmtools

    pdb = app.PDBFile(os.path.join(os.path.dirname(openmmtools.__file__), "data", "T4-lysozyme-L99A-implicit", "ligand.pdb"))
    model = torchani.models.ANI1ccx(periodic_table_index=True).double()
    species = torch.tensor([[a.element.atomic_number for a in pdb.topology.atoms()]])
    xyz = torch.tensor(np.array(pdb.positions.value_in_unit(unit.angstrom)))[None]
    expected = float(model((species, xyz)).energies) * HARTREE_TO_KJ_PER_MOL
    assert rows[("pxylene", "double")]["reference_energy"] == pytest.approx(expected, abs=1e-4)


def test_stack_problems_names_the_broken_pairs():
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        from gpu_check import stack_problems
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    assert stack_problems("2.9.1+cu128", "8.5.2", "1.5") == []
    problems = stack_problems("2.11.0+cu130", "8.6.1", "1.5")
    assert len(problems) == 2 and "torch 2.11.0+cu130" in problems[0] and "OpenMM 8.6.1" in problems[1]
    assert stack_problems("2.11.0", "8.6.1", "1.6") == []
