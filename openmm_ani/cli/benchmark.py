"""``openmm-ani benchmark``: MD speed of reference systems next to openmm-ml, in one run."""

import argparse
import sys
from typing import Any

from ..argtypes import non_negative_int, positive_int

#: :data:`openmm_ani.benchmark.systems.CASES` and ``CPU_CASES``, spelled out so that the CLI parser does not import
#: torch (tests/cli/test_cli.py checks that they agree).
CASES_HELP = ("cases among: pxylene alanine alanine-water t4-mlmm water-255 water-1k water-2.5k water-3k water-10k "
              "(default: pxylene alanine alanine-water water-255 water-1k water-3k water-10k)")


def register(subparsers: Any) -> None:
    """Add the ``benchmark`` subcommand."""
    bench = subparsers.add_parser("benchmark", help="ms/step and ns/day of reference systems")
    bench.add_argument("--cases", nargs="+", default=None,
                       help=CASES_HELP)
    bench.add_argument("--steps", type=positive_int, default=100,
                       help="timed steps per round for systems up to 300 atoms, fewer for larger ones (default 100)")
    bench.add_argument("--rounds", type=positive_int, default=2, help="alternating rounds per engine (default 2)")
    bench.add_argument("--peer-max-atoms", type=positive_int, default=1100,
                       help="largest system given to openmm-ml (TorchANI 2.2.4's periodic search is O(N^2))")
    bench.add_argument("--threads", type=non_negative_int, default=0, help="default-thread run uses this many (0: all cores)")
    bench.add_argument("--no-openmmml", action="store_true", help="skip the openmm-ml comparison")
    bench.add_argument("--precision", choices=["single", "double"], default="single")
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run :func:`openmm_ani.benchmark.run_benchmarks`."""
    from ..benchmark import run_benchmarks

    return run_benchmarks(
        cases=args.cases, steps=args.steps, threads=args.threads, openmmml=not args.no_openmmml,
        precision=args.precision, rounds=args.rounds, peer_max_atoms=args.peer_max_atoms, out=sys.stdout,
    )
