"""`openmm-ani train pretrain|transfer|evaluate` on a small synthetic release-layout file."""

import json
import os

import numpy as np
import pytest

from openmm_ani.formats import load_spec
from openmm_ani.training.cli import main
from openmm_ani.training.data import write_h5

from test_training_support import MOLECULES, analytic_energy_forces


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """'DFT' = the analytic potential; 'CC' = the same with 10 % stiffer bonds; NaN CC labels on some conformations."""
    rng = np.random.default_rng(0)
    molecules = {}
    for name, (z, x0) in MOLECULES.items():
        xs = x0 + rng.normal(0, 0.06, size=(8,) + x0.shape)
        dft = [analytic_energy_forces(z, x, x0) for x in xs]
        cc = np.array([analytic_energy_forces(z, x, x0, scale=1.1)[0] - 0.01 * len(z) for x in xs])
        cc[::4] = np.nan
        molecules[name] = {"atomic_numbers": np.array(z), "coordinates": xs,
                           "wb97x_dz.energy": np.array([e for e, _ in dft]),
                           "wb97x_dz.forces": np.array([f for _, f in dft]), "ccsd(t)_dz.energy": cc}
    path = os.path.join(tmp_path_factory.mktemp("cli"), "labels.h5")
    write_h5(path, molecules)
    return path


COMMON = ["--epochs", "2", "--batch-size", "8", "--device", "cpu", "--no-progress", "--seed", "3"]


def test_pretrain_independent_jobs_equal_one_run(data_file, tmp_path) -> None:
    """Two members trained as two jobs and combined give the same file as one two-member run."""
    one = os.path.join(tmp_path, "one.npz")
    args = ["train", "pretrain", "--data", data_file, "--config", "tiny", "--members", "2",
            "--force-key", "wb97x_dz.forces"] + COMMON
    assert main(args + ["--output", one]) == 0
    split = os.path.join(tmp_path, "split.npz")
    for k in ("0", "1"):
        assert main(args + ["--output", split, "--member-index", k]) == 0
    assert not os.path.exists(split)
    assert main(args + ["--output", split, "--combine"]) == 0
    a, b = load_spec(one), load_spec(split)
    assert a.num_models == 2 and a.self_energies == b.self_energies
    for element in a.elements:
        for la, lb in zip(a.layers[element], b.layers[element]):
            assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
    with open(os.path.join(tmp_path, "one.npz.work", "history_1.json")) as handle:
        assert len(json.load(handle)) == 2


def test_transfer_and_evaluate(data_file, tmp_path, capsys) -> None:
    """Transfer from a pretrained file to the CC labels (NaN skipped), then evaluate it."""
    pretrained = os.path.join(tmp_path, "pre.npz")
    assert main(["train", "pretrain", "--data", data_file, "--config", "tiny", "--members", "2",
                 "--output", pretrained] + COMMON) == 0
    transferred = os.path.join(tmp_path, "cc.npz")
    assert main(["train", "transfer", "--source", pretrained, "--data", data_file, "--energy-key",
                 "ccsd(t)_dz.energy", "--output", transferred] + COMMON) == 0
    before, after = load_spec(pretrained), load_spec(transferred)
    assert after.provenance["frozen_layers"] == [0, 2]
    for element in before.elements:
        for k in (0, 2):
            assert np.array_equal(before.layers[element][k].weight, after.layers[element][k].weight)
        assert not np.array_equal(before.layers[element][1].weight, after.layers[element][1].weight)
    out = os.path.join(tmp_path, "metrics.json")
    assert main(["train", "evaluate", "--model", transferred, "--data", data_file, "--energy-key",
                 "ccsd(t)_dz.energy", "--json", out]) == 0
    with open(out) as handle:
        metrics = json.load(handle)
    assert metrics["count"] == 5 * 6  # 8 per molecule, every 4th NaN
    assert "RMSE" in capsys.readouterr().out


def test_bad_arguments_are_named(data_file, tmp_path) -> None:
    with pytest.raises(ValueError, match="no label 'missing.energy'"):
        main(["train", "pretrain", "--data", data_file, "--config", "tiny", "--members", "1", "--energy-key",
              "missing.energy", "--output", os.path.join(tmp_path, "x.npz")] + COMMON)
    with pytest.raises(ValueError, match="unknown model configuration 'huge'"):
        main(["train", "pretrain", "--data", data_file, "--config", "huge", "--output",
              os.path.join(tmp_path, "y.npz")] + COMMON)
    with pytest.raises(FileNotFoundError, match="member_0.npz"):
        main(["train", "pretrain", "--data", data_file, "--config", "tiny", "--members", "2", "--combine",
              "--output", os.path.join(tmp_path, "z.npz")] + COMMON)


def test_registered_in_openmm_ani_cli() -> None:
    """helper B's `openmm-ani` parser has the train command with its sub-commands."""
    from openmm_ani import cli

    parser = cli.build_parser()
    args = parser.parse_args(["train", "evaluate", "--model", "ani1x"])
    assert args.func.__name__ == "run_evaluate"
