"""Mixed ML/MM systems by mechanical embedding, with optional MM <-> ML/MM interpolation.

:func:`create_mixed_system` takes an MM :class:`openmm.System` and a selection of ML atoms
and returns a new System in which

* bonded terms whose atoms are *all* ML (bonds, angles, proper/improper/RB torsions, CMAP,
  Custom{Bond,Angle,Torsion,CompoundBond}Force terms) are removed;
* ML-ML pairs get no MM nonbonded interaction: ``NonbondedForce`` exceptions with zero
  charge product and zero epsilon, ``CustomNonbondedForce`` exclusions;
* ML-MM and MM-MM interactions and implicit solvent (``GBSAOBCForce``, ``CustomGBForce``)
  are unchanged; virtual sites (TIP4P/TIP5P water...) are kept;
* a ``TorchForce`` computes the ANI energy of the ML atoms only (any order, need not be
  contiguous).

An ML region cut through covalent bonds of the topology (a side chain, a covalent ligand)
gets a hydrogen cap on each cut bond, computed inside the TorchForce, and the bonded terms
across the boundary follow openmm-ml 1.8 (see :mod:`.linkatoms`).

Periodic systems: the ML region is made whole by the minimum image from its first atom,
whatever the wrapping of the coordinates, and evaluated by ANI as an isolated molecule.
**ML atoms never interact with periodic images of the ML region through ANI**; their
MM interactions with MM atoms (and the reciprocal-space part of PME between ML charges,
which the MM force field computes) follow the MM force field's periodic treatment. The ML
region must span less than half the box.

With ``interpolate=True`` the energy is ``lambda * U_mixed + (1 - lambda) * U_MM`` with the
global parameter ``lambda_interpolate`` (default 1) and its energy derivative (see
:mod:`.interpolation`).
"""

import copy
import logging
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Sequence

import openmm

from ...model import ANIModel
from ..forces import create_module, create_torch_force
from ..openmmtorch import require_torchforce_copies
from ..topology import check_elements, validate_ml_atoms
from .charge import warn_if_charged
from .interpolation import custom_nonbonded_internal, interpolation_force, nonbonded_internal_forces
from .linkatoms import BoundaryRules, check_cut_bonds_in_topology, create_link_atom_module, find_link_bonds
from .surgery import BONDED_TYPES, UNCHANGED_TYPES, exclude_ml_pairs, remove_ml_pairs, split_bonded_terms

if TYPE_CHECKING:  # pragma: no cover - typing only
    import openmm.app

logger = logging.getLogger(__name__)


def _empty_copy(system: openmm.System) -> openmm.System:
    """A copy of ``system`` with its particles, masses, virtual sites and box, but no forces
    and no constraints."""
    copied = openmm.XmlSerializer.clone(system)
    for k in reversed(range(copied.getNumForces())):
        copied.removeForce(k)
    for k in reversed(range(copied.getNumConstraints())):
        copied.removeConstraint(k)
    return copied


def create_mixed_system(
    model: ANIModel,
    topology: "openmm.app.Topology",
    system: openmm.System,
    ml_atoms: Iterable[int],
    interpolate: bool = False,
    removeConstraints: bool = True,
    forceGroup: int = 0,
    linkAtomDistances: Optional[Iterable[Sequence[Any]]] = None,
) -> openmm.System:
    """A new System with the ML atoms described by ANI and the rest by the MM force field.

    Parameters
    ----------
    model
        The ANI model (its dtype sets the precision of the TorchForce).
    topology
        Topology of ``system`` (elements of the ML atoms are read from it).
    system
        The MM System; it is not modified.
    ml_atoms
        Indices of the ML atoms, any order, need not be contiguous.
    interpolate
        Add the global parameter ``lambda_interpolate`` (0: the MM system, 1: the mixed
        system, default 1) with its energy derivative.
    removeConstraints
        Remove constraints between two ML atoms.
    forceGroup
        Force group of the ANI force (with ``interpolate``, of the ``CustomCVForce`` that holds
        it and the ML-internal MM terms).
    linkAtomDistances
        ``(atom1, atom2, distance)`` entries (distance a length ``Quantity`` or nm) setting the
        ML atom to hydrogen-cap distance of link bonds, as in openmm-ml 1.8. An ML region cut
        through bonds of the topology always gets a hydrogen cap on each cut bond (see
        :mod:`.linkatoms`); the default distance is the sum of covalent radii.

    Returns
    -------
    openmm.System
        The mixed System (lengths nm, energies kJ/mol as in OpenMM).

    Raises
    ------
    ValueError
        Bad selections (see :func:`~openmm_ani.openmm.topology.validate_ml_atoms`), elements
        the model lacks (naming the atoms), a bad force group, bad ``linkAtomDistances``, or
        System bonds across the boundary that the topology lacks.
    NotImplementedError
        ``interpolate`` with LJPME or parameter offsets on ML atoms.

    Warns
    -----
    NetChargeWarning
        The ML atoms' MM charges sum to more than 0.01 e (0.5 e for a region cut through bonds):
        ANI-1ccx and ANI-1x know neutral molecules only (see :mod:`.charge`).
    openmm_ani.openmm.openmmtorch.TorchForceCopyError
        ``interpolate`` where the installed OpenMM cannot copy a TorchForce (it would crash).
    """
    if isinstance(forceGroup, bool) or not 0 <= int(forceGroup) <= 31:
        raise ValueError(f"forceGroup must be in 0..31, got {forceGroup!r}")
    atoms = validate_ml_atoms(topology, system, ml_atoms)
    numbers = check_elements(topology, atoms, list(model.elements))
    ml = set(atoms)
    periodic = system.usesPeriodicBoundaryConditions()
    links = find_link_bonds(topology, atoms, linkAtomDistances)
    if not links:
        check_cut_bonds_in_topology(topology, system, atoms)
    rules = BoundaryRules(topology, atoms) if links else None
    warn_if_charged(system, atoms, cut=bool(links), stacklevel=3)
    if interpolate:
        require_torchforce_copies()  # the CustomCVForce copies the TorchForce

    new_system = _empty_copy(system)
    for k in range(system.getNumConstraints()):
        i, j, distance = system.getConstraintParameters(k)
        if not (removeConstraints and i in ml and j in ml):
            new_system.addConstraint(i, j, distance)

    internal_forces: List[openmm.Force] = []
    for force in system.getForces():
        if isinstance(force, BONDED_TYPES):
            kept, internal = split_bonded_terms(force, ml, None if rules is None else rules.rule_for(force))
            new_system.addForce(kept)
            if internal is not None:
                internal_forces.append(internal)
        elif isinstance(force, openmm.NonbondedForce):
            if interpolate:
                internal_forces.extend(nonbonded_internal_forces(force, atoms))
            mixed = copy.deepcopy(force)
            remove_ml_pairs(mixed, atoms)
            new_system.addForce(mixed)
        elif isinstance(force, openmm.CustomNonbondedForce):
            if interpolate:
                internal_forces.append(custom_nonbonded_internal(force, atoms))
            mixed = copy.deepcopy(force)
            exclude_ml_pairs(mixed, atoms)
            new_system.addForce(mixed)
        else:
            if not isinstance(force, UNCHANGED_TYPES):
                logger.warning("force %s (%s) is copied unchanged into the mixed system", force.getName(), type(force).__name__)
            new_system.addForce(copy.deepcopy(force))

    if links:
        logger.info("ML region cut through %d bond(s): hydrogen caps on %s", len(links), [link[:2] for link in links])
        module = create_link_atom_module(model, numbers, atoms, links, system.getNumParticles(), periodic)
    else:
        module = create_module(model, numbers, atoms=atoms, make_whole=periodic)
    ani = create_torch_force(module, periodic, f"ANI {model.name}")
    if interpolate:
        ani = interpolation_force(ani, internal_forces)
    ani.setForceGroup(int(forceGroup))
    new_system.addForce(ani)
    return new_system
