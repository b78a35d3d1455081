"""Shared pytest setup: one torch thread (CI has 2 cores) and the path of the TorchANI reference data."""

import os

import pytest
import torch

torch.set_num_threads(1)

from paths import DATA_DIR


@pytest.fixture(scope="session")
def reference_path() -> str:
    """Path of ``tests/data/ani_reference.npz`` (written by ``scripts/generate_reference.py``)."""
    return os.path.join(DATA_DIR, "ani_reference.npz")
