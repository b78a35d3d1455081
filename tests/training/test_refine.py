"""``openmm-ani train refine``: ligand-specific active learning on water with tiny settings.

One refinement round (6 MD frames, 4 labelled with ωB97X/STO-3G, a methane replay set, 3
epochs) is run once for the module; the tests check it against independent computations:
the disagreement recomputed with ``committee_disagreement``, a direct PySCF call, the errors of
the starting and refined models computed here, and the exported file loaded again.
"""

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("pyscf", reason="PySCF is part of the training extra")
pytest.importorskip("h5py", reason="h5py is part of the training extra")

from openmm_ani import models  # noqa: E402
from openmm_ani.formats import build_model  # noqa: E402
from openmm_ani.training.data import Dataset  # noqa: E402
from openmm_ani.training.labels.levels import DFTSettings, dft_energy_forces  # noqa: E402
from openmm_ani.training.refine import RefineSettings, deduplicate, kabsch_rmsd, refine  # noqa: E402
from openmm_ani.training.refine import rounds as refine_rounds  # noqa: E402
from openmm_ani.training.select import committee_disagreement  # noqa: E402
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL  # noqa: E402

WATER = "3\nwater\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7432 -0.4500\n"
CHEAP_DFT = DFTSettings(basis="sto-3g", cartesian=False, grid_level=1, conv_tol=1e-8)
SETTINGS = dict(rounds=1, samples_per_round=6, temperatures=(300.0, 600.0), md_interval=5, md_equilibration=10,
                budget=4, threshold_kcal=None, rmsd_threshold_angstrom=0.0, dft=CHEAP_DFT,
                replay_molecules=("methane",), replay_conformations=2, epochs=3, batch_size=8, lr=1e-3,
                force_coefficient=0.1, refit_self_energies=True, device="cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One finished round: (ligand file, output directory, metrics of round 1)."""
    root = tmp_path_factory.mktemp("refine")
    ligand = str(root / "water.xyz")
    with open(ligand, "w") as handle:
        handle.write(WATER)
    output = str(root / "out")
    results = refine(ligand, "ani1x", output, RefineSettings(**SETTINGS))
    assert len(results) == 1
    return ligand, output, results[0]


def _load(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def test_kabsch_rmsd_and_deduplication_drop_a_rigidly_moved_copy() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 3))
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    copy = a @ rot.T + np.array([1.0, -2.0, 0.5])
    assert kabsch_rmsd(a, copy) < 1e-10
    b = a + rng.normal(scale=0.3, size=a.shape)
    assert kabsch_rmsd(a, b) > 0.1
    frames = np.stack([a, b, copy])
    # most disputed first: 2 (the copy), 0 (its original: dropped), 1
    assert deduplicate(frames, [2, 0, 1], 0.05, budget=3) == [2, 1]
    assert deduplicate(frames, [2, 0, 1], 0.0, budget=2) == [2, 0]


def test_sample_md_accepts_a_loaded_model() -> None:
    """The new ``model`` keyword drives the same dynamics as ``model_name`` for the same ensemble."""
    from openmm_ani.training.sampling import molecule, sample_md

    z, x0 = molecule("water")
    kwargs = dict(temperatures=(300.0,), seed=1, interval=2, equilibration=3)
    by_name = sample_md(z, x0, 2, model_name="ani1x", **kwargs)
    by_model = sample_md(z, x0, 2, model=models.load("ani1x", dtype=torch.float64), **kwargs)
    assert np.array_equal(by_name, by_model)
    assert np.abs(by_name - (x0 - x0.mean(0))).max() > 1e-3  # it really moved


def test_selected_frames_are_the_most_disputed(run) -> None:
    _, output, metrics = run
    samples = _load(os.path.join(output, "round-1", "samples.npz"))
    selected = _load(os.path.join(output, "round-1", "selected.npz"))
    frames = samples["coordinates"]
    c, n = frames.shape[:2]
    data = Dataset(np.broadcast_to(samples["atomic_numbers"], (c, n)).copy(), frames, np.zeros(c))
    direct = committee_disagreement(models.load("ani1x", dtype=torch.float64), data) * HARTREE_TO_KCAL_PER_MOL
    expected = np.argsort(-direct)[:SETTINGS["budget"]]
    assert list(selected["indices"]) == list(expected)
    assert np.allclose(selected["disagreement_kcal"], direct[expected], rtol=1e-10)
    assert np.array_equal(selected["coordinates"], frames[expected])
    assert metrics["disagreement_kcal_per_mol_per_sqrt_atom"]["max"] == pytest.approx(direct.max(), rel=1e-10)
    assert metrics["disagreement_kcal_per_mol_per_sqrt_atom"]["median"] == pytest.approx(np.median(direct), rel=1e-10)


def test_stored_label_equals_direct_pyscf(run) -> None:
    import h5py

    _, output, metrics = run
    assert (metrics["labels_ok"], metrics["labels_failed"]) == (4, 0)
    selected = _load(os.path.join(output, "round-1", "selected.npz"))
    path = os.path.join(output, "round-1", "labels.h5")
    with open(os.path.splitext(path)[0] + ".json") as handle:
        group = next(g for g, info in json.load(handle)["molecules"].items() if info["name"] == "frame-001")
    with h5py.File(path, "r") as h5:
        stored_e = float(h5[group]["wb97x_dz.energy"][0])
        stored_f = np.asarray(h5[group]["wb97x_dz.forces"][0])
    energy, forces, _ = dft_energy_forces(selected["atomic_numbers"], selected["coordinates"][1], CHEAP_DFT)
    assert stored_e == pytest.approx(energy, abs=1e-8)
    assert np.allclose(stored_f, forces, atol=1e-6)


def test_refined_model_fits_new_labels_better_and_export_loads(run) -> None:
    _, output, metrics = run
    pred = _load(os.path.join(output, "round-1", "predictions.npz"))
    selected = _load(os.path.join(output, "round-1", "selected.npz"))
    z = torch.as_tensor(np.broadcast_to(selected["atomic_numbers"], (4, 3)).copy())
    x = torch.as_tensor(selected["coordinates"])
    labels = pred["label_energies_ha"]
    start = models.load("ani1x", dtype=torch.float64)(z, x).detach().numpy()
    refined = models.load(metrics["model_out"])  # the exported file
    after = refined(z, x).detach().numpy()
    mae_before = np.abs(start - labels).mean() * HARTREE_TO_KCAL_PER_MOL
    mae_after = np.abs(after - labels).mean() * HARTREE_TO_KCAL_PER_MOL
    assert mae_after < mae_before
    # with STO-3G labels most of that gap is the self energies (refitted); the training must also beat the
    # starting networks given the same refitted self energies
    spec = models.load_model_spec("ani1x")
    spec.self_energies = [metrics["self_energies_ha"][e] for e in spec.elements]
    offset_only = build_model(spec, dtype=torch.float64)(z, x).detach().numpy()
    mae_offset_only = np.abs(offset_only - labels).mean() * HARTREE_TO_KCAL_PER_MOL
    assert mae_after < mae_offset_only, (mae_after, mae_offset_only)
    assert mae_after == pytest.approx(metrics["new_labels_after"]["energy_mae_kcal_per_mol"], rel=1e-9)
    assert mae_before == pytest.approx(metrics["new_labels_before"]["energy_mae_kcal_per_mol"], rel=1e-9)
    # the file gives the trained in-memory members' energies (float32 training, float64 evaluation)
    assert np.allclose(after, pred["trained_energies_ha"], atol=1e-5, rtol=0)
    assert refined.num_models == 8


def test_rerun_reuses_round_one_and_changed_setting_is_refused(run, monkeypatch) -> None:
    ligand, output, metrics = run
    computed = []
    real = refine_rounds.run_round

    def spy(k, *args, **kwargs):
        computed.append(k)
        return real(k, *args, **kwargs)

    monkeypatch.setattr(refine_rounds, "run_round", spy)
    results = refine(ligand, "ani1x", output, RefineSettings(**{**SETTINGS, "rounds": 2}))
    assert computed == [2]
    assert results[0] == metrics
    assert results[1]["model_in"] == metrics["model_out"]
    assert os.path.isfile(os.path.join(output, "round-2", "model.npz"))
    with pytest.raises(ValueError, match=r"budget: stored 4, now 3"):
        refine(ligand, "ani1x", output, RefineSettings(**{**SETTINGS, "budget": 3}))


def _without_paths(results):
    return [{k: v for k, v in m.items() if k not in ("model_in", "model_out")} for m in results]


def test_resumed_run_equals_uninterrupted_two_round_run(run, tmp_path) -> None:
    """The fixture's output, stopped after round 1 and extended to 2 rounds, equals a 2-round run from scratch."""
    ligand, output, _ = run
    resumed = refine(ligand, "ani1x", output, RefineSettings(**{**SETTINGS, "rounds": 2}))
    fresh = refine(ligand, "ani1x", str(tmp_path / "fresh"), RefineSettings(**{**SETTINGS, "rounds": 2}))
    assert len(resumed) == len(fresh) == 2
    assert _without_paths(resumed) == _without_paths(fresh)


def test_ctrl_c_stops_between_steps_and_rerun_finishes(run, tmp_path, monkeypatch) -> None:
    """A stop requested during round 1 leaves samples.npz and no metrics; a rerun completes the round."""
    import contextlib

    from openmm_ani.training.refine import loop

    ligand, _, metrics = run

    @contextlib.contextmanager
    def requested(notice=None):
        yield lambda: True

    output = str(tmp_path / "stopped")
    monkeypatch.setattr(loop, "deferred_interrupts", requested)
    assert refine(ligand, "ani1x", output, RefineSettings(**SETTINGS)) == []
    assert os.path.isfile(os.path.join(output, "round-1", "samples.npz"))
    assert not os.path.exists(os.path.join(output, "round-1", "metrics.json"))
    monkeypatch.undo()
    results = refine(ligand, "ani1x", output, RefineSettings(**SETTINGS))
    assert _without_paths(results) == _without_paths([metrics])


def test_cli_builds_settings_and_prints_the_table(run, tmp_path, monkeypatch, capsys) -> None:
    from openmm_ani.training import cli
    from openmm_ani.training.refine import loop

    ligand, _, metrics = run
    seen = {}

    def fake_refine(structure, model, output, settings):
        seen.update(structure=structure, model=model, output=output, settings=settings)
        return [metrics]

    monkeypatch.setattr(loop, "refine", fake_refine)
    status = cli.main(["train", "refine", ligand, "--model", "ani1x", "--rounds", "1", "--output", str(tmp_path / "o"),
                       "--budget", "5", "--threshold", "-1"])
    assert status == 0
    assert seen["settings"].rounds == 1 and seen["settings"].budget == 5 and seen["settings"].threshold_kcal is None
    out = capsys.readouterr().out
    mae = f"{metrics['held_out_before']['energy_mae_kcal_per_mol']:.2f}->{metrics['held_out_after']['energy_mae_kcal_per_mol']:.2f}"
    assert "labels ok/failed" in out and mae in out and "4/0" in out
    assert f"model: {metrics['model_out']}" in out
    capsys.readouterr()
    # fewer rounds than asked and not converged: stopped by Ctrl-C, exit status 130
    assert cli.main(["train", "refine", ligand, "--rounds", "2", "--output", str(tmp_path / "o")]) == 130
    with pytest.raises(FileNotFoundError, match="ligand file not found: missing.pdb"):
        cli.main(["train", "refine", "missing.pdb", "--output", str(tmp_path / "o")])
