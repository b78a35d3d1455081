"""``openmm-ani benchmark``: MD speed of reference systems next to openmm-ml, in one run."""

import argparse
import sys
from typing import Any

from .common import non_negative_int, positive_int


def register(subparsers: Any) -> None:
    """Add the ``benchmark`` subcommand."""
    bench = subparsers.add_parser("benchmark", help="ms/step and ns/day of reference systems")
    bench.add_argument("--cases", nargs="+", default=None,
                       help="subset of: pxylene alanine-water waterbox (default all)")
    bench.add_argument("--steps", type=positive_int, default=200, help="timed steps per case (default 200)")
    bench.add_argument("--threads", type=non_negative_int, default=0, help="default-thread run uses this many (0: all cores)")
    bench.add_argument("--no-openmmml", action="store_true", help="skip the openmm-ml comparison")
    bench.add_argument("--precision", choices=["single", "double"], default="single")
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run :func:`openmm_ani.benchmark.run_benchmarks`."""
    from ..benchmark import run_benchmarks

    return run_benchmarks(
        cases=args.cases, steps=args.steps, threads=args.threads, openmmml=not args.no_openmmml,
        precision=args.precision, out=sys.stdout,
    )
