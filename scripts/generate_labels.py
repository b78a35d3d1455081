#!/usr/bin/env python
"""Generate the shipped CHNO label set: training/resources/chno_labels.h5 (+ chno_labels.json).

Conformations: BAOAB Langevin MD (numpy, eager model) on the bundled ANI-1x ensemble at
300/600/900 K, seed 2024 (+10 per molecule), snapshots every 20 fs after 100 fs.
Labels (PySCF): ωB97X/6-31G*(6d) energies and forces for every conformation, RHF +
CCSD(T)/cc-pVDZ (frozen core) for a subset, cc-pVTZ and a DZ/TZ CBS estimate for the
smallest molecules; see ``openmm_ani.training.labels`` for the exact settings and
``training.labels.BUILTIN_PLAN`` for the counts.

Run single-threaded at low priority; it checkpoints after every conformation and resumes
when started again with the same arguments::

    OMP_NUM_THREADS=1 nice -n 5 python scripts/generate_labels.py [--hours 1.0]
"""

import argparse
import logging
import os
import sys

from openmm_ani.training import labels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=os.path.join(ROOT, "training", "resources", "chno_labels.h5"))
    parser.add_argument("--hours", type=float, default=None, help="stop resumably after this many hours")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the built-in plan (for quick trials)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    sub = argparse.ArgumentParser().add_subparsers()
    labels.register(sub)
    cmd = ["labels", "--output", args.output, "--seed", "2024", "--scale", str(args.scale)]
    if args.hours is not None:
        cmd += ["--hours", str(args.hours)]
    ns = sub._name_parser_map["labels"].parse_args(cmd[1:])
    return labels.run_labels(ns)


if __name__ == "__main__":
    sys.exit(main())
