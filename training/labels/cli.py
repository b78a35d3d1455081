"""``openmm-ani train labels``: PySCF labels for XYZ/PDB files or the built-in CHNO set (thin over :func:`.generate.generate`)."""

import argparse
import json
import os
import sys
import time
from typing import Any

from openmm_ani.argtypes import non_negative_float, non_negative_int, positive_float, positive_int
from openmm_ani.files import sha256_of

from .generate import MoleculeJob, check_sampling, generate, load_existing
from .structures import builtin_jobs, read_structure


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", help="XYZ or PDB files (default: the built-in CHNO molecules)")
    parser.add_argument("-o", "--output", required=True, help="output HDF5 file (release layout); resumes if present")
    parser.add_argument("--conformers", type=positive_int, default=None,
                        help="ANI-1x MD conformers per input (default: label the given frames as they are)")
    parser.add_argument("--cc", type=non_negative_int, default=0, help="CCSD(T)/cc-pVDZ labels for the first N conformations")
    parser.add_argument("--cbs", type=non_negative_int, default=0, help="cc-pVTZ + DZ/TZ CBS labels for the first N")
    parser.add_argument("--scale", type=positive_float, default=1.0, help="scale the built-in plan's counts")
    parser.add_argument("--seed", type=int, default=2024, help="MD seed")
    parser.add_argument("--temperatures", type=positive_float, nargs="+", default=[300.0, 600.0, 900.0], help="MD K")
    parser.add_argument("--hours", type=non_negative_float, default=None, help="stop (resumably) after this many hours")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_labels(args: argparse.Namespace) -> int:
    """Run the ``labels`` subcommand; returns the exit status."""
    from ..sampling import sample_md

    deadline = None if args.hours is None else time.time() + 3600.0 * args.hours
    sampling = {"method": "BAOAB Langevin MD (0.5 fs, friction 0.01/fs, 200 steps equilibration, snapshot every "
                          "40 steps) on the ANI-1x ensemble (float64), trajectories at the given temperatures "
                          "interleaved",
                "temperatures_K": list(args.temperatures), "seed": args.seed,
                "conformers": args.conformers, "scale": None if args.inputs else args.scale,
                "inputs": [f"{os.path.basename(p)} sha256:{sha256_of(p)}" for p in args.inputs]
                if all(os.path.isfile(p) for p in args.inputs) else None}
    if os.path.exists(args.output):  # before sampling anything: resume only what matches
        check_sampling(args.output, load_existing(args.output)[1], sampling)
    if args.inputs:
        jobs = []
        for i, path in enumerate(args.inputs):
            z, frames = read_structure(path)
            if args.conformers:
                frames = sample_md(z, frames[0], args.conformers, args.temperatures, seed=args.seed + 10 * i)
            name = os.path.splitext(os.path.basename(path))[0]
            jobs.append(MoleculeJob(name, z, frames, min(args.cc, len(frames)), min(args.cbs, args.cc, len(frames))))
    else:
        jobs = builtin_jobs(seed=args.seed, temperatures=args.temperatures, scale=args.scale, existing=args.output)
    meta = generate(args.output, jobs, deadline=deadline, extra_meta={"sampling": sampling},
                    progress=not args.no_progress)
    sys.stdout.write(json.dumps(meta["counts"], indent=1, sort_keys=True) + "\n")
    return 0


def register(train_subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``labels`` subcommand (PySCF ωB97X/6-31G* + CCSD(T) labels) to ``openmm-ani train``."""
    parser = train_subparsers.add_parser(
        "labels",
        help="generate ωB97X/6-31G* and CCSD(T) labels with PySCF",
        description="Label conformations (given XYZ/PDB frames, ANI-1x MD conformers of them, or the built-in "
        "CHNO set) with ωB97X/6-31G* energies+forces and CCSD(T) energies; writes the release layout.",
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_labels)
    return parser
