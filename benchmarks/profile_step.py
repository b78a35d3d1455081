#!/usr/bin/env python
"""Instruction counts of MD steps (callgrind): where an ML/MM step spends its work beyond MM alone.

Timings on the shared 2-core machine swing by ±50 %; callgrind's instruction counts and its cache
simulation repeat exactly. This driver builds one engine of a benchmark case
(:mod:`openmm_ani.benchmark.systems`), warms it up without instrumentation, and then has callgrind count ``--steps`` steps of
``LangevinMiddleIntegrator`` (0.5 fs, CPU platform, one thread) in all threads: a tiny C helper,
compiled here from valgrind's ``callgrind.h``, starts the instrumentation, runs one step to warm
the simulated caches, zeroes the counters, and dumps them after the counted steps. Run it under
valgrind:

    valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes --callgrind-out-file=out/cg/alanine-mm.cg \\
        .venv/bin/python benchmarks/profile_step.py alanine-water "MM only" --steps 5
    callgrind_annotate --inclusive=yes out/cg/alanine-mm.cg.1 | head -40     # the dump of the counted steps

``--plain`` runs the same steps without valgrind and prints ms/step (for a quick check).
Engines: ``MM only`` and ``openmm-ani`` of ``alanine-water``/``t4-mlmm``; ``openmm-ani`` of the
pure cases (``pxylene`` ...).
"""

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time

import torch
import openmm
from openmm import unit

from openmm_ani.benchmark.systems import CASES, build_case

TIMESTEP_FS = 0.5
WARMUP_STEPS = 5

#: The client requests of valgrind's callgrind.h, as functions ctypes can call (no-ops outside valgrind).
CALLGRIND_HELPER = r"""
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
void cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


def callgrind_helper() -> ctypes.CDLL:
    """The compiled client-request helper (gcc and valgrind's headers are needed)."""
    folder = tempfile.mkdtemp(prefix="callgrind-helper-")
    source, library = os.path.join(folder, "helper.c"), os.path.join(folder, "helper.so")
    with open(source, "w") as stream:
        stream.write(CALLGRIND_HELPER)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", library, source], check=True)
    return ctypes.CDLL(library)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=CASES)
    parser.add_argument("engine", choices=["MM only", "openmm-ani"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--plain", action="store_true", help="time the steps instead (no valgrind)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    case = build_case(args.case, with_peer=False)
    engines = case.engines("single", with_peer=False)
    if args.engine not in engines:
        parser.error(f"{args.case} has no engine {args.engine!r} (it has {', '.join(engines)})")
    system = engines[args.engine]()
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, TIMESTEP_FS * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    box = case.topology.getPeriodicBoxVectors()
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(case.positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    # Warm-up through getState (not collected: callgrind collects inside step() only): TorchScript's
    # profiling executor optimises the model during its first calls.
    for _ in range(WARMUP_STEPS):
        context.getState(getEnergy=True, getForces=True)
    if args.plain:
        start = time.perf_counter()
        integrator.step(args.steps)
        context.getState(getEnergy=True)
        sys.stdout.write(f"{args.case} {args.engine}: {1000 * (time.perf_counter() - start) / args.steps:.2f} ms/step\n")
        return 0
    helper = callgrind_helper()
    helper.cg_start()
    integrator.step(1)  # warms the simulated caches
    helper.cg_zero()
    integrator.step(args.steps)
    helper.cg_dump(f"{args.case} {args.engine} {args.steps} steps".encode())
    helper.cg_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
