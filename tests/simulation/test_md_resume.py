"""``openmm-ani simulate``: checkpoints, ``--resume``/``--overwrite`` and Ctrl-C (issue 9, item 15).

The reference of every resumed run is the same run made in one go: LangevinMiddleIntegrator on the
CPU platform with one thread is deterministic, and the OpenMM checkpoint carries positions,
velocities, step count and the random-number state, so the trajectory of an interrupted and
resumed run must equal the uninterrupted one bit for bit (DCD positions, state-data energies,
disagreement lines). The old code had no checkpoint and silently overwrote a previous run's
files (56 -> 13 frames).
"""

import os
import struct

import mdtraj
import numpy as np
import pytest

from openmm_ani.cli import main
from openmm_ani.simulation.checkpoint import read_job_state

from interruptible import start
from openmm_inputs import LIGAND_PDB

INTERVAL = 10
COMMON = ["--report-interval", str(INTERVAL), "--threads", "1", "--quiet", "--precision", "double", "--seed", "5"]


def simulate(prefix, steps, *extra):
    return main(["simulate", LIGAND_PDB, "--steps", str(steps), "--output", str(prefix)] + COMMON + list(extra))


def outputs(prefix):
    """(DCD positions [F, N, 3], state-data rows without the speed column, disagreement lines)."""
    frames = mdtraj.load(str(prefix) + ".dcd", top=LIGAND_PDB).xyz
    with open(str(prefix) + ".csv") as handle:
        rows = [line.strip().split(",")[:6] for line in handle if not line.startswith("#")]
    with open(str(prefix) + ".disagreement.csv") as handle:
        lines = handle.read().splitlines()
    return frames, rows, lines


def assert_same_run(a, b):
    frames_a, rows_a, lines_a = a
    frames_b, rows_b, lines_b = b
    assert frames_a.shape == frames_b.shape
    assert np.array_equal(frames_a, frames_b)
    assert rows_a == rows_b and lines_a == lines_b
    assert [int(r[0]) for r in rows_a] == list(range(INTERVAL, INTERVAL * (len(rows_a) + 1), INTERVAL))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Runs of 40 and 300 steps made in one go."""
    folder = tmp_path_factory.mktemp("reference")
    for steps in (40, 300):
        assert simulate(folder / f"ref{steps}", steps) == 0
    return {steps: outputs(folder / f"ref{steps}") for steps in (40, 300)}


def test_extend_a_finished_run(tmp_path, uninterrupted, capsys):
    assert simulate(tmp_path / "md", 20) == 0
    state = read_job_state(str(tmp_path / "md.chk"))
    assert state.step == 20 and state.frames == 2
    assert simulate(tmp_path / "md", 40, "--resume") == 0
    assert "resumed at step 20" in capsys.readouterr().out
    assert_same_run(outputs(tmp_path / "md"), uninterrupted[40])
    assert read_job_state(str(tmp_path / "md.chk")).step == 40
    assert simulate(tmp_path / "md", 40, "--resume") == 0  # nothing left to do: files unchanged
    assert_same_run(outputs(tmp_path / "md"), uninterrupted[40])


def test_resume_cuts_away_what_was_written_after_the_checkpoint(tmp_path, uninterrupted):
    """A process killed while writing leaves half a frame and extra lines: the resumed files drop them."""
    assert simulate(tmp_path / "md", 20) == 0
    with open(tmp_path / "md.dcd", "r+b") as handle:
        handle.seek(8)
        handle.write(struct.pack("<i", 3))  # OpenMM counts a frame in the header before it writes it
        handle.seek(0, os.SEEK_END)
        handle.write(b"\x01" * 100)  # part of that frame
    with open(tmp_path / "md.csv", "a") as handle:
        handle.write("30,0.015,-1.0")
    with open(tmp_path / "md.disagreement.csv", "a") as handle:
        handle.write("30,0.015000,1.0,0.0,nan\n")
    assert simulate(tmp_path / "md", 40, "--resume") == 0
    assert_same_run(outputs(tmp_path / "md"), uninterrupted[40])


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("openmm-ani: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_existing_outputs_are_not_overwritten(tmp_path, uninterrupted, capsys):
    assert simulate(tmp_path / "md", 40) == 0
    before = outputs(tmp_path / "md")
    assert simulate(tmp_path / "md", 10) == 1
    one_error_line(capsys, "output files of an earlier run exist", "md.dcd", "--resume", "--overwrite")
    assert_same_run(outputs(tmp_path / "md"), before)
    assert simulate(tmp_path / "md", 20, "--overwrite") == 0
    frames, rows, _ = outputs(tmp_path / "md")
    assert len(frames) == 2 and np.array_equal(frames, uninterrupted[40][0][:2])


@pytest.mark.parametrize("change, difference", [
    (["--seed", "6"], "seed: stored 5, now 6"),
    (["--timestep", "1.0"], "timestep_fs: stored 0.5, now 1.0"),
    (["--temperature", "310"], "temperature_k: stored 300.0, now 310.0"),
    (["--report-interval", "5"], "report_interval: stored 10, now 5"),
    (["--model", "ani1x"], "model: stored ani1ccx, now ani1x"),
    (["--model-index", "2"], "model_index: stored null, now 2"),
])
def test_resume_with_other_settings_lists_the_differences(tmp_path, capsys, change, difference):
    assert simulate(tmp_path / "md", 20) == 0
    chk = open(tmp_path / "md.chk", "rb").read()
    assert simulate(tmp_path / "md", 40, "--resume", *change) == 1
    one_error_line(capsys, "md.chk belongs to a run with other settings or inputs", difference, "--overwrite")
    assert open(tmp_path / "md.chk", "rb").read() == chk


def test_resume_with_another_input_file_is_refused(tmp_path, capsys):
    moved = tmp_path / "moved.pdb"
    lines = open(LIGAND_PDB).read().splitlines()
    lines[1] = lines[1][:30] + f"{float(lines[1][30:38]) + 0.1:8.3f}" + lines[1][38:]
    moved.write_text("\n".join(lines) + "\n")
    assert simulate(tmp_path / "md", 20) == 0
    assert main(["simulate", str(moved), "--steps", "40", "--output", str(tmp_path / "md"), "--resume"] + COMMON) == 1
    one_error_line(capsys, "input: stored sha256:", ", now sha256:")


def test_resume_errors(tmp_path, capsys):
    assert simulate(tmp_path / "md", 20) == 0
    assert simulate(tmp_path / "md", 10, "--resume") == 1
    one_error_line(capsys, "md.chk is at step 20, beyond --steps 10")
    os.remove(tmp_path / "md.chk")
    assert simulate(tmp_path / "md", 40, "--resume") == 1
    one_error_line(capsys, "cannot resume", "md.chk does not")
    (tmp_path / "bad.chk").write_bytes(b"openmm-ani md checkpoint 1\n{not json\n")
    (tmp_path / "bad.dcd").write_bytes(b"")
    assert simulate(tmp_path / "bad", 40, "--resume") == 1
    one_error_line(capsys, "bad.chk is a damaged MD checkpoint")
    assert simulate(tmp_path / "md", 40, "--resume", "--overwrite") == 1
    one_error_line(capsys, "not allowed with argument")


def test_resume_without_earlier_run_starts_afresh(tmp_path, uninterrupted):
    assert simulate(tmp_path / "md", 40, "--resume") == 0
    assert_same_run(outputs(tmp_path / "md"), uninterrupted[40])


def test_ctrl_c_saves_and_resumes(tmp_path, uninterrupted):
    """A real SIGINT to ``openmm-ani simulate``: exit 130, valid files, and the resumed run is the uninterrupted one."""
    prefix = str(tmp_path / "md")
    def three_reports() -> bool:  # the checkpoint file is replaced atomically at each report
        return os.path.exists(prefix + ".chk") and read_job_state(prefix + ".chk").step >= 3 * INTERVAL

    with start("simulate", LIGAND_PDB, "--steps", "300", "--output", prefix, *COMMON) as child:
        child.wait_until(three_reports, timeout=120)
        code, out, err = child.interrupt(timeout=120)
    assert code == 130, err
    assert len(err.strip().splitlines()) == 1, err  # the final line only (no log record of the first Ctrl-C)
    assert "Traceback" not in err and "openmm-ani: interrupted at step" in err
    state = read_job_state(prefix + ".chk")
    assert 3 * INTERVAL <= state.step < 300
    frames, rows, lines = outputs(prefix)  # the files are valid as they are
    assert len(frames) == len(rows) == len(lines) - 1 == state.frames == state.step // INTERVAL
    assert np.array_equal(frames, uninterrupted[300][0][: len(frames)])
    assert simulate(prefix, 300, "--resume") == 0
    assert_same_run(outputs(prefix), uninterrupted[300])
