"""``openmm-ani train pretrain/transfer``: resume only what matches, extend with more epochs, Ctrl-C (issue 9, items 2, 14, 16).

The old code resumed a work directory whatever the new settings were: another ``--seed``,
``--energy-key`` or ``--members`` reported "resumed ... after epoch 8" and exported the old
members, another ``--config`` ended in a traceback, and ``--epochs 0`` wrote an untrained model
with exit status 0. The reference of a resumed or extended run is the same run made in one go in
a fresh directory (training on the CPU is deterministic for a given seed).
"""

import os

import numpy as np
import pytest

from openmm_ani.cli import main
from openmm_ani.formats import load_spec
from openmm_ani.training.checkpoint import load_checkpoint
from openmm_ani.training.data import write_h5

from interruptible import start
from test_training_support import MOLECULES, analytic_energy_forces


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    molecules = {}
    for name, (z, x0) in MOLECULES.items():
        xs = x0 + rng.normal(0, 0.06, size=(8,) + x0.shape)
        labels = [analytic_energy_forces(z, x, x0) for x in xs]
        molecules[name] = {"atomic_numbers": np.array(z), "coordinates": xs,
                           "wb97x_dz.energy": np.array([e for e, _ in labels]),
                           "wb97x_dz.forces": np.array([f for _, f in labels]),
                           "other.energy": np.array([e for e, _ in labels]) + 0.01}
    path = os.path.join(tmp_path_factory.mktemp("resume"), "labels.h5")
    write_h5(path, molecules)
    return path


def pretrain(data, output, epochs, *extra):
    return ["train", "pretrain", "--data", data, "--config", "tiny", "--members", "2", "--epochs", str(epochs),
            "--batch-size", "8", "--device", "cpu", "--no-progress", "--seed", "3", "--output", str(output)] + list(extra)


def same_weights(a_path, b_path):
    a, b = load_spec(str(a_path)), load_spec(str(b_path))
    return a.num_models == b.num_models and all(
        np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
        for element in a.elements for la, lb in zip(a.layers[element], b.layers[element]))


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("openmm-ani: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def two_epochs(data_file, tmp_path_factory):
    """A finished 2-epoch run (its work directory is copied by the tests that change it)."""
    folder = tmp_path_factory.mktemp("two")
    assert main(pretrain(data_file, folder / "model.npz", 2)) == 0
    return folder


def copy_run(source, target):
    import shutil

    shutil.copytree(source, target)
    return target / "model.npz"


@pytest.mark.parametrize("change, difference", [
    (["--seed", "4"], "seed: stored 3, now 4"),
    (["--energy-key", "other.energy"], "energy_key: stored wb97x_dz.energy, now other.energy"),
    (["--members", "3"], "members: stored 2, now 3"),
    (["--config", "small"], "config differs"),
    (["--force-key", "wb97x_dz.forces"], "force_key: stored null, now wb97x_dz.forces"),
    (["--lr", "0.01"], "lr: stored 0.001, now 0.01"),
    (["--dtype", "float64"], "dtype: stored float32, now float64"),
])
def test_other_settings_are_not_resumed(data_file, two_epochs, tmp_path, capsys, change, difference):
    output = copy_run(two_epochs, tmp_path / "run")
    before = open(output, "rb").read()
    argv = pretrain(data_file, output, 2)
    for k in range(0, len(change), 2):  # replace the option if present, else add it
        if change[k] in argv:
            argv[argv.index(change[k]) + 1] = change[k + 1]
        else:
            argv += change[k:k + 2]
    assert main(argv) == 1
    one_error_line(capsys, "model.npz.work holds a training run with other settings", difference, "--overwrite")
    assert open(output, "rb").read() == before


def test_other_data_file_is_not_resumed(data_file, two_epochs, tmp_path, capsys):
    output = copy_run(two_epochs, tmp_path / "run")
    other = tmp_path / "other.h5"
    other.write_bytes(open(data_file, "rb").read())
    with open(other, "ab") as handle:  # same arrays, different bytes: the fingerprint is the file's
        handle.write(b"\0")
    assert main(pretrain(str(other), output, 2)) == 1
    one_error_line(capsys, "data: stored sha256:", "now sha256:")


def test_more_epochs_extend_and_equal_one_run(data_file, two_epochs, tmp_path):
    output = copy_run(two_epochs, tmp_path / "run")
    assert main(pretrain(data_file, output, 4)) == 0
    assert main(pretrain(data_file, tmp_path / "direct.npz", 4)) == 0
    assert same_weights(output, tmp_path / "direct.npz")
    assert load_checkpoint(str(tmp_path / "run" / "model.npz.work" / "member_1.ckpt"))["epoch"] == 4


def test_overwrite_starts_afresh(data_file, two_epochs, tmp_path):
    output = copy_run(two_epochs, tmp_path / "run")
    assert main(pretrain(data_file, output, 2, "--seed", "4", "--overwrite")) == 0
    assert main(pretrain(data_file, tmp_path / "direct.npz", 2, "--seed", "4")) == 0
    assert same_weights(output, tmp_path / "direct.npz")
    assert not same_weights(output, two_epochs / "model.npz")


def test_member_files_without_a_record_are_not_resumed(data_file, two_epochs, tmp_path, capsys):
    output = copy_run(two_epochs, tmp_path / "run")
    os.remove(tmp_path / "run" / "model.npz.work" / "run.json")
    assert main(pretrain(data_file, output, 2)) == 1
    one_error_line(capsys, "holds member files", "no run.json")


def test_changed_source_of_transfer_is_not_resumed(data_file, two_epochs, tmp_path, capsys):
    common = ["--data", data_file, "--energy-key", "other.energy", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
              "--no-progress", "--output", str(tmp_path / "cc.npz")]
    assert main(["train", "transfer", "--source", str(two_epochs / "model.npz")] + common) == 0
    retrained = copy_run(two_epochs, tmp_path / "other")
    assert main(pretrain(data_file, retrained, 3)) == 0  # the same file name, other weights
    assert main(["train", "transfer", "--source", str(retrained)] + common) == 1
    one_error_line(capsys, "source: stored sha256:")
    assert main(["train", "transfer", "--source", str(two_epochs / "model.npz"), "--freeze", "0,1"] + common) == 1
    one_error_line(capsys, "freeze: stored [0, 2], now [0, 1]")


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--members", "0"), ("--batch-size", "0"), ("--lr", "-1"),
                                           ("--epochs", "-2"), ("--lr", "nan")])
def test_settings_that_cannot_train(data_file, tmp_path, capsys, option, value):
    argv = pretrain(data_file, tmp_path / "model.npz", 1)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    assert main(argv) == 1
    one_error_line(capsys, option)
    assert not os.path.exists(tmp_path / "model.npz")


def test_ctrl_c_leaves_a_resumable_checkpoint(data_file, tmp_path):
    """A real SIGINT: exit 130, the last epoch's checkpoint intact, and the rerun equals one uninterrupted run."""
    output = tmp_path / "model.npz"
    argv = pretrain(data_file, output, 400, "--members", "1", "--early-stopping", "1000")
    argv[argv.index("--members") + 1] = "1"
    argv = argv[:-2]
    checkpoint = tmp_path / "model.npz.work" / "member_0.ckpt"
    with start(*argv) as child:
        child.wait_until(checkpoint.exists, timeout=120)  # written atomically: an epoch is done
        code, _, err = child.interrupt(timeout=120)
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "openmm-ani: interrupted" and "Traceback" not in err
    assert not output.exists()
    assert not [name for name in os.listdir(checkpoint.parent) if name.endswith(".tmp")]
    epoch = load_checkpoint(str(checkpoint))["epoch"]
    assert 1 <= epoch < 400
    target = epoch + 2
    resumed = argv[:]
    resumed[resumed.index("--epochs") + 1] = str(target)
    assert main(resumed) == 0
    direct = resumed[:]
    direct[direct.index("--output") + 1] = str(tmp_path / "direct.npz")
    assert main(direct) == 0
    assert same_weights(output, tmp_path / "direct.npz")
