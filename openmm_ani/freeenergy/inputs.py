"""The two legs of a correction from files: AMBER prmtop + coordinates, or PDB + force field."""

import os
from typing import List, Optional, Sequence

from ..simulation.inputs import create_mm_system, require_file
from .workflow import LegInput


def _parse_atoms(text: str, option: str) -> List[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated integers, got {text!r}") from None


def load_leg(
    name: str,
    prmtop: Optional[str] = None,
    coords: Optional[str] = None,
    pdb: Optional[str] = None,
    forcefield: Optional[Sequence[str]] = None,
    ligand_atoms: Optional[str] = None,
    ligand_resname: Optional[str] = None,
    implicit_solvent: Optional[str] = None,
) -> LegInput:
    """One leg (``"complex"`` or ``"solvent"``) of the correction from its input files.

    Parameters
    ----------
    name
        The leg's name; messages name the options ``--<name>-prmtop`` etc.
    prmtop, coords
        AMBER prmtop and coordinates (inpcrd/rst7); a box in the coordinates makes a PME
        system, otherwise no cutoff (with ``implicit_solvent`` if given).
    pdb, forcefield
        A PDB file and OpenMM force-field XML files, instead of ``prmtop``/``coords``.
    ligand_atoms
        Comma-separated 0-based ligand atom indices.
    ligand_resname
        Residue name of the ligand (used when ``ligand_atoms`` is not given).
    implicit_solvent
        GB model name for a non-periodic prmtop, or ``None``.

    Raises
    ------
    ValueError, FileNotFoundError
        One line naming the option or file.
    """
    from openmm import app

    if (prmtop is None) == (pdb is None):
        raise ValueError(f"give either --{name}-prmtop with --{name}-coords, or --{name}-pdb with --forcefield")
    if prmtop is not None:
        if coords is None:
            raise ValueError(f"--{name}-coords is required with --{name}-prmtop")
        amber = app.AmberPrmtopFile(require_file(prmtop, f"--{name}-prmtop file"))
        inpcrd = app.AmberInpcrdFile(require_file(coords, f"--{name}-coords file"))
        topology, positions, box = amber.topology, inpcrd.getPositions(asNumpy=True), inpcrd.boxVectors
        if topology.getNumAtoms() != len(positions):
            raise ValueError(f"--{name}-prmtop has {topology.getNumAtoms()} atoms but --{name}-coords has {len(positions)}")
        topology.setPeriodicBoxVectors(box)
        system = create_mm_system(topology, prmtop=prmtop, implicit_solvent=None if box is not None else implicit_solvent)
    else:
        if not forcefield:
            raise ValueError(f"--{name}-pdb needs --forcefield XML files")
        structure = app.PDBFile(require_file(pdb, f"--{name}-pdb file"))  # type: ignore[arg-type]
        topology, positions = structure.topology, structure.getPositions(asNumpy=True)
        box = topology.getPeriodicBoxVectors()
        system = create_mm_system(topology, forcefield=forcefield)
    if ligand_atoms is not None:
        ml_atoms = _parse_atoms(ligand_atoms, f"--{name}-ligand-atoms")
    elif ligand_resname is not None:
        ml_atoms = [a.index for a in topology.atoms() if a.residue.name == ligand_resname]
        if not ml_atoms:
            names = sorted({r.name for r in topology.residues()})
            raise ValueError(f"no residue named {ligand_resname!r} in the {name} (residue names: {', '.join(names[:20])})")
    else:
        raise ValueError(f"give --ligand-resname or --{name}-ligand-atoms")
    files = {f"--{name}-{option}": path for option, path in (("prmtop", prmtop), ("coords", coords), ("pdb", pdb)) if path}
    files.update({f"--forcefield {k}": path for k, path in enumerate(forcefield or []) if pdb and os.path.exists(path)})
    return LegInput(name=name, topology=topology, system=system, positions=positions, ml_atoms=ml_atoms, box_vectors=box, files=files)


__all__ = ["load_leg"]
