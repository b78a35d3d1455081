"""The benchmark systems: one :class:`Case` per name, for every benchmark of the project.

``openmm-ani benchmark`` (MD speed on the CPU platform), ``benchmarks/bench_core.py`` (the model's
energy + forces against TorchANI 2.9), ``benchmarks/gpu_check.py`` (CUDA parity and speed) and the
other drivers in ``benchmarks/`` all build their systems here, so a name means one system everywhere:

========================  ===========================================================================
``pxylene``               p-xylene (18 atoms), the ligand of openmmtools' T4 lysozyme L99A, vacuum
``alanine``               the alanine dipeptide of openmmtools' explicit system, water removed, vacuum
``alanine-water``         alanine dipeptide by ANI in TIP3P water by MM (PME 0.9 nm, HBonds), 2269 atoms
``t4-mlmm``               T4 lysozyme L99A (Amber, GB-OBC2, cutoff 1.5 nm) with p-xylene by ANI, 2621 atoms
``water-255`` ...         periodic boxes of water (openmmtools ``WaterBox``), pure ANI:
``water-10k``             255, 1053, 2460, 3180 and 10467 atoms
========================  ===========================================================================

Each case has the openmm-ani System builder (per precision), the peer's (openmm-ml 1.7's
``MLPotential("ani1ccx")`` with TorchANI 2.2.4, when installed), the MM System of an ML/MM case,
and :meth:`Case.model_inputs` for the model-level benchmarks (Å, as the model takes them).
All use the ANI-1ccx ensemble.
"""

import contextlib
import importlib
import importlib.util
import io
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..units import NM_TO_ANGSTROM

#: Water box edges (nm) of openmmtools' ``WaterBox`` for each box case (atoms in the name).
WATER_EDGES_NM: Dict[str, float] = {"water-255": 1.4, "water-1k": 2.21, "water-2.5k": 2.92, "water-3k": 3.18,
                                    "water-10k": 4.75}
#: Case names: molecules, ML/MM systems, then the water boxes by size.
CASES: Tuple[str, ...] = ("pxylene", "alanine", "alanine-water", "t4-mlmm", *WATER_EDGES_NM)
#: The cases ``openmm-ani benchmark`` runs by default (the T4 complex and the 2.5k box are the GPU check's).
CPU_CASES: Tuple[str, ...] = ("pxylene", "alanine", "alanine-water", "water-255", "water-1k", "water-3k", "water-10k")
#: Scale of the parity energy tolerance: a periodic box's |E| is about 20 times a molecule's.
BOX_ENERGY_SCALE = 20.0

Builder = Callable[[], Any]


@dataclass
class Case:
    """A benchmark system.

    Attributes
    ----------
    name
        One of :data:`CASES`.
    topology, positions
        OpenMM topology (with the box of a periodic case) and positions (``Quantity``, nm).
    build
        ``build(precision)``: the openmm-ani System (``"single"`` or ``"double"``).
    peer
        The openmm-ml System (``None`` when openmm-ml or TorchANI is not installed).
    mm
        The MM System of an ML/MM case (``None`` for pure ANI).
    ml_atoms
        The ANI atoms of an ML/MM case (``None``: all atoms).
    energy_scale
        Scale of the parity energy tolerance.
    """

    name: str
    topology: Any
    positions: Any
    build: Callable[[str], Any]
    peer: Optional[Builder] = None
    mm: Optional[Builder] = None
    ml_atoms: Optional[List[int]] = None
    energy_scale: float = 1.0

    @property
    def num_atoms(self) -> int:
        return int(self.topology.getNumAtoms())

    def engines(self, precision: str, with_peer: bool = True) -> Dict[str, Builder]:
        """System builders by engine name: ``"MM only"`` (ML/MM cases), ``"openmm-ani"``, ``"openmm-ml"``."""
        builders: Dict[str, Builder] = {}
        if self.mm is not None:
            builders["MM only"] = self.mm
        builders["openmm-ani"] = lambda: self.build(precision)
        if with_peer and self.peer is not None:
            builders["openmm-ml"] = self.peer
        return builders

    def model_inputs(self) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """``(atomic numbers [N], positions [N, 3] Å, cell [3, 3] Å or None)`` of the ANI atoms.

        Periodic positions are wrapped into the cell, as TorchANI expects.
        """
        from openmm import unit

        atoms = list(self.topology.atoms())
        chosen = self.ml_atoms if self.ml_atoms is not None else range(len(atoms))
        z = np.array([atoms[i].element.atomic_number for i in chosen], dtype=np.int64)
        x = np.asarray(self.positions.value_in_unit(unit.nanometer))[list(chosen)] * NM_TO_ANGSTROM
        box = self.topology.getPeriodicBoxVectors()
        if box is None or self.ml_atoms is not None:
            return z, x, None
        cell = np.array([[v.value_in_unit(unit.nanometer) for v in vector] for vector in box]) * NM_TO_ANGSTROM
        fractional = x @ np.linalg.inv(cell)
        return z, (fractional - np.floor(fractional)) @ cell, cell


def openmmtools_data(*parts: str) -> str:
    """Path of a file in openmmtools' data folder (without importing openmmtools)."""
    spec = importlib.util.find_spec("openmmtools")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("openmmtools is not installed: its data files are needed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"openmmtools data file not found: {path}")
    return path


def openmmml_available() -> bool:
    """Whether openmm-ml and TorchANI (its ANI backend) are importable."""
    return importlib.util.find_spec("openmmml") is not None and importlib.util.find_spec("torchani") is not None


def _openmmml() -> Any:
    from ..openmm.openmmtorch import import_openmmtorch

    import_openmmtorch()
    with contextlib.redirect_stdout(io.StringIO()):  # TorchANI prints its resource path
        return importlib.import_module("openmmml")


def _case(name: str, topology: Any, positions: Any, with_peer: bool, mm: Optional[Builder] = None,
          ml_atoms: Optional[List[int]] = None, energy_scale: float = 1.0) -> Case:
    """A pure ANI case (``mm is None``) or a mechanically embedded one."""
    from ..openmm import ANIPotential

    def build(precision: str) -> Any:
        potential = ANIPotential("ani1ccx", precision=precision)
        return potential.createSystem(topology) if mm is None else potential.createMixedSystem(topology, mm(), ml_atoms)

    def peer() -> Any:
        potential = _openmmml().MLPotential("ani1ccx")
        return potential.createSystem(topology) if mm is None else potential.createMixedSystem(topology, mm(), ml_atoms)

    return Case(name, topology, positions, build, peer if with_peer and openmmml_available() else None, mm, ml_atoms,
                energy_scale)


def _alanine_inputs() -> Tuple[Any, Any, Any]:
    from openmm import app

    prmtop = app.AmberPrmtopFile(openmmtools_data("alanine-dipeptide-explicit", "alanine-dipeptide.prmtop"))
    crd = app.AmberInpcrdFile(openmmtools_data("alanine-dipeptide-explicit", "alanine-dipeptide.crd"))
    topology = prmtop.topology
    if crd.boxVectors is not None:
        topology.setPeriodicBoxVectors(crd.boxVectors)
    return prmtop, topology, crd


def build_case(name: str, with_peer: bool = True) -> Case:
    """The case ``name`` (one of :data:`CASES`); ``with_peer``: also the openmm-ml builder, when installed.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    from openmm import app, unit

    if name == "pxylene":
        pdb = app.PDBFile(openmmtools_data("T4-lysozyme-L99A-implicit", "ligand.pdb"))
        return _case(name, pdb.topology, pdb.positions, with_peer)
    if name == "alanine":
        _, topology, crd = _alanine_inputs()
        modeller = app.Modeller(topology, crd.positions)
        modeller.deleteWater()
        modeller.topology.setPeriodicBoxVectors(None)
        return _case(name, modeller.topology, modeller.positions, with_peer)
    if name == "alanine-water":
        prmtop, topology, crd = _alanine_inputs()

        def water_mm() -> Any:
            system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                         constraints=app.HBonds)
            system.setDefaultPeriodicBoxVectors(*crd.boxVectors)
            return system

        solute = [atom.index for atom in topology.atoms() if atom.residue.name not in ("HOH", "WAT")]
        return _case(name, topology, crd.positions, with_peer, water_mm, solute)
    if name == "t4-mlmm":
        complex_prmtop = app.AmberPrmtopFile(openmmtools_data("T4-lysozyme-L99A-implicit", "complex.prmtop"))
        crd = app.AmberInpcrdFile(openmmtools_data("T4-lysozyme-L99A-implicit", "complex.crd"))

        def protein_mm() -> Any:
            return complex_prmtop.createSystem(nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=1.5 * unit.nanometer,
                                               constraints=app.HBonds, implicitSolvent=app.OBC2)

        ligand = [atom.index for atom in complex_prmtop.topology.atoms() if atom.residue.name == "TMP"]
        return _case(name, complex_prmtop.topology, crd.positions, with_peer, protein_mm, ligand)
    if name in WATER_EDGES_NM:
        with contextlib.redirect_stdout(io.StringIO()):  # openmmtools/pymbar print notices on import
            from openmmtools import testsystems
        water = testsystems.WaterBox(box_edge=WATER_EDGES_NM[name] * unit.nanometer)
        return _case(name, water.topology, water.positions, with_peer, energy_scale=BOX_ENERGY_SCALE)
    raise ValueError(f"unknown benchmark case {name!r}; choose from {', '.join(CASES)}")
