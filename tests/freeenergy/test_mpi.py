"""Replica exchange across 2 MPI ranks (openmmtools' mpiplus) gives the analytic free energy.

Needs mpi4py and an MPI launcher (``pip install mpi4py mpich`` provides both on Linux);
skipped with the reason otherwise. The harmonic system of test_freeenergy: 2 particles whose
3D well stiffens from k0 to k1 = 4 k0, dF = 3 ln 4 kT.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, math, sys
    import numpy as np, openmm, mpiplus
    from openmm import unit
    from openmm_ani.freeenergy.equilibrium import run_replica_exchange
    from openmm_ani.freeenergy.settings import ProtocolSettings

    system = openmm.System()
    force = openmm.CustomExternalForce("0.5*(lambda_interpolate*800 + (1-lambda_interpolate)*200)*(x^2+y^2+z^2)")
    force.addGlobalParameter("lambda_interpolate", 1.0)
    for i in range(2):
        system.addParticle(10.0)
        force.addParticle(i, [])
    system.addForce(force)
    settings = ProtocolSettings(schedule="equal", n_states=4, n_iterations=200, steps_per_iteration=100, timestep_fs=10.0,
                                collision_rate_per_ps=10.0, temperature_k=300.0, n_switches=0,
                                platform="Reference", minimize=False, check_interval=10)
    comm = mpiplus.get_mpicomm()
    result = run_replica_exchange(system, np.full((2, 3), 0.01) * unit.nanometer, settings, sys.argv[1], progress=False)
    sizes = comm.gather(comm.size, root=0)
    if comm.rank == 0:
        with open(sys.argv[2], "w") as stream:
            json.dump({"size": comm.size, "ranks": len(sizes), "dF": result.delta_f_kt, "ddF": result.d_delta_f_kt}, stream)
    else:
        assert result is None
    """
)


SWITCHING_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, openmm, mpiplus
    from openmm import unit
    from openmm_ani.freeenergy.settings import ProtocolSettings
    from openmm_ani.freeenergy.switching import run_switching

    system = openmm.System()
    r2 = openmm.CustomExternalForce("x^2+y^2+z^2")
    for i in range(2):
        system.addParticle(10.0)
        r2.addParticle(i, [])
    force = openmm.CustomCVForce("0.5*(lambda_interpolate*800 + (1-lambda_interpolate)*200)*r2")
    force.addCollectiveVariable("r2", r2)
    force.addGlobalParameter("lambda_interpolate", 1.0)
    system.addForce(force)
    settings = ProtocolSettings(schedule="equal", n_iterations=0, n_switches=60, switching_steps=50, equilibration_steps=100,
                                steps_between_switches=100, timestep_fs=10.0, collision_rate_per_ps=10.0,
                                temperature_k=300.0, platform="Reference", minimize=False, check_interval=20, seed=3)
    comm = mpiplus.get_mpicomm()
    store = sys.argv[1]
    result = run_switching(system, np.full((2, 3), 0.01) * unit.nanometer, settings, progress=False, store=store)
    if comm.rank == 0:
        with open(sys.argv[2], "w") as stream:
            json.dump({"size": comm.size, "forward": result.forward_work, "reverse": result.reverse_work,
                       "dF": result.bar_delta_f_kt, "ddF": result.bar_d_delta_f_kt}, stream)
    else:
        assert result is None
    """
)


def mpirun() -> str:
    candidate = os.path.join(os.path.dirname(sys.executable), "mpirun")
    return candidate if os.path.exists(candidate) else (shutil.which("mpirun") or "")


def test_replica_exchange_on_two_mpi_ranks(tmp_path):
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install mpi4py mpich)")
    launcher = mpirun()
    if not launcher:
        pytest.skip("no mpirun on PATH (pip install mpich provides one)")
    script = tmp_path / "re_mpi.py"
    script.write_text(SCRIPT)
    out = tmp_path / "result.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [launcher, "-n", "2", sys.executable, str(script), str(tmp_path / "re.nc"), str(out)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["size"] == 2 and result["ranks"] == 2
    exact = 3 * math.log(4.0)
    assert abs(result["dF"] - exact) < 2 * result["ddF"], (result, exact)


def test_switching_on_two_mpi_ranks(tmp_path):
    """Switches are spread over the ranks (each rank keeps its own end-state chains) and gathered on rank 0."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install mpi4py mpich)")
    launcher = mpirun()
    if not launcher:
        pytest.skip("no mpirun on PATH (pip install mpich provides one)")
    script = tmp_path / "switch_mpi.py"
    script.write_text(SWITCHING_SCRIPT)
    out = tmp_path / "result.json"
    store = tmp_path / "switching.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run([launcher, "-n", "2", sys.executable, str(script), str(store), str(out)],
                               capture_output=True, text=True, timeout=240, env=env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["size"] == 2 and len(result["forward"]) == len(result["reverse"]) == 60
    # both ranks ran switches: each kept its own chains, and no work value appears twice
    for rank in (0, 1):
        for direction in ("forward", "reverse"):
            assert (tmp_path / f"switching.json.{direction}.rank{rank}.xml").exists()
    assert len(set(result["forward"])) == 60
    stored = json.loads(store.read_text())
    assert stored["forward_work"] == result["forward"]
    exact = 3 * math.log(4.0)
    assert abs(result["dF"] - exact) < 2 * result["ddF"], (result["dF"], result["ddF"], exact)
