"""The first Ctrl-C stops ``fe-correct`` within seconds, in the middle of a switch or of an iteration.

Before, the first Ctrl-C was honoured at the next replica-exchange checkpoint or after the
switch under way (45 s for CB7-B2). Now the MD polls it between chunks of steps of about half
a second (:func:`openmm_ani.freeenergy.md.run_steps`). The runs below make a switch and an
iteration last far longer than :data:`LATENCY_S`, interrupt them in the middle, and check exit
status 130 within that time, and the files: the interrupted switch is discarded and a rerun
finishes the run with the switches done before it unchanged; the replica-exchange file stays
at its last checkpoint, where a rerun resumes (tests/cli/test_fe_cli.py checks a resumed run).
The ligand is p-xylene alone (T4 lysozyme's ligand.prmtop, 18 atoms), both legs the same.
"""

import json
import os
import time

import pytest

from interruptible import start

openmmtools = pytest.importorskip("openmmtools")
from openmmtools import multistate  # noqa: E402

T4 = os.path.join(os.path.dirname(openmmtools.__file__), "data", "T4-lysozyme-L99A-implicit")
LEGS = [arg for leg in ("complex", "solvent") for arg in (f"--{leg}-prmtop", os.path.join(T4, "ligand.prmtop"),
                                                          f"--{leg}-coords", os.path.join(T4, "ligand-minimized.crd"))]
LEGS += ["--ligand-resname", "TMP"]
COMMON = ["--n-states", "3", "--equilibration-steps", "10", "--steps-between-switches", "5", "--platform", "Reference",
          "--precision", "single", "--minimize-iterations", "50", "--no-progress"]
#: Longest wait from SIGINT to the end of the process (s): a chunk of MD (~0.5 s), saving, and the
#: interpreter's exit with torch loaded, on a loaded 2-core machine (measured here: 1.1 s in a switch,
#: 1.1-2.5 s in an iteration; 8 s when the signal came during the Context's creation).
LATENCY_S = 10.0


def _interrupt_timed(child) -> tuple:
    sent = time.monotonic()
    code, out, err = child.interrupt(timeout=300)
    return code, err, time.monotonic() - sent


def test_ctrl_c_in_a_switch_stops_within_seconds_and_the_rerun_finishes(tmp_path):
    out = tmp_path / "lig"
    # a switch of 1500 steps takes several seconds; check_interval 1 stores every pair
    protocol = [*COMMON, "--n-iterations", "0", "--n-switches", "3", "--switching-steps", "1500", "--check-interval", "1"]
    store = out / "complex" / "switching.json"
    with start("fe-correct", *LEGS, "--output", str(out), *protocol) as child:
        child.wait_until(store.exists, timeout=600, poll=0.1)  # the first pair is stored: the second is under way
        time.sleep(0.5)
        code, err, latency = _interrupt_timed(child)
    assert code == 130, err[-2000:]
    assert latency < LATENCY_S, latency
    with open(store) as stream:
        before = json.load(stream)
    assert 1 <= len(before["forward_work"]) == len(before["reverse_work"]) < 3  # the interrupted pair is not kept
    with start("fe-correct", *LEGS, "--output", str(out), *protocol) as child:
        code, _, err = child.wait(timeout=900)
    assert code == 0, err[-2000:]
    with open(out / "results.json") as stream:
        work = json.load(stream)["legs"]["complex"]["switching"]["forward_work"]
    assert len(work) == 3 and work[: len(before["forward_work"])] == before["forward_work"]


def test_ctrl_c_in_a_replica_exchange_iteration_stops_within_seconds(tmp_path):
    out = tmp_path / "lig"
    # one iteration: 3 windows x 4000 steps, far longer than LATENCY_S
    protocol = [*COMMON, "--n-iterations", "10", "--steps-per-iteration", "4000", "--check-interval", "5", "--n-switches", "0"]
    storage = out / "complex" / "replica_exchange.nc"
    with start("fe-correct", *LEGS, "--output", str(out), *protocol) as child:
        child.wait_until(storage.exists, timeout=600, poll=0.1)
        time.sleep(10.0)  # past the Context's creation (not interruptible, measured 3-7 s here), into the first iteration's MD
        code, err, latency = _interrupt_timed(child)
    assert code == 130, err[-2000:]
    assert latency < LATENCY_S, latency
    reporter = multistate.MultiStateReporter(str(storage), open_mode="r")
    try:
        assert int(reporter.read_last_iteration(last_checkpoint=True)) == 0  # where a rerun resumes
    finally:
        reporter.close()
    assert not (out / "results.json").exists()
