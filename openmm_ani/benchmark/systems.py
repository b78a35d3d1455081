"""The systems of ``openmm-ani benchmark``: real structures, built for each engine.

Each :class:`Case` holds a topology, positions and one System builder per engine: ``openmm-ani``
(:class:`~openmm_ani.openmm.ANIPotential`), ``openmm-ml`` (``openmmml.MLPotential("ani1ccx")``,
TorchANI 2.2.4 as its backend) when installed, and ``MM only`` for the ML/MM case. All use the
ANI-1ccx ensemble.
"""

import contextlib
import importlib
import importlib.util
import io
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

#: Case names, in the order of the issue's table, then the large water boxes.
CASES: Tuple[str, ...] = ("pxylene", "alanine", "alanine-water", "waterbox", "water-1k", "water-3k", "water-10k")
#: Water box edges (nm) for about 1k, 3k and 10k atoms.
WATER_EDGES_NM: Dict[str, float] = {"water-1k": 2.21, "water-3k": 3.18, "water-10k": 4.75}
#: Waters of the small box (255 atoms).
SMALL_BOX_WATERS = 85


@dataclass
class Case:
    """A benchmark system: topology, positions (nm) and a System builder per engine."""

    name: str
    topology: Any
    positions: Any
    builders: Dict[str, Callable[[], Any]]

    @property
    def num_atoms(self) -> int:
        return int(self.topology.getNumAtoms())


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
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module("openmmml")


def _pure(name: str, topology: Any, positions: Any, precision: str, with_openmmml: bool) -> Case:
    from ..openmm import ANIPotential

    builders: Dict[str, Callable[[], Any]] = {
        "openmm-ani": lambda: ANIPotential("ani1ccx", precision=precision).createSystem(topology)}
    if with_openmmml:
        builders["openmm-ml"] = lambda: _openmmml().MLPotential("ani1ccx").createSystem(topology)
    return Case(name, topology, positions, builders)


def _alanine_inputs() -> Tuple[Any, Any, Any]:
    from openmm import app

    prmtop = app.AmberPrmtopFile(openmmtools_data("alanine-dipeptide-explicit", "alanine-dipeptide.prmtop"))
    crd = app.AmberInpcrdFile(openmmtools_data("alanine-dipeptide-explicit", "alanine-dipeptide.crd"))
    topology = prmtop.topology
    if crd.boxVectors is not None:
        topology.setPeriodicBoxVectors(crd.boxVectors)
    return prmtop, topology, crd


def build_case(name: str, precision: str, with_openmmml: bool) -> Case:
    """The case ``name`` (one of :data:`CASES`)."""
    from openmm import app, unit

    from ..openmm import ANIPotential

    if name == "pxylene":  # p-xylene, the ligand of openmmtools' T4 lysozyme L99A complex, in vacuum
        pdb = app.PDBFile(openmmtools_data("T4-lysozyme-L99A-implicit", "ligand.pdb"))
        return _pure(name, pdb.topology, pdb.positions, precision, with_openmmml)
    if name == "alanine":  # the solute of openmmtools' explicit alanine dipeptide, in vacuum
        _, topology, crd = _alanine_inputs()
        modeller = app.Modeller(topology, crd.positions)
        modeller.deleteWater()
        modeller.topology.setPeriodicBoxVectors(None)
        return _pure(name, modeller.topology, modeller.positions, precision, with_openmmml)
    if name == "alanine-water":  # ANI solute in TIP3P water (PME 0.9 nm, HBonds), mechanical embedding
        prmtop, topology, crd = _alanine_inputs()

        def mm_system() -> Any:
            system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                         constraints=app.HBonds)
            if crd.boxVectors is not None:
                system.setDefaultPeriodicBoxVectors(*crd.boxVectors)
            return system

        solute = [atom.index for atom in topology.atoms() if atom.residue.name not in ("HOH", "WAT")]
        builders: Dict[str, Callable[[], Any]] = {
            "MM only": mm_system,
            "openmm-ani": lambda: ANIPotential("ani1ccx", precision=precision).createMixedSystem(
                topology, mm_system(), solute),
        }
        if with_openmmml:
            builders["openmm-ml"] = lambda: _openmmml().MLPotential("ani1ccx").createMixedSystem(
                topology, mm_system(), solute)
        return Case(name, topology, crd.positions, builders)
    if name == "waterbox":  # 85 TIP3P-geometry waters (255 atoms), periodic, pure ANI
        modeller = app.Modeller(app.Topology(), [])
        modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), model="tip3p", numAdded=SMALL_BOX_WATERS,
                            neutralize=False)
        return _pure(name, modeller.topology, modeller.positions, precision, with_openmmml)
    if name in WATER_EDGES_NM:  # openmmtools WaterBox, periodic, pure ANI
        with contextlib.redirect_stdout(io.StringIO()):  # openmmtools/pymbar print notices on import
            from openmmtools import testsystems
        water = testsystems.WaterBox(box_edge=WATER_EDGES_NM[name] * unit.nanometer)
        return _pure(name, water.topology, water.positions, precision, with_openmmml)
    raise ValueError(f"unknown benchmark case {name!r}; choose from {', '.join(CASES)}")
