#!/usr/bin/env python
"""Energy minimisation of ML/MM systems: openmm-ani against MM alone and openmm-ml, in one run.

openmm-ml users report that minimising a mixed ANI system is slow (openmm-ml issue #94: 12.8 min
against 12 s for MM). This driver times ``openmm.LocalEnergyMinimizer.minimize`` (OpenMM's L-BFGS,
default tolerance 10 kJ/mol/nm, no iteration limit) from the same start on the project's ML/MM
benchmark cases (:mod:`openmm_ani.benchmark.systems`): ``alanine-water`` (ANI solute in TIP3P
water, PME) and ``t4-mlmm`` (T4 lysozyme L99A, GB-OBC2, p-xylene by ANI), for the engines

* ``MM only``: the MM System the mixed one is built from;
* ``openmm-ani``: ``ANIPotential("ani1ccx").createMixedSystem`` (single precision);
* ``openmm-ml``: openmm-ml 1.7's ``MLPotential("ani1ccx")`` with TorchANI 2.2.4, when installed.

The engines alternate for ``--rounds`` rounds (each minimisation starts from the file's
coordinates in a new Context, whose creation is not timed). Printed per engine: the range of wall
times, the L-BFGS iterations (counted by a ``MinimizationReporter``, OpenMM 8.1+; an iteration may
take several energy evaluations in its line search, and constrained systems are minimised in rounds
of stiffening constraint restraints), the final energy, and the ratio of medians to MM alone.

    python benchmarks/bench_minimize.py [--cases alanine-water t4-mlmm] [--rounds 2] [--threads 1]
"""

import argparse
import statistics
import sys
import time
from typing import Any, Dict, List, Tuple

import torch  # noqa: F401  (before openmmtorch)
import openmm
from openmm import unit

from openmm_ani.benchmark.systems import build_case, openmmml_available

#: OpenMM's default minimiser tolerance (kJ/mol/nm).
TOLERANCE = 10.0


class CountingReporter(openmm.MinimizationReporter):
    """Counts the minimiser's L-BFGS iterations (OpenMM calls ``report`` once per iteration)."""

    def __init__(self) -> None:
        super().__init__()
        self.iterations = 0

    def report(self, iteration: int, x: Any, grad: Any, args: Dict[str, Any]) -> bool:
        self.iterations += 1
        return False


def minimize(system: Any, case: Any, threads: int) -> Tuple[float, int, float]:
    """``(seconds, iterations, final energy kJ/mol)`` of one minimisation from the case's positions."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": str(threads)})
    box = case.topology.getPeriodicBoxVectors()
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(case.positions)
    context.getState(getEnergy=True)  # the first evaluation loads the TorchScript model: not timed
    reporter = CountingReporter()
    start = time.perf_counter()
    openmm.LocalEnergyMinimizer.minimize(context, TOLERANCE, 0, reporter)
    seconds = time.perf_counter() - start
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    del context
    return seconds, reporter.iterations, energy


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["alanine-water", "t4-mlmm"], choices=["alanine-water", "t4-mlmm"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads and torch threads (default 1)")
    parser.add_argument("--no-openmmml", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with_peer = not args.no_openmmml and openmmml_available()
    print(f"# LocalEnergyMinimizer (tolerance {TOLERANCE} kJ/mol/nm, no iteration limit), CPU platform, "
          f"{args.threads} thread(s), {args.rounds} alternating rounds; ANI-1ccx single precision")
    print("| case | engine | seconds | iterations | s/iteration | final energy kJ/mol | time / MM |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.cases:
        case = build_case(name, with_peer)
        systems = {engine: build() for engine, build in case.engines("single", with_peer).items()}
        runs: Dict[str, List[Tuple[float, int, float]]] = {engine: [] for engine in systems}
        for _ in range(args.rounds):
            for engine, system in systems.items():
                runs[engine].append(minimize(system, case, args.threads))
        mm = statistics.median(r[0] for r in runs["MM only"])
        for engine, results in runs.items():
            seconds = [r[0] for r in results]
            iterations = [r[1] for r in results]
            per = [s / max(i, 1) for s, i in zip(seconds, iterations)]
            print(f"| {name} | {engine} | {min(seconds):.2f}–{max(seconds):.2f} | {min(iterations)}–{max(iterations)} | "
                  f"{1000 * min(per):.1f}–{1000 * max(per):.1f} ms | {results[-1][2]:.1f} | "
                  f"{statistics.median(seconds) / mm:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
