"""Ctrl-C at any moment of a command: exit status 130 and exactly one line on stderr.

SIGINT goes out 0.3 s, 1 s, 2 s and 5 s after the start of ``openmm-ani energy`` on a long
trajectory and of ``openmm-ani simulate`` (pure ANI p-xylene, more steps than it runs in 5 s):
during the command line's imports, torch's import, the model's loading, and the work itself.
Whatever the command was doing then, it ends with status 130 and one line (``openmm-ani:
interrupted``, or simulate's ``interrupted at step N`` once MD runs) — no traceback, no log
record, nothing from another thread. The children get SIGINT's default disposition
(:mod:`interruptible`), so this holds also when pytest runs with SIGINT ignored.
"""

import re

import mdtraj
import numpy as np
import pytest

from interruptible import start
from openmm_inputs import LIGAND_PDB

#: When SIGINT is sent (s after the start); torch's import alone takes about 1.5 s.
MOMENTS = [0.3, 1.0, 2.0, 5.0]
#: The one line a command may leave on stderr.
ONE_LINE = re.compile(r"^openmm-ani: interrupted( at step \d+ of \d+; state saved in .+)?$")


@pytest.fixture(scope="module")
def long_trajectory(tmp_path_factory) -> str:
    """20000 frames of p-xylene: far more than ``energy`` rescores in 5 s."""
    traj = mdtraj.load(LIGAND_PDB)
    frames = traj.xyz + np.random.default_rng(0).normal(scale=0.002, size=(20000, traj.n_atoms, 3)).astype(np.float32)
    path = str(tmp_path_factory.mktemp("long") / "long.dcd")
    mdtraj.Trajectory(frames, traj.topology).save_dcd(path)
    return path


def commands(tmp_path, trajectory: str):
    return {
        "energy": ["energy", trajectory, "--top", LIGAND_PDB, "--no-forces"],
        "simulate": ["simulate", LIGAND_PDB, "--steps", "10000000", "--report-interval", "50", "--threads", "1", "--quiet",
                     "--output", str(tmp_path / "md")],
    }


@pytest.mark.parametrize("seconds", MOMENTS)
@pytest.mark.parametrize("command", ["energy", "simulate"])
def test_ctrl_c_at_any_moment_exits_130_with_one_line(tmp_path, long_trajectory, command, seconds):
    with start(*commands(tmp_path, long_trajectory)[command]) as child:
        code, out, err = child.interrupt_at(seconds, timeout=120)
    lines = err.strip().splitlines()
    assert code == 130, err
    assert len(lines) == 1 and ONE_LINE.match(lines[0]), err
