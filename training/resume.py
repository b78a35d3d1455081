"""Resume only what matches: the settings record of a training work directory.

A work directory holds member checkpoints and member model files that depend on everything that
shaped them: the data file (by SHA-256), the label keys, the architecture or source model, the
number of members (it sets the folds), the seed, the optimiser settings and the precision. The
first run writes them to ``<work-dir>/run.json``; a later run into the same directory continues
only when its settings are the same, and otherwise stops with an error listing the differences
and saying how to start afresh. ``max_epochs`` is not part of the record: more epochs extend a
run. The device is not either: a run may continue on another device.
"""

import json
import os
from typing import Any, Dict, List, Mapping

from openmm_ani.files import write_text
from openmm_ani.resume import raise_if_different, read_record, settings_differences

#: The record's file name inside a work directory.
RECORD = "run.json"
#: How to start afresh, as error messages say it.
AFRESH = "--overwrite, or a new --output/--work-dir"


def _leftovers(work_dir: str) -> List[str]:
    """Files of an earlier run in ``work_dir`` (member checkpoints, member models, learning curves)."""
    return sorted(name for name in os.listdir(work_dir) if name.startswith(("member_", "history_")))


def prepare_work_dir(work_dir: str, settings: Dict[str, Any], overwrite: bool, is_main: bool = True) -> None:
    """Check (or start) the settings record of ``work_dir`` before training into it.

    Parameters
    ----------
    work_dir
        The work directory (it exists).
    settings
        The settings that determine the members (JSON values).
    overwrite
        Remove an earlier run's files and record instead of continuing it.
    is_main
        Only the main process of a distributed run writes or removes files.

    Raises
    ------
    ValueError
        If the directory holds a run with other settings (listing them), or member files
        without a record (an earlier version's run).
    """
    path = os.path.join(work_dir, RECORD)
    if overwrite:
        if is_main:
            for name in _leftovers(work_dir) + ([RECORD] if os.path.exists(path) else []):
                os.remove(os.path.join(work_dir, name))
            write_text(path, json.dumps(settings, indent=1, sort_keys=True))
        return
    if os.path.isfile(path):
        stored = read_record(path, f"start afresh with {AFRESH}")
        raise_if_different(settings_differences(stored, settings), f"{work_dir} holds a training run with other settings",
                           f"rerun with the same settings to continue it, or start afresh with {AFRESH}")
        return
    if _leftovers(work_dir):
        raise ValueError(f"{work_dir} holds member files ({', '.join(_leftovers(work_dir)[:3])}...) but no {RECORD} "
                         f"saying how they were made; start afresh with {AFRESH}")
    if is_main:
        write_text(path, json.dumps(settings, indent=1, sort_keys=True))
