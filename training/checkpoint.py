"""Atomic, resumable training checkpoints.

A checkpoint is one ``torch.save`` file written atomically
(:func:`openmm_ani.files.atomic_write`), so a crash leaves either the previous or the new
checkpoint, never a torn one. It holds everything needed to continue a run exactly:
model and best-model parameters, optimiser and scheduler states, the epoch, the history
and the random-number generator states (Python, NumPy, torch CPU and CUDA).
"""

import os
import random
from typing import Any, Dict, Union

import numpy as np
import torch

from openmm_ani.files import PathLike, atomic_write

#: Version of the checkpoint layout.
CHECKPOINT_VERSION = 2


def rng_state() -> Dict[str, Any]:
    """The current states of Python's, NumPy's and torch's generators."""
    state: Dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore generator states saved by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: Dict[str, Any], path: PathLike) -> None:
    """Write ``state`` to ``path`` atomically (its folder is created if needed)."""
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    with atomic_write(path, "wb") as stream:
        torch.save({"version": CHECKPOINT_VERSION, **state}, stream)


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a readable checkpoint of this version (the message names the file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch.load raises many types (pickle, zip, EOF) for a damaged file
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} is not an openmm-ani training checkpoint of version {CHECKPOINT_VERSION}")
    return state
