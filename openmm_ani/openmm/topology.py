"""ML regions in OpenMM topologies and Systems: atom indices, elements, selection rules.

Every public entry point that takes atom indices (``createForce``, ``createMixedSystem``,
``export``, the reporter, the openmm-ml plugin) checks them here, so a bad selection gives
the same one-line error naming the offending indices wherever it is made.
"""

from numbers import Integral
from collections import Counter
from typing import TYPE_CHECKING, Iterable, List, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover - typing only
    import openmm
    import openmm.app


def check_atom_indices(atoms: Iterable[object], num_particles: Optional[int], what: str = "atom") -> List[int]:
    """Validate a list of particle indices.

    Parameters
    ----------
    atoms
        The indices given by the user (any order).
    num_particles
        Particles in the System or topology (``None``: no upper bound known).
    what
        How the message names the indices (``"ML atom"``, ``"atom"``).

    Returns
    -------
    list of int
        The indices as plain ints, in the order given.

    Raises
    ------
    ValueError
        For an empty list, non-integers (booleans and ``1.5`` included), negative or
        out-of-range indices, and repeated indices, each naming the indices.
    """
    indices: List[int] = []
    for value in atoms:
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise ValueError(f"{what} index {value!r} is not an integer")
        indices.append(int(value))
    if not indices:
        raise ValueError(f"the {what} selection is empty")
    limit = f" for {num_particles} particles" if num_particles is not None else ""
    bad = sorted({i for i in indices if i < 0 or (num_particles is not None and i >= num_particles)})
    if bad:
        raise ValueError(f"{what} indices {bad} are out of range{limit}")
    repeated = sorted(i for i, count in Counter(indices).items() if count > 1)
    if repeated:
        raise ValueError(f"{what} indices {repeated} are given more than once")
    return indices


def topology_atomic_numbers(topology: "openmm.app.Topology", atoms: Optional[Sequence[int]] = None) -> List[int]:
    """Atomic numbers of the atoms of an OpenMM topology.

    Parameters
    ----------
    topology
        The topology.
    atoms
        Indices of the atoms wanted (any order); ``None`` for all atoms in order.

    Returns
    -------
    list of int
        Atomic numbers, in the order of ``atoms``.

    Raises
    ------
    ValueError
        If an atom has no element (virtual site, extra particle), or an index is out of range,
        repeated or not an integer.
    """
    all_atoms = list(topology.atoms())
    indices = list(range(len(all_atoms))) if atoms is None else check_atom_indices(atoms, len(all_atoms))
    numbers: List[int] = []
    missing: List[str] = []
    for i in indices:
        atom = all_atoms[i]
        if atom.element is None:
            missing.append(f"{i} ({atom.residue.name}:{atom.name})")
            numbers.append(0)
        else:
            numbers.append(int(atom.element.atomic_number))
    if missing:
        raise ValueError("atoms without an element cannot be ANI atoms: " + ", ".join(missing))
    return numbers


def validate_ml_atoms(topology: "openmm.app.Topology", system: "openmm.System", ml_atoms: Iterable[int]) -> List[int]:
    """Check an ML atom selection against a topology and System.

    Parameters
    ----------
    topology
        The topology of ``system``.
    system
        The MM System.
    ml_atoms
        Indices of the ML atoms (any order).

    Returns
    -------
    list of int
        The indices, in the order given.

    Raises
    ------
    ValueError
        Topology/System size mismatch; an empty selection; indices that are not integers,
        out of range or repeated; virtual sites or element-less particles in the selection;
        virtual sites outside the selection that are defined by ML atoms.
    """
    n_atoms = topology.getNumAtoms()
    n_particles = system.getNumParticles()
    if n_atoms != n_particles:
        raise ValueError(f"the topology has {n_atoms} atoms but the System has {n_particles} particles")
    atoms = check_atom_indices(ml_atoms, n_particles, "ML atom")
    topology_atoms = list(topology.atoms())
    virtual = [i for i in atoms if system.isVirtualSite(i)]
    no_element = [i for i in atoms if topology_atoms[i].element is None and i not in virtual]
    if virtual or no_element:
        names = ", ".join(f"{i} ({topology_atoms[i].residue.name}:{topology_atoms[i].name})" for i in virtual + no_element)
        raise ValueError(f"virtual sites and extra particles cannot be ML atoms: {names}")
    selected = set(atoms)
    for i in range(n_particles):
        if i in selected or not system.isVirtualSite(i):
            continue
        site = system.getVirtualSite(i)
        parents = {site.getParticle(k) for k in range(site.getNumParticles())}
        if parents & selected:
            raise ValueError(
                f"virtual site {i} is defined by ML atoms {sorted(parents & selected)}: mixed systems with "
                "virtual sites attached to the ML region are not supported"
            )
    return atoms


def check_elements(topology: "openmm.app.Topology", ml_atoms: Sequence[int], elements: Sequence[str]) -> List[int]:
    """Atomic numbers of the ML atoms, checked against the elements a model supports.

    Parameters
    ----------
    topology
        The topology.
    ml_atoms
        Validated ML atom indices.
    elements
        Element symbols supported by the model.

    Returns
    -------
    list of int
        Atomic numbers in the order of ``ml_atoms``.

    Raises
    ------
    ValueError
        Naming every ML atom whose element the model does not support.
    """
    topology_atoms = list(topology.atoms())
    numbers: List[int] = []
    bad: List[str] = []
    for i in ml_atoms:
        element = topology_atoms[i].element
        numbers.append(int(element.atomic_number))
        if element.symbol not in elements:
            atom = topology_atoms[i]
            bad.append(f"{i} ({atom.residue.name}:{atom.name}, {element.symbol})")
    if bad:
        raise ValueError(
            f"ML atoms with elements the model does not support (it has {', '.join(elements)}): " + ", ".join(bad)
        )
    return numbers
