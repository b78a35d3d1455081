"""The resumable state of an MD job: an OpenMM checkpoint with what it depends on.

A job state file (``<output>.chk``) holds, written atomically in one file
(:func:`openmm_ani.files.atomic_write`):

* the **settings and input fingerprints** that determine the trajectory (time step, temperature,
  seed, platform, report interval, the SHA-256 of every input file, the model, the ML
  selection...). A run resumes only when they equal the requested ones; otherwise
  :func:`check_resumable` lists the differences (:func:`openmm_ani.resume.settings_differences`);
* the **step** reached and the **size in bytes of every output file** at that step, so that a
  resumed run cuts away anything written after the checkpoint (a frame half-written when the
  process was killed) and continues the files exactly where the checkpoint left them;
* the OpenMM ``Context`` checkpoint (positions, velocities, step count, random-number state).

Layout: the line ``openmm-ani md checkpoint 1``, one line of JSON, then the raw OpenMM
checkpoint bytes.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping

from ..files import PathLike, atomic_write
from ..resume import raise_if_different, settings_differences

#: First line of a job state file (with the layout version).
MAGIC = b"openmm-ani md checkpoint 1\n"


@dataclass
class JobState:
    """What :func:`write_job_state` stores.

    Attributes
    ----------
    step
        MD steps completed.
    settings
        Settings and input fingerprints that determine the trajectory (JSON values).
    outputs
        Size in bytes of each output file at ``step``, by kind (``trajectory``, ``state_data``...).
    frames
        Trajectory frames written up to ``step``.
    checkpoint
        The OpenMM ``Context`` checkpoint.
    """

    step: int
    settings: Dict[str, Any]
    outputs: Dict[str, int] = field(default_factory=dict)
    frames: int = 0
    checkpoint: bytes = b""


def write_job_state(path: PathLike, state: JobState) -> None:
    """Write ``state`` to ``path`` atomically."""
    header = {"step": state.step, "settings": state.settings, "outputs": state.outputs, "frames": state.frames}
    with atomic_write(path, "wb") as stream:
        stream.write(MAGIC)
        stream.write(json.dumps(header, sort_keys=True).encode("utf-8") + b"\n")
        stream.write(state.checkpoint)


def read_job_state(path: PathLike) -> JobState:
    """Read a job state file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a job state file of this layout, or is damaged (naming it).
    """
    name = os.fspath(path)
    with open(name, "rb") as stream:
        data = stream.read()
    if not data.startswith(MAGIC):
        raise ValueError(f"{name} is not an openmm-ani MD checkpoint")
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC):end].decode("utf-8")) if end > 0 else None
        state = JobState(int(header["step"]), dict(header["settings"]), {k: int(v) for k, v in header["outputs"].items()},
                         int(header["frames"]), data[end + 1:])
    except (TypeError, ValueError, KeyError, AttributeError, UnicodeDecodeError) as error:
        raise ValueError(f"{name} is a damaged MD checkpoint ({type(error).__name__}: {error})") from None
    if not state.checkpoint:
        raise ValueError(f"{name} is a damaged MD checkpoint (no OpenMM state)")
    return state


def check_resumable(path: PathLike, stored: Mapping[str, Any], requested: Mapping[str, Any], afresh: str) -> None:
    """Raise ``ValueError`` listing the differences when ``stored`` and ``requested`` settings differ.

    Parameters
    ----------
    path
        The state file (named in the message).
    stored, requested
        The settings of the stored run and of this one (JSON-compatible values).
    afresh
        How to start afresh instead (e.g. ``"--overwrite or a new --output"``).
    """
    raise_if_different(settings_differences(stored, requested),
                       f"{os.fspath(path)} belongs to a run with other settings or inputs",
                       f"rerun with the same ones to continue it, or start afresh with {afresh}")
