"""ms/step of fe-correct's lambda-window MD: the interpolating System of T4 lysozyme L99A + p-xylene.

Runs Langevin MD (1 fs, CPU platform) at lambda = 0.5 with the System the workflow builds, and
with the MM System alone, for the solvent leg (p-xylene in OBC2 GB, 18 atoms) and the complex
leg (2621 atoms; OBC2 GB with a 1.5 nm cutoff, or NoCutoff with ``--nocutoff``).

The same file runs under the current code (ANI in openmm-torch's C++ ``TorchForce`` inside a
``CustomCVForce``) and under the old commit e7d8654 (ANI as an ``openmm.PythonForce`` callback,
``backend="python"``; needs OpenMM >= 8.6 for ``PythonForce.setParticles``): run it from a
worktree of that commit with OpenMM 8.6.1 first on ``PYTHONPATH``, alternating with the current
code, and compare the printed lines (the MM-only figure normalises the two OpenMM versions)::

    python benchmarks/measure_fe_md_speed.py                       # current code
    git worktree add /tmp/old e7d8654 && pip install --target /tmp/omm86 --no-deps openmm==8.6.1
    (cd /tmp/old && PYTHONPATH=/tmp/omm86:/tmp/old python /path/to/benchmarks/measure_fe_md_speed.py)

Usage: python benchmarks/measure_fe_md_speed.py [--steps N] [--threads T] [--nocutoff]
"""

import argparse
import os
import time

import torch  # noqa: F401  (before openmmtorch)
import openmm
import openmmtools
from openmm import app, unit

DATA = os.path.join(os.path.dirname(openmmtools.__file__), "data", "T4-lysozyme-L99A-implicit")


def mixed(topology, system, ligand):  # type: ignore[no-untyped-def]
    """The workflow's interpolating System, under whichever code version is importable."""
    try:
        from openmm_ani.openmm import ANIPotential  # current layout: TorchForce in a CustomCVForce

        return ANIPotential("ani1ccx", precision="single").createMixedSystem(topology, system, ligand, interpolate=True), "TorchForce"
    except ImportError:
        from openmm_ani import ANIPotential
        from openmm_ani.mixed import create_mixed_system  # e7d8654: the workflow's PythonForce backend

        potential = ANIPotential("ani1ccx", precision="single")
        return create_mixed_system(potential, topology, system, ligand, interpolate=True, backend="python"), "PythonForce"


def ms_per_step(system, positions, steps: int, threads: str) -> float:  # type: ignore[no-untyped-def]
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": threads})
    context.setPositions(positions)
    if "lambda_interpolate" in context.getParameters():
        context.setParameter("lambda_interpolate", 0.5)
    integrator.step(20)  # warm-up (TorchScript profiling runs)
    start = time.perf_counter()
    integrator.step(steps)
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--nocutoff", action="store_true", help="complex with NoCutoff GB (~110 ms/step MM on 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for leg, prmtop_file, crd_file in (("solvent", "ligand.prmtop", "ligand-minimized.crd"), ("complex", "complex.prmtop", "complex-minimized.crd")):
        prmtop = app.AmberPrmtopFile(os.path.join(DATA, prmtop_file))
        positions = app.AmberInpcrdFile(os.path.join(DATA, crd_file)).getPositions(asNumpy=True)
        cutoff = leg == "complex" and not args.nocutoff
        system = prmtop.createSystem(nonbondedMethod=app.CutoffNonPeriodic if cutoff else app.NoCutoff,
                                     nonbondedCutoff=1.5 * unit.nanometer, constraints=app.HBonds, implicitSolvent=app.OBC2)
        ligand = [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
        lam, backend = mixed(prmtop.topology, system, ligand)
        mm = ms_per_step(system, positions, args.steps, args.threads)
        ml = ms_per_step(lam, positions, args.steps, args.threads)
        print(f"{leg:8s} openmm {openmm.__version__:6s} {backend:11s} threads {args.threads}: lambda-window MD {ml:7.2f} ms/step, "
              f"MM alone {mm:7.2f} ms/step, ANI + interpolation {ml - mm:6.2f} ms/step", flush=True)


if __name__ == "__main__":
    main()
