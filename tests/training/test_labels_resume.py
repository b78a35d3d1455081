"""``openmm-ani train labels`` resumes only conformations sampled the same way from the same inputs (issue 9).

The label file of a stopped run is resumed on its stored conformations. The old code compared only
their shapes and elements, so a rerun with another MD ``--seed`` or an edited input file (same
atoms, other coordinates) went on labelling the old conformations. The runs here stop at once
(``--hours 0``), so no quantum chemistry is done: what is tested is the decision to resume.
"""

import json
import os

import pytest

from openmm_ani.cli import main

pytest.importorskip("pyscf", reason="PySCF is part of the training extra")
pytest.importorskip("h5py", reason="h5py is part of the training extra")

H2 = "2\nframe 0\nH 0 0 0\nH 0 0 0.74\n2\nframe 1\nH 0 0 0\nH 0 0 0.80\n"


def labels(xyz, out, *extra):
    return main(["train", "labels", str(xyz), "-o", str(out), "--hours", "0", "--no-progress"] + list(extra))


def error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("openmm-ani: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_edited_input_is_not_resumed(tmp_path, capsys):
    xyz = tmp_path / "h2.xyz"
    xyz.write_text(H2)
    out = tmp_path / "h2.h5"
    assert labels(xyz, out) == 0
    assert labels(xyz, out) == 0  # the same input resumes
    before = open(out, "rb").read()
    xyz.write_text(H2.replace("0.80", "0.85"))
    assert labels(xyz, out) == 1
    line = error_line(capsys)
    assert "h2.h5 holds conformations sampled with other settings or inputs" in line and "sampling.inputs" in line
    assert open(out, "rb").read() == before


def test_other_md_seed_is_not_resumed(tmp_path, capsys):
    xyz = tmp_path / "h2.xyz"
    xyz.write_text(H2)
    out = tmp_path / "h2.h5"
    assert labels(xyz, out, "--conformers", "2", "--seed", "5", "--temperatures", "300") == 0
    meta = json.load(open(os.path.splitext(out)[0] + ".json"))
    assert meta["sampling"]["seed"] == 5 and meta["sampling"]["conformers"] == 2
    assert labels(xyz, out, "--conformers", "2", "--seed", "6", "--temperatures", "300") == 1
    assert "sampling.seed: stored 5, requested 6" in error_line(capsys)
    assert labels(xyz, out, "--conformers", "2", "--seed", "5", "--temperatures", "400") == 1
    assert "sampling.temperatures_K: stored [300.0], requested [400.0]" in error_line(capsys)


@pytest.mark.parametrize("option, value", [("--cc", "-1"), ("--conformers", "0"), ("--scale", "-2"), ("--hours", "-1")])
def test_impossible_counts(tmp_path, capsys, option, value):
    xyz = tmp_path / "h2.xyz"
    xyz.write_text(H2)
    assert labels(xyz, tmp_path / "h2.h5", option, value) == 1
    assert option in error_line(capsys)
    assert not os.path.exists(tmp_path / "h2.h5")
