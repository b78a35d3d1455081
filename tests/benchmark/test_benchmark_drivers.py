"""The benchmark drivers in ``benchmarks/`` still run against the library they import (issue 17 item 6).

They are timed by hand, never in the suite (no timed assertions); this runs each in its smallest form
so that a renamed case or function breaks a test instead of the next person's measurement.
"""

import os
import subprocess
import sys

import pytest

from paths import ROOT


def run_driver(*args, timeout=600):
    completed = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", args[0]), *args[1:]],
                               capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def test_profile_step_runs_a_case_and_compiles_its_callgrind_helper():
    out = run_driver("profile_step.py", "pxylene", "openmm-ani", "--steps", "2", "--plain")
    assert out.startswith("pxylene openmm-ani: ") and out.strip().endswith("ms/step")
    if not os.path.exists("/usr/include/valgrind/callgrind.h"):
        pytest.skip("valgrind's callgrind.h is not installed")
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import profile_step
    finally:
        sys.path.pop(0)
    helper = profile_step.callgrind_helper()
    helper.cg_start(), helper.cg_zero(), helper.cg_stop()  # no-ops outside valgrind


def test_bench_core_times_pxylene_after_checking_its_energies():
    out = run_driver("bench_core.py", "--systems", "pxylene", "--rounds", "1", "--quick")
    rows = [line for line in out.splitlines() if line.startswith("| pxylene | 18 |")]
    assert len(rows) >= 1, out


def test_bench_core_autograd_times_the_scripted_forward_and_backward():
    out = run_driver("bench_core.py", "--systems", "pxylene", "--rounds", "1", "--quick", "--autograd")
    assert "forward + autograd.grad (scripted)" in out, out
    rows = [line for line in out.splitlines() if line.startswith("| pxylene | 18 |")]
    assert len(rows) >= 1, out


def test_bench_minimize_refuses_a_case_without_mm():
    completed = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_minimize.py"), "--cases", "pxylene"],
                               capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert completed.returncode == 2 and "invalid choice: 'pxylene'" in completed.stderr
