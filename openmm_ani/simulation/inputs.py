"""Inputs of MD and rescoring jobs: structures and trajectories, atom selections, MM systems.

Everything here is library code used by the command line (``openmm-ani energy``, ``simulate``,
``export``, ``fe-correct``) and importable on its own. Errors are ``ValueError`` or
``FileNotFoundError`` with one line naming the file, option or atoms.
"""

import os
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover - typing only
    import openmm
    import openmm.app

#: Implicit-solvent models accepted for AMBER prmtop inputs (``openmm.app`` names).
IMPLICIT_SOLVENTS = ("HCT", "OBC1", "OBC2", "GBn", "GBn2")

#: Direct-space cutoff of the PME MM systems built here, nm.
PME_CUTOFF_NM = 1.0


def require_file(path: str, what: str = "input file") -> str:
    """``path`` if it is an existing file, else ``FileNotFoundError`` naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def load_structure(path: str, topology: Optional[str] = None) -> Any:
    """Load a structure or trajectory with mdtraj.

    Parameters
    ----------
    path
        PDB, mol2, inpcrd/rst7 (with ``topology``), or any trajectory format mdtraj reads.
    topology
        Topology file (prmtop, PDB, ...) for formats without one.

    Returns
    -------
    mdtraj.Trajectory
        Positions in nm, unit cells in nm.

    Raises
    ------
    FileNotFoundError
        For missing files.
    ValueError
        For unreadable files (naming them).
    """
    require_file(path)
    if topology is not None:
        require_file(topology, "topology file")
    import mdtraj

    try:
        if topology is None:
            return mdtraj.load(path)
        if path.lower().endswith(".crd") and topology.lower().endswith((".prmtop", ".parm7")):
            # Amber's .crd is usually a restart/inpcrd file, which mdtraj reads as mdcrd by extension
            return mdtraj.load_restrt(path, top=topology)
        return mdtraj.load(path, top=topology)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        with_top = f" with topology {topology}" if topology else ""
        raise ValueError(f"cannot read {path}{with_top}: {error}") from None


def select_atoms(traj: Any, selection: Optional[str]) -> Optional[List[int]]:
    """Atom indices of an mdtraj selection (``None`` when ``selection`` is ``None``).

    Raises
    ------
    ValueError
        For invalid selection syntax or a selection that matches nothing.
    """
    if selection is None:
        return None
    try:
        atoms = [int(i) for i in traj.topology.select(selection)]
    except Exception as error:  # mdtraj's parser raises several types, with long messages
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"bad atom selection {selection!r}: {first_line[:200]}") from None
    if not atoms:
        raise ValueError(f"atom selection {selection!r} matches no atoms")
    return atoms


def atomic_numbers_of(traj: Any, atoms: Optional[Sequence[int]]) -> List[int]:
    """Atomic numbers (0 for atoms without element) of ``atoms`` (all when ``None``)."""
    indices = range(traj.n_atoms) if atoms is None else atoms
    result = []
    for i in indices:
        element = traj.topology.atom(i).element
        result.append(0 if element is None else int(element.number))
    return result


def create_mm_system(
    topology: "openmm.app.Topology",
    prmtop: Optional[str] = None,
    forcefield: Optional[Sequence[str]] = None,
    implicit_solvent: Optional[str] = None,
) -> "openmm.System":
    """The MM System of a topology, from an AMBER prmtop or OpenMM force-field XML files.

    Periodic topologies get PME with a :data:`PME_CUTOFF_NM` cutoff, others no cutoff; bonds
    to hydrogen are constrained.

    Parameters
    ----------
    topology
        The topology (its box decides the periodic treatment).
    prmtop
        AMBER prmtop file (takes precedence over ``forcefield``).
    forcefield
        OpenMM force-field XML files.
    implicit_solvent
        One of :data:`IMPLICIT_SOLVENTS`, for a non-periodic prmtop.

    Raises
    ------
    ValueError
        Neither input given, an unknown implicit solvent, or implicit solvent with a box.
    """
    from openmm import app, unit

    periodic = topology.getPeriodicBoxVectors() is not None
    method = app.PME if periodic else app.NoCutoff
    cutoff = {"nonbondedCutoff": PME_CUTOFF_NM * unit.nanometer} if periodic else {}
    if implicit_solvent is not None:
        if implicit_solvent not in IMPLICIT_SOLVENTS:
            raise ValueError(f"unknown implicit solvent {implicit_solvent!r}; use one of {', '.join(IMPLICIT_SOLVENTS)}")
        if periodic:
            raise ValueError(f"implicit solvent {implicit_solvent} given for a periodic system (it has box vectors)")
    if prmtop is not None:
        solvent = None if implicit_solvent is None else getattr(app, implicit_solvent)
        amber = app.AmberPrmtopFile(require_file(prmtop, "prmtop file"))
        if amber.topology.getNumAtoms() != topology.getNumAtoms():
            raise ValueError(f"{prmtop} has {amber.topology.getNumAtoms()} atoms but the structure has {topology.getNumAtoms()}")
        return amber.createSystem(nonbondedMethod=method, constraints=app.HBonds, implicitSolvent=solvent, **cutoff)
    if not forcefield:
        raise ValueError("an MM force field is needed: give a prmtop file or force-field XML files")
    if implicit_solvent is not None:
        raise ValueError("implicit solvent is supported for prmtop inputs only")
    return app.ForceField(*forcefield).createSystem(topology, nonbondedMethod=method, constraints=app.HBonds, **cutoff)
