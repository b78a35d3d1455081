"""Paths shared by the tests: the repository root and the checked-in reference data."""

import os

#: The repository root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: ``tests/data``: reference values made by ``scripts/generate_reference.py``.
DATA_DIR = os.path.join(ROOT, "tests", "data")
#: TorchANI 2.2.4 reference energies, forces and AEVs.
REFERENCE = os.path.join(DATA_DIR, "ani_reference.npz")
