"""Numbers the docs state about the code are the code's (issue 19: the benchmark docs said 1 fs, the tool ran 0.5 fs)."""

import os
import re

from openmm_ani.benchmark import TIMESTEP_FS

from paths import ROOT


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as handle:
        return handle.read()


def test_benchmark_docs_state_the_benchmark_time_step():
    stated = [float(v) for v in re.findall(r"([0-9.]+) fs", read("docs", "benchmarks-openmm.md"))]
    assert stated and set(stated) == {TIMESTEP_FS}
    readme = read("README.md")
    assert re.findall(r"`openmm-ani benchmark[^`]*`: CPU platform, ([0-9.]+) fs", readme) == [f"{TIMESTEP_FS:g}"]
