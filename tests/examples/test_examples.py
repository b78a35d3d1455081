"""Every script in examples/ runs as a user runs it (a subprocess, one thread, its small-size
setting) and does what its docstring promises; energies it prints or writes are checked against
independent references: TorchANI 2.2.4 (pure ANI) and openmm-ml 1.7's TorchANI-backed mixed
System (ML/MM), never against numbers of openmm-ani's own making."""

import contextlib
import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from typing import Dict, List, Sequence

import numpy as np
import openmm
import pytest
from openmm import app, unit

from openmm_inputs import COMPLEX_CRD, COMPLEX_PRMTOP, LIGAND_PDB, openmmtools_data
from paths import ROOT

EXAMPLES = os.path.join(ROOT, "examples")
#: Ha -> kJ/mol, CODATA 2018 (TorchANI's energies are in Hartree).
HARTREE_TO_KJ = 2625.4996394798254
#: Ha -> kcal/mol, CODATA 2018.
HARTREE_TO_KCAL = 627.5094740630558


def run_example(name: str, args: Sequence[str], cwd: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python examples/<name> args...`` in ``cwd`` with one OpenMP/torch thread; fails on a non-zero exit."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENMM_CPU_THREADS="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], cwd=cwd, env=env, timeout=timeout,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{name} {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def torchani_energy_kj(atomic_numbers: Sequence[int], positions_angstrom: np.ndarray) -> float:
    """ANI-1ccx ensemble energy (kJ/mol) by TorchANI 2.2.4 in float64: the independent reference."""
    torchani = pytest.importorskip("torchani", reason="TorchANI (test reference, scripts/setup_test_reference.py) is not installed")
    import torch

    model = torchani.models.ANI1ccx(periodic_table_index=True).double()
    species = torch.tensor([list(atomic_numbers)])
    coordinates = torch.tensor(np.asarray(positions_angstrom, dtype=np.float64)[None])
    with torch.no_grad():
        return float(model((species, coordinates)).energies.item()) * HARTREE_TO_KJ


def read_csv_rows(path: str) -> List[Dict[str, str]]:
    """Rows of an OpenMM StateDataReporter / disagreement CSV (header line starts with ``#``)."""
    with open(path) as stream:
        text = stream.read().lstrip("#")
    return list(csv.DictReader(io.StringIO(text)))


def energy_kj(system: openmm.System, positions) -> float:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


#: The small-size option of each example, which the tests below use and ``--help`` must document.
SMALL_OPTIONS = {"ani1ccx_vacuum.py": "--steps", "t4_lysozyme_md.py": "--steps", "t4_fe_correct.py": "--quick",
                 "cb7_b2_fe_correct.py": "--quick", "train_transfer_demo.py": "--quick"}
#: Runs every example's ``--help`` in one interpreter (one import of torch and OpenMM, not five).
HELP_RUNNER = """
import contextlib, io, json, runpy, sys
texts = {}
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name="__main__")
            code = None
        except SystemExit as stop:
            code = stop.code
    texts[path] = (code, out.getvalue())
print(json.dumps(texts))
"""


def test_help_documents_the_small_setting(tmp_path) -> None:
    """Every example's ``--help`` exits 0 and documents the small-size option the tests below use."""
    paths = [os.path.join(EXAMPLES, name) for name in SMALL_OPTIONS]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", HELP_RUNNER, *paths], cwd=str(tmp_path), env=env, timeout=180,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    texts = json.loads(result.stdout.splitlines()[-1])
    for name, option in SMALL_OPTIONS.items():
        code, text = texts[os.path.join(EXAMPLES, name)]
        assert code in (0, None) and "usage:" in text and option in text, (name, code, text)


def test_every_example_is_tested() -> None:
    """A new example without a test fails here."""
    assert {f for f in os.listdir(EXAMPLES) if f.endswith(".py")} == set(SMALL_OPTIONS)


def test_ani1ccx_vacuum(tmp_path) -> None:
    """The starting-structure energy printed equals TorchANI's ANI-1ccx energy of the PDB; MD rows follow."""
    steps = 10
    result = run_example("ani1ccx_vacuum.py", ["--steps", str(steps)], str(tmp_path))
    match = re.search(r"starting structure: (\S+) kJ/mol", result.stdout)
    assert match, result.stdout
    printed = float(match.group(1))
    pdb = app.PDBFile(LIGAND_PDB)
    z = [atom.element.atomic_number for atom in pdb.topology.atoms()]
    reference = torchani_energy_kj(z, pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
    # single precision (the example's default) of |E| = 8.2e5 kJ/mol: float32 resolution 0.06 kJ/mol
    # on the total; the per-atom sums keep it far smaller (measured 1.7e-4), 0.02 kJ/mol leaves room
    assert abs(printed - reference) < 0.02, (printed, reference)
    rows = [line.split(",") for line in result.stdout.splitlines() if re.match(r"^\d+,", line)]
    assert [int(r[0]) for r in rows] == list(range(1, steps + 1))
    energies = [float(r[1]) for r in rows]
    assert all(math.isfinite(e) for e in energies)
    # minimised, then 10 fs of MD at 300 K: the potential energy sits below the starting structure's
    assert max(energies) < printed


def test_t4_lysozyme_md(tmp_path) -> None:
    """DCD/CSV/disagreement files of the right size; the reported potential energy of written frames
    equals openmm-ml's (TorchANI) mixed System's energy of those frames."""
    mdtraj = pytest.importorskip("mdtraj")
    openmmml = pytest.importorskip("openmmml", reason="openmm-ml (test extra) is not installed")
    steps = 10
    result = run_example("t4_lysozyme_md.py", ["--steps", str(steps), "--output", os.path.join("out", "t4")], str(tmp_path))
    assert "ms/step" in result.stdout
    prefix = tmp_path / "out" / "t4"
    prmtop = app.AmberPrmtopFile(COMPLEX_PRMTOP)
    n_atoms = prmtop.topology.getNumAtoms()
    trajectory = mdtraj.load_dcd(str(prefix) + ".dcd", top=mdtraj.Topology.from_openmm(prmtop.topology))
    assert trajectory.n_frames == steps and trajectory.n_atoms == n_atoms == 2621
    rows = read_csv_rows(str(prefix) + ".csv")
    assert [int(r["Step"]) for r in rows] == list(range(1, steps + 1))
    reported = [float(r["Potential Energy (kJ/mole)"]) for r in rows]
    disagreement = read_csv_rows(str(prefix) + ".disagreement.csv")
    assert len(disagreement) == steps
    for row in disagreement:
        values = [float(v) for k, v in row.items() if k and "step" not in k.lower() and v not in ("", None)]
        assert values and all(math.isfinite(v) for v in values), row

    mm_system = prmtop.createSystem(nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=1.5 * unit.nanometer,
                                    constraints=app.HBonds, implicitSolvent=app.OBC2)
    ligand = [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
    assert len(ligand) == 18
    with contextlib.redirect_stdout(io.StringIO()):
        reference_system = openmmml.MLPotential("ani1ccx").createMixedSystem(prmtop.topology, mm_system, ligand)
    for frame in (0, steps - 1):
        positions = trajectory.xyz[frame].astype(np.float64) * unit.nanometer
        expected = energy_kj(reference_system, positions)
        # the DCD stores float32 Angstrom (2e-6 A resolution at 30 A) and the example runs the CPU
        # platform in single precision: measured 0.007-0.009 kJ/mol of |E| = 8.5e5; 0.1 leaves room
        assert reported[frame] == pytest.approx(expected, abs=0.1), (frame, reported[frame], expected)
    assert abs(reported[0]) > 1e5


def check_fe_outputs(directory: str, stdout: str, n_iterations: int, n_switches: int, mm_binding: bool) -> None:
    """summary.json / results.json of a (quick) correction: both legs, keys, internal consistency."""
    with open(os.path.join(directory, "summary.json")) as stream:
        summary = json.load(stream)
    with open(os.path.join(directory, "results.json")) as stream:
        results = json.load(stream)
    printed = json.loads(stdout[stdout.index("{"):])
    assert printed == summary
    assert set(summary) == {"complex", "solvent", "correction"}
    assert set(results["legs"]) == {"complex", "solvent"}
    for name in ("complex", "solvent"):
        row, leg = summary[name], results["legs"][name]
        lambdas = leg["lambdas"]
        assert lambdas[0] == 0.0 and lambdas[-1] == 1.0 and all(b > a for a, b in zip(lambdas, lambdas[1:]))
        assert row["n_windows"] == len(lambdas) >= 2
        assert row["n_iterations"] == n_iterations
        assert row["n_switches"] == n_switches
        for key in ("mbar_kcal_per_mol", "bar_kcal_per_mol"):
            assert math.isfinite(row[key])
        for key in ("mbar_error_kcal_per_mol", "bar_error_kcal_per_mol", "wall_time_s"):
            assert row[key] > 0, (name, key, row[key])
        assert row["mbar_kcal_per_mol"] == leg["summary"]["mbar_kcal_per_mol"]
        assert row["converged"] is False  # a few iterations cannot reach the target
        assert leg["summary"]["d_delta_g_kcal_per_mol"] > 0
    correction = summary["correction"]
    complex_leg, solvent_leg = results["legs"]["complex"]["summary"], results["legs"]["solvent"]["summary"]
    assert correction["ddg_kcal_per_mol"] == pytest.approx(
        complex_leg["delta_g_kcal_per_mol"] - solvent_leg["delta_g_kcal_per_mol"], abs=1e-9)
    assert correction["d_ddg_kcal_per_mol"] == pytest.approx(
        math.hypot(complex_leg["d_delta_g_kcal_per_mol"], solvent_leg["d_delta_g_kcal_per_mol"]), rel=1e-12)
    assert correction["d_ddg_kcal_per_mol"] > 0
    if mm_binding:
        assert correction["corrected_binding_kcal_per_mol"] == pytest.approx(
            correction["mm_binding_kcal_per_mol"] + correction["ddg_kcal_per_mol"], abs=1e-9)
    assert correction["converged"] is False and correction["advice"]
    assert results["settings"]["n_iterations"] == n_iterations


def test_t4_fe_correct_quick(tmp_path) -> None:
    """``--quick``: pilot, windows, both legs with MBAR and BAR, summary and results files consistent."""
    result = run_example("t4_fe_correct.py", ["--quick", "--output", "fe"], str(tmp_path), timeout=400)
    check_fe_outputs(str(tmp_path / "fe"), result.stdout, n_iterations=4, n_switches=2, mm_binding=True)
    with open(tmp_path / "fe" / "summary.json") as stream:
        assert json.load(stream)["correction"]["mm_binding_kcal_per_mol"] == -4.60


def test_cb7_b2_fe_correct_quick(tmp_path) -> None:
    """``--quick``: the host-free solvent box is written and has the complex's atoms minus CB7's 126."""
    result = run_example("cb7_b2_fe_correct.py", ["--quick", "--output", "fe"], str(tmp_path), timeout=400)
    check_fe_outputs(str(tmp_path / "fe"), result.stdout, n_iterations=4, n_switches=2, mm_binding=False)
    with open(tmp_path / "fe" / "solvent_npt.xml") as stream:
        state = openmm.XmlSerializer.deserialize(stream.read())
    prmtop = app.AmberPrmtopFile(openmmtools_data("cb7-b2", "complex-explicit.prmtop"))
    host = [a for a in prmtop.topology.atoms() if a.residue.name == "CUC"]
    assert len(host) == 126
    positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    assert positions.shape == (prmtop.topology.getNumAtoms() - 126, 3) and np.isfinite(positions).all()


def test_train_transfer_demo_quick(tmp_path) -> None:
    """``--quick``: every model file, results.json and the PNG; the transfer-learned model's test RMSE
    in results.json equals the RMSE that model file gives in OpenMM on the held-out conformations
    read from the HDF5 file with h5py."""
    h5py = pytest.importorskip("h5py")
    import openmm_ani

    result = run_example("train_transfer_demo.py", ["--quick", "--no-progress", "--out-dir", "demo"], str(tmp_path))
    out = tmp_path / "demo"
    for name in ("pretrained_dft.npz", "transfer_dft_to_cc.npz", "delta_residual.npz", "transfer_ani1x_to_cc.npz"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "results.json") as stream:
        summary = json.load(stream)
    assert summary["members"] == 2 and summary["pretrain_epochs"] == 2 and summary["cc_epochs"] == 2
    assert len(summary["rows"]) == 7
    for row in summary["rows"]:
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("rmse", "mae", "conformational_rmse")), row
        assert row["mae"] <= row["rmse"]
        assert row["model"] in result.stdout
    for name, values in summary["curves_kcal"].items():
        assert len(values) == 2 and all(math.isfinite(v) for v in values), name
    keys = summary["cc_test_keys"]
    assert len(keys) == len(set(keys)) == summary["cc_test"] > 0
    assert summary["cc_test"] + summary["cc_train"] == 270  # the shipped set's ccsd(t)_dz labels
    assert summary["cc_key"] == "ccsd(t)_dz.energy"

    # the held-out error, recomputed: model file -> OpenMM (double precision), labels -> h5py
    row = next(r for r in summary["rows"] if r["model"].startswith("transfer DFT -> CC"))
    potential = openmm_ani.ANIPotential(str(out / "transfer_dft_to_cc.npz"), precision="double")
    by_group: Dict[str, List[int]] = {}
    for key in keys:
        group, index = key.rsplit("/", 1)
        by_group.setdefault(group, []).append(int(index))
    errors = []
    with h5py.File(os.path.join(ROOT, "training", "resources", "chno_labels.h5"), "r") as data:
        for group, indices in by_group.items():
            z = [int(v) for v in data[group]["atomic_numbers"][()]]
            system = openmm.System()
            for number in z:
                system.addParticle(1.0)
            system.addForce(potential.createForce(z))
            context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            for i in indices:
                label = float(data[group][summary["cc_key"]][i])
                assert math.isfinite(label)
                context.setPositions(data[group]["coordinates"][i] * 0.1)  # A -> nm
                energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
                errors.append(energy / HARTREE_TO_KJ - label)
    rmse = float(np.sqrt(np.mean(np.square(errors))) * HARTREE_TO_KCAL)
    # the demo evaluates with PyTorch, OpenMM here in float64: agreement to 1e-3 kcal/mol
    assert row["rmse"] == pytest.approx(rmse, abs=1e-3)
