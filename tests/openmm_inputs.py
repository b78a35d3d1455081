"""Shared inputs of the OpenMM-side tests (issue 3): real structures from openmmtools' data."""

import contextlib
import functools
import importlib.util
import io
import os
from typing import Tuple

import numpy as np
from openmm import app, unit


def openmmtools_data(*parts: str) -> str:
    spec = importlib.util.find_spec("openmmtools")
    assert spec is not None and spec.submodule_search_locations, "openmmtools is a dependency"
    return os.path.join(list(spec.submodule_search_locations)[0], "data", *parts)


#: p-xylene (18 atoms), the ligand of openmmtools' T4 lysozyme L99A complex.
LIGAND_PDB = openmmtools_data("T4-lysozyme-L99A-implicit", "ligand.pdb")
COMPLEX_PRMTOP = openmmtools_data("T4-lysozyme-L99A-implicit", "complex.prmtop")
COMPLEX_CRD = openmmtools_data("T4-lysozyme-L99A-implicit", "complex.crd")


def ligand_pdb() -> app.PDBFile:
    return app.PDBFile(LIGAND_PDB)


@functools.lru_cache(maxsize=None)
def small_waterbox() -> Tuple[app.Topology, np.ndarray, np.ndarray]:
    """openmmtools WaterBox with a 1.1 nm edge (41 waters): (topology, positions nm, box nm [3, 3])."""
    with contextlib.redirect_stdout(io.StringIO()):  # pymbar's import banner
        from openmmtools import testsystems
    water = testsystems.WaterBox(box_edge=1.1 * unit.nanometer)
    positions = np.array(water.positions.value_in_unit(unit.nanometer))
    box = np.array([[v[i].value_in_unit(unit.nanometer) if hasattr(v[i], "unit") else v[i] for i in range(3)]
                    for v in water.topology.getPeriodicBoxVectors()])
    return water.topology, positions, box
