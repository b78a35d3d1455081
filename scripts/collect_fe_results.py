#!/usr/bin/env python
"""Copy the small result files of an ``fe-correct`` output folder into the repository.

``python scripts/collect_fe_results.py RUN_DIR DEST`` copies what a reader and
``tests/examples/test_committed_fe_results.py`` check — ``results.json``, ``settings.json``,
``summary.json`` and, per leg, ``timing.json``, ``schedule.json``, ``switching.json`` (the work values)
and the plots — and leaves out the trajectories and checkpoints (``*.nc``, ``*.xml``), which are
tens of MB per leg.
"""

import argparse
import os
import shutil

#: Files of the output folder itself.
TOP_FILES = ("results.json", "settings.json", "summary.json")
#: Files of each leg's folder.
LEG_FILES = ("timing.json", "schedule.json", "switching.json", "overlap.png", "convergence.png", "work.png",
             "schedule.png")
#: The legs of a correction.
LEGS = ("complex", "solvent")


def collect(run_dir: str, dest: str) -> list:
    """Copy the files that exist; returns the copied paths relative to ``dest``."""
    copied = []
    for leg in ("",) + LEGS:
        names = TOP_FILES if not leg else LEG_FILES
        os.makedirs(os.path.join(dest, leg), exist_ok=True)
        for name in names:
            source = os.path.join(run_dir, leg, name)
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(dest, leg, name))
                copied.append(os.path.join(leg, name))
    if "results.json" not in copied:
        raise SystemExit(f"{run_dir} has no results.json: not a finished fe-correct output folder")
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("dest")
    args = parser.parse_args()
    for path in collect(args.run_dir, args.dest):
        print(os.path.join(args.dest, path))


if __name__ == "__main__":
    main()
