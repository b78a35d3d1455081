"""Inputs of MD and rescoring jobs: structures and trajectories, atom selections, MM systems.

Everything here is library code used by the command line (``openmm-ani energy``, ``simulate``,
``export``, ``fe-correct``) and importable on its own. Errors are ``ValueError`` or
``FileNotFoundError`` with one line naming the file, option or atoms.

Files are checked as they are read: a DCD trajectory whose header lists more frames than the
file holds (a run killed while writing, a partial copy) is refused instead of being read in
part, and a PDB file whose atoms lack the element column is refused where mdtraj and OpenMM
would infer different elements from the atom names (`` CL1``: carbon for one, chlorine for the
other). :func:`check_positions` refuses non-finite coordinates and atoms at the same position.
"""

import contextlib
import os
import re
import struct
import sys
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Sequence

from ..interrupts import import_deferring_interrupts

if TYPE_CHECKING:  # pragma: no cover - typing only
    import openmm
    import openmm.app

#: Implicit-solvent models accepted for AMBER prmtop inputs (``openmm.app`` names).
IMPLICIT_SOLVENTS = ("HCT", "OBC1", "OBC2", "GBn", "GBn2")

#: Formats that hold coordinates only: mdtraj needs a topology file beside them.
COORDINATE_ONLY_FORMATS = (".dcd", ".xtc", ".trr", ".nc", ".ncdf", ".netcdf", ".crd", ".mdcrd", ".inpcrd", ".rst7",
                           ".restrt", ".binpos", ".dtr", ".lammpstrj", ".xyz")

#: Direct-space cutoff of the PME MM systems built here, nm.
PME_CUTOFF_NM = 1.0

#: Two atoms closer than this (nm) are "at the same position": 0.001 Å, the resolution of a PDB
#: file, far below any real interatomic distance (a duplicated atom, or a coordinate typo).
MIN_SEPARATION_NM = 1e-4


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
    for name in (path, topology):
        if name is not None and os.path.getsize(name) == 0:
            raise ValueError(f"{name} is empty")
    extension = os.path.splitext(path)[1].lower()
    if topology is None and extension in COORDINATE_ONLY_FORMATS:
        raise ValueError(f"{path}: a {extension} file holds coordinates only; give its topology with --top "
                         "(a PDB, prmtop, psf, ... of the same atoms)")
    mdtraj = import_deferring_interrupts("mdtraj")  # extension modules: a Ctrl-C waits for the import

    try:
        with _quiet_stdout(path.lower().endswith(".dcd")):
            if topology is None:
                traj = mdtraj.load(path)
            elif path.lower().endswith(".crd") and topology.lower().endswith((".prmtop", ".parm7")):
                # Amber's .crd is usually a restart/inpcrd file, which mdtraj reads as mdcrd by extension
                traj = mdtraj.load_restrt(path, top=topology)
            else:
                traj = mdtraj.load(path, top=topology)
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, struct.error) as error:
        with_top = f" with topology {topology}" if topology else ""
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read {path}{with_top}: {first[:300]}") from None
    if traj.n_frames == 0 or traj.n_atoms == 0:
        raise ValueError(f"{path} holds no {'frames' if traj.n_atoms else 'atoms'}")
    if path.lower().endswith(".dcd"):
        check_dcd_complete(path, traj.n_frames)
    for pdb in (path, topology):
        if pdb is not None and pdb.lower().endswith((".pdb", ".ent")):
            check_pdb_elements(pdb, traj.topology)
    return traj


@contextlib.contextmanager
def _quiet_stdout(active: bool) -> Iterator[None]:
    """Silence what C code prints on file descriptor 1 (mdtraj's DCD plugin chatters there)."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def check_dcd_complete(path: str, frames_read: int) -> None:
    """Refuse a DCD file that holds fewer complete frames than its header lists.

    Parameters
    ----------
    path
        The DCD file (CHARMM layout, as OpenMM and mdtraj write it, either byte order).
    frames_read
        Frames mdtraj read from it.

    Raises
    ------
    ValueError
        If the header's frame count exceeds the frames read, or the file size does not match
        the header (a frame cut off part way), naming the file and both counts.
    """
    with open(path, "rb") as handle:
        head = handle.read(100)
        size = os.fstat(handle.fileno()).st_size
    order = next((o for o in ("<", ">") if len(head) >= 100 and struct.unpack(o + "i", head[:4])[0] == 84), None)
    if order is None or head[4:8] != b"CORD":
        return  # not the CHARMM layout checked here; mdtraj has read it
    listed, fixed, has_box = (struct.unpack(order + "i", head[k:k + 4])[0] for k in (8, 40, 48))
    if listed > frames_read:
        raise ValueError(f"{path} is truncated: its header lists {listed} frames but only {frames_read} are complete")
    with open(path, "rb") as handle:
        handle.seek(92)
        title_bytes = struct.unpack(order + "i", handle.read(4))[0]
        handle.seek(92 + 4 + title_bytes + 4 + 4)
        atoms = struct.unpack(order + "i", handle.read(4))[0]
    if fixed or listed <= 0:
        return  # fixed-atom files and files that do not keep the count: the frame count above is all we check
    header = 92 + 4 + title_bytes + 4 + 12
    frame = (56 if has_box else 0) + 3 * (8 + 4 * atoms)
    if size != header + listed * frame:
        complete = max(0, (size - header) // frame)
        raise ValueError(
            f"{path} is damaged: {size} bytes, but a header and {listed} frames of {atoms} atoms take "
            f"{header + listed * frame} bytes ({complete} complete frames)"
        )


def check_pdb_elements(path: str, topology: Any) -> None:
    """Refuse a PDB file whose atoms, lacking the element column, mdtraj and OpenMM read as different elements.

    Parameters
    ----------
    path
        The PDB file.
    topology
        mdtraj's topology of it.

    Raises
    ------
    ValueError
        Naming the atoms (index, residue, name) and both readings, and how to fix the file.
    """
    from mdtraj.core import element as elements

    missing, unknown = False, []
    with open(path, errors="replace") as handle:
        records = [line for line in handle if line.startswith(("ATOM  ", "HETATM"))]
    for k, line in enumerate(records):
        symbol = line[76:78].strip()
        if not symbol:
            missing = True
        elif not _is_element(elements, symbol):
            unknown.append(f"{k} ({line[17:20].strip()}:{line[12:16].strip()}: {symbol!r})")
    if unknown:
        raise ValueError(f"{path}: unknown element symbols in columns 77-78 of atoms {', '.join(unknown[:10])}")
    if not missing:
        return
    from openmm import app

    try:
        theirs = [atom.element for atom in app.PDBFile(path).topology.atoms()]
    except Exception as error:  # OpenMM's reader raises several types; a file it cannot read is refused by name
        raise ValueError(f"cannot read {path} with OpenMM to check its elements: {error}") from None
    ours = [atom.element for atom in topology.atoms]
    if len(theirs) != len(ours):
        raise ValueError(f"{path}: OpenMM reads {len(theirs)} atoms, mdtraj {len(ours)}")
    differ = []
    for k, (atom, mine, other) in enumerate(zip(topology.atoms, ours, theirs)):
        a = None if mine is None else mine.symbol
        b = None if other is None else other.symbol
        if a != b:
            differ.append(f"{k} ({atom.residue.name}:{atom.name}: {a} or {b})")
    if differ:
        shown = ", ".join(differ[:10]) + (f" and {len(differ) - 10} more" if len(differ) > 10 else "")
        raise ValueError(
            f"{path}: the element of atoms {shown} is ambiguous without the element column; "
            "write the element symbols in columns 77-78"
        )


def _is_element(elements: Any, symbol: str) -> bool:
    try:
        elements.get_by_symbol(symbol)
    except KeyError:
        return False
    return True


def check_positions(xyz: Any, atoms: Optional[Sequence[int]] = None, where: str = "") -> None:
    """Refuse non-finite coordinates and atoms at the same position.

    Parameters
    ----------
    xyz
        ``[N, 3]`` positions of all atoms, nm.
    atoms
        The atoms to check (``None``: all); indices in messages are indices into ``xyz``.
    where
        Prefix of the message (file and frame).

    Raises
    ------
    ValueError
        Naming the atoms whose coordinates are NaN or infinite, or the first pairs of atoms
        closer than :data:`MIN_SEPARATION_NM` (0.001 Å).
    """
    import numpy as np
    from scipy.spatial import cKDTree

    x = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    index = np.arange(len(x)) if atoms is None else np.asarray(list(atoms), dtype=np.int64)
    sub = x[index]
    prefix = f"{where}: " if where else ""
    bad = index[~np.isfinite(sub).all(axis=1)]
    if bad.size:
        raise ValueError(f"{prefix}coordinates of atoms {bad.tolist()[:20]} are NaN or infinite")
    pairs = sorted((int(index[i]), int(index[j])) for i, j in cKDTree(sub).query_pairs(MIN_SEPARATION_NM))
    if pairs:
        shown = ", ".join(f"{i} and {j}" for i, j in sorted(tuple(sorted(p)) for p in pairs)[:5])
        more = f" ({len(pairs)} pairs)" if len(pairs) > 5 else ""
        raise ValueError(f"{prefix}atoms {shown} are at the same position{more} (closer than 0.001 Å)")


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
    except Exception as error:  # mdtraj's parser raises several types, with messages of thousands of characters
        raise ValueError(f"bad atom selection {selection!r}: {_selection_problem(error)}") from None
    if not atoms:
        raise ValueError(f"atom selection {selection!r} matches no atoms")
    return atoms


def _selection_problem(error: BaseException) -> str:
    """A short account of an mdtraj selection error: where the parser stopped, or the message's first line."""
    text = str(error).strip()
    where = re.search(r"\(at char (\d+)\)", text)
    if where:
        return f"invalid syntax at character {int(where.group(1)) + 1} (see mdtraj's atom selection language)"
    first = text.splitlines()[0] if text else type(error).__name__
    return first if len(first) <= 120 else "invalid syntax (see mdtraj's atom selection language)"


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
