"""Link atoms: an ML region cut through covalent bonds, each cut capped by a hydrogen atom.

A bond of the topology between an ML atom and an MM atom is a *link bond*. ANI evaluates the
ML atoms plus one hydrogen cap per link bond, placed on the bond at a fixed distance ``d``
from the ML atom::

    cap = r_ML + d * (r_MM - r_ML) / |r_MM - r_ML|

``d`` is the sum of the single-bond covalent radii of the ML atom and hydrogen (C-H 0.107 nm,
N-H 0.103 nm, O-H 0.095 nm), or the value given in ``linkAtomDistances``. The caps are not
particles of the System: :class:`LinkAtomModule` computes them from the positions inside the
TorchScript module, so the ANI energy is a function of the ML and MM atom positions and
autograd carries the cap forces to both atoms of each link bond (the chain rule). The System,
the topology and the positions keep their particles, which openmmtools states, reporters and
trajectories rely on. (openmm-ml 1.8 places the same caps as ``LocalCoordinatesSite`` virtual
sites appended to the System; the energies are the same.)

The MM terms across the boundary follow openmm-ml 1.8 (:class:`BoundaryRules`): a bonded term
is replaced by ANI when

* a bond joins two ML atoms (the link bond itself stays MM);
* an angle is centred on an ML atom;
* a proper torsion's central bond joins two ML atoms; an improper is centred on an ML atom;
* a CMAP term's two central bonds join ML atoms;
* every particle of any other bonded term (``CustomCompoundBondForce``) is ML.

Nonbonded interactions are those of every mechanical embedding: ML-ML pairs are removed, ML-MM
pairs keep the force field's charges, Lennard-Jones parameters and exceptions.
"""

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

import openmm
import torch
from torch import Tensor

from ..module import ANIForceModule
from ..periodic import minimum_image

if TYPE_CHECKING:  # pragma: no cover - typing only
    import openmm.app

#: Single-bond covalent radii, nm (Pyykkö & Atsumi, Chem. Eur. J. 15, 186 (2009), the values
#: openmm-ml 1.8 uses for link atoms) of the elements ANI models support, by atomic number.
COVALENT_RADII_NM: Dict[int, float] = {1: 0.032, 6: 0.075, 7: 0.071, 8: 0.063, 9: 0.064, 16: 0.102, 17: 0.099}
#: Atomic number of the cap.
HYDROGEN = 1


class LinkBond(NamedTuple):
    """One cut bond and its cap.

    Attributes
    ----------
    ml_atom, mm_atom
        Particle indices of the bond's ML and MM atoms.
    distance
        ML atom to cap distance, nm.
    """

    ml_atom: int
    mm_atom: int
    distance: float


def _bonded_pairs(topology: "openmm.app.Topology") -> List[Tuple[int, int]]:
    return [(bond.atom1.index, bond.atom2.index) for bond in topology.bonds()]


def _distance_nm(value: Any, pair: Tuple[int, int]) -> float:
    if openmm.unit.is_quantity(value):
        if not value.unit.is_compatible(openmm.unit.nanometer):
            raise ValueError(f"linkAtomDistances: the distance of bond {pair} has unit {value.unit}, not a length")
        value = value.value_in_unit(openmm.unit.nanometer)
    distance = float(value)
    if not 0.0 < distance < 0.3:
        raise ValueError(f"linkAtomDistances: the distance of bond {pair} is {distance} nm; give a cap distance in (0, 0.3) nm")
    return distance


def find_link_bonds(
    topology: "openmm.app.Topology",
    ml_atoms: Sequence[int],
    linkAtomDistances: Optional[Iterable[Sequence[Any]]] = None,
) -> List[LinkBond]:
    """The bonds of ``topology`` between an ML and an MM atom, with their cap distances.

    Parameters
    ----------
    topology
        The topology (its bonds define the link bonds).
    ml_atoms
        Validated ML atom indices.
    linkAtomDistances
        ``(atom1, atom2, distance)`` entries overriding the cap distance of a link bond (either
        atom order); ``distance`` a length ``Quantity`` or a number in nm (as openmm-ml 1.8).

    Returns
    -------
    list of LinkBond
        In the order of the topology's bonds.

    Raises
    ------
    ValueError
        An MM atom bonded to two ML atoms (two caps would nearly coincide), an entry of
        ``linkAtomDistances`` that is not a link bond or has a bad distance, or a link bond from an
        element without a tabulated covalent radius and no distance given.
    """
    ml = set(ml_atoms)
    atoms = list(topology.atoms())
    overrides: Dict[Tuple[int, int], float] = {}
    for entry in linkAtomDistances or ():
        if len(entry) != 3:
            raise ValueError(f"linkAtomDistances entries are (atom1, atom2, distance), got {tuple(entry)!r}")
        pair = (min(int(entry[0]), int(entry[1])), max(int(entry[0]), int(entry[1])))
        overrides[pair] = _distance_nm(entry[2], pair)
    links: List[LinkBond] = []
    mm_seen: Dict[int, int] = {}
    for i, j in _bonded_pairs(topology):
        if (i in ml) == (j in ml):
            continue
        ml_atom, mm_atom = (i, j) if i in ml else (j, i)
        if mm_atom in mm_seen:
            raise ValueError(
                f"MM atom {mm_atom} is bonded to ML atoms {sorted((mm_seen[mm_atom], ml_atom))}: two link atoms would "
                "nearly coincide; add it to the ML region or leave one of them out"
            )
        mm_seen[mm_atom] = ml_atom
        pair = (min(i, j), max(i, j))
        if pair in overrides:
            distance = overrides.pop(pair)
        else:
            number = atoms[ml_atom].element.atomic_number
            if number not in COVALENT_RADII_NM:
                raise ValueError(
                    f"no covalent radius for ML atom {ml_atom} ({atoms[ml_atom].element.symbol}) of link bond {pair}; "
                    "give its cap distance in linkAtomDistances"
                )
            distance = COVALENT_RADII_NM[number] + COVALENT_RADII_NM[HYDROGEN]
        links.append(LinkBond(ml_atom, mm_atom, distance))
    if overrides:
        raise ValueError(f"linkAtomDistances names bonds {sorted(overrides)} that are not bonds between an ML and an MM atom")
    return links


def check_cut_bonds_in_topology(topology: "openmm.app.Topology", system: openmm.System, ml_atoms: Sequence[int]) -> None:
    """Raise if the System bonds ML to MM atoms where the topology has no bond.

    Link atoms are found from the topology's bonds (as openmm-ml does); a topology without them
    (a PDB file without CONECT records for a ligand) would silently leave dangling valences.

    Raises
    ------
    ValueError
        Naming the ``HarmonicBondForce`` bonds or constraints that cross the boundary but are
        missing from the topology.
    """
    ml = set(ml_atoms)
    known = {(min(i, j), max(i, j)) for i, j in _bonded_pairs(topology)}
    crossing: Set[Tuple[int, int]] = set()
    for k in range(system.getNumConstraints()):
        i, j, _ = system.getConstraintParameters(k)
        if (i in ml) != (j in ml):
            crossing.add((min(i, j), max(i, j)))
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                i, j = force.getBondParameters(k)[:2]
                if (i in ml) != (j in ml):
                    crossing.add((min(i, j), max(i, j)))
    missing = sorted(crossing - known)
    if missing:
        raise ValueError(
            f"the System bonds ML atoms to MM atoms {missing[:10]} but the topology has no such bonds; "
            "add them to the topology (link atoms are placed on topology bonds) or select whole molecules"
        )


class BoundaryRules:
    """Which bonded terms ANI replaces when the ML region is cut through bonds (openmm-ml 1.8's rules).

    Parameters
    ----------
    topology
        The topology; its bonds tell proper from improper torsions.
    ml_atoms
        The ML atoms.
    """

    def __init__(self, topology: "openmm.app.Topology", ml_atoms: Iterable[int]) -> None:
        self.ml = set(ml_atoms)
        self.neighbours: Dict[int, Set[int]] = {}
        for i, j in _bonded_pairs(topology):
            self.neighbours.setdefault(i, set()).add(j)
            self.neighbours.setdefault(j, set()).add(i)
        self.near = set(self.ml)
        for i in self.ml:
            self.near |= self.neighbours.get(i, set())

    def _bonded(self, i: int, j: int) -> bool:
        return j in self.neighbours.get(i, ())

    def torsion(self, a: int, b: int, c: int, d: int) -> bool:
        """A four-particle term: proper (central bond ML-ML) or improper (central atom ML)."""
        if not {a, b, c, d} & self.ml:
            return False
        if self._bonded(a, b) and self._bonded(b, c) and self._bonded(c, d):
            return b in self.ml and c in self.ml
        for centre in (a, b, c, d):
            others = [x for x in (a, b, c, d) if x != centre]
            if all(self._bonded(centre, x) for x in others):
                return centre in self.ml
        if {a, b, c, d} <= self.ml:
            return True
        raise ValueError(
            f"the torsion ({a}, {b}, {c}, {d}) crosses the ML/MM boundary but is neither proper nor improper "
            "in the topology's bonds"
        )

    def rule_for(self, force: openmm.Force) -> Callable[[Sequence[int]], bool]:
        """``is_internal(particles)`` for the terms of ``force`` (particles in the term's order)."""
        if isinstance(force, (openmm.HarmonicAngleForce, openmm.CustomAngleForce)):
            return lambda p: p[1] in self.ml and p[0] in self.near and p[2] in self.near
        if isinstance(force, (openmm.PeriodicTorsionForce, openmm.RBTorsionForce, openmm.CustomTorsionForce)):
            return lambda p: self.torsion(*p)
        if isinstance(force, openmm.CMAPTorsionForce):
            return lambda p: all(x in self.ml for x in (p[1], p[2], p[5], p[6])) and all(
                x in self.near for x in (p[0], p[3], p[4], p[7])
            )
        return lambda p: all(x in self.ml for x in p)


class LinkAtomModule(torch.nn.Module):
    """The ANI energy of an ML region whose cut bonds are capped by hydrogen atoms.

    Parameters
    ----------
    ani
        An :class:`ANIForceModule` over the ML atoms followed by one hydrogen per link bond,
        the caps at particle indices ``N, N + 1, ...`` (``N`` particles in the System).
    links
        The link bonds, in the order of the caps.
    uses_box
        The System is periodic: each bond vector is taken as its minimum image.

    Notes
    -----
    ``forward(positions [N, 3] nm, boxvectors [3, 3] nm or None)`` returns the energy (kJ/mol,
    0-d); ``member_energies`` the ``[M]`` member energies; ``cap_positions`` the caps ``[k, 3]`` nm.
    The energy comes from the ANI module's autograd-differentiable path (``member_energies``), so
    back-propagation reaches the positions through the caps. Its fused ``forward`` attaches analytic
    forces to its own input, which under openmm-torch's ``torch.jit.freeze`` loses its gradient when
    that input is computed inside another module (``element 0 of tensors does not require grad``).
    """

    def __init__(self, ani: ANIForceModule, links: Sequence[LinkBond], uses_box: bool) -> None:
        super().__init__()
        self.ani = ani
        self.uses_box = bool(uses_box)
        self.register_buffer("link_ml", torch.tensor([link.ml_atom for link in links], dtype=torch.long))
        self.register_buffer("link_mm", torch.tensor([link.mm_atom for link in links], dtype=torch.long))
        self.register_buffer("distances", torch.tensor([[link.distance] for link in links], dtype=torch.float64))

    @torch.jit.export
    def cap_positions(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        """Positions of the caps, ``[k, 3]`` nm, on the link bonds (minimum image in a box)."""
        origin = positions.index_select(0, self.link_ml)
        bond = positions.index_select(0, self.link_mm) - origin
        if self.uses_box:
            if boxvectors is None:
                raise ValueError("this ANI force is periodic: box vectors are required")
            bond = minimum_image(bond, boxvectors.to(bond.dtype))
        length = torch.linalg.norm(bond, dim=1, keepdim=True)
        return origin + bond * (self.distances.to(bond.dtype) / length)

    def _extended(self, positions: Tensor, boxvectors: Optional[Tensor]) -> Tensor:
        return torch.cat([positions, self.cap_positions(positions, boxvectors)], 0)

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        # the ANI module's differentiable path: back-propagation runs through the caps to both atoms of
        # each link bond (its fast forward() attaches analytic forces to its own input only)
        return self.ani.member_energies(self._extended(positions, boxvectors), boxvectors).mean()

    @torch.jit.export
    def member_energies(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        """Energy of each ensemble member, ``[M]`` kJ/mol."""
        return self.ani.member_energies(self._extended(positions, boxvectors), boxvectors)


def create_link_atom_module(
    model: Any,
    numbers: Sequence[int],
    ml_atoms: Sequence[int],
    links: Sequence[LinkBond],
    num_particles: int,
    uses_box: bool,
) -> torch.jit.ScriptModule:
    """The TorchScript module of ML atoms plus caps (see :class:`LinkAtomModule`).

    Parameters
    ----------
    model
        The ANI model (:class:`~openmm_ani.model.ANIModel`).
    numbers
        Atomic numbers of ``ml_atoms``.
    ml_atoms
        ML particle indices (any order).
    links
        Link bonds (at least one).
    num_particles
        Particles in the System (the caps are numbered after them).
    uses_box
        The System is periodic (the region is made whole, bond vectors taken as minimum images).
    """
    atoms = list(ml_atoms) + [num_particles + k for k in range(len(links))]
    species = list(numbers) + [HYDROGEN] * len(links)
    ani = ANIForceModule(model, species, atoms=atoms, periodic=False, make_whole=uses_box)
    return torch.jit.script(LinkAtomModule(ani, links, uses_box))
