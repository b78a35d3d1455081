"""`import openmm_ani` (and using ANIPotential) must not load training code, h5py or PySCF."""

import json
import subprocess
import sys

SCRIPT = """
import json, sys
import openmm_ani
from openmm_ani import ANIPotential
import openmm_ani.cli, openmm_ani.reporter, openmm_ani.potential, openmm_ani.serialization
potential = ANIPotential("ani1ccx")
potential.createForce([8, 1, 1])
print(json.dumps(sorted(sys.modules)))
"""

FORBIDDEN_PREFIXES = ("openmm_ani.training", "h5py", "pyscf")


def test_import_does_not_load_training_h5py_pyscf():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "openmm_ani.potential" in modules and "openmmtorch" in modules  # the probe really ran
    loaded = [m for m in modules if m == "openmm_ani.training" or m.startswith(FORBIDDEN_PREFIXES)]
    assert loaded == []
