"""MM surgery for mechanical embedding: removing the MM terms that ANI replaces.

Bonded terms whose particles are *all* ML are split off (:func:`split_bonded_terms`, which
works on the XML form so that every bonded force type, custom ones included, is copied
exactly); ML-ML pairs lose their nonbonded interaction (:func:`remove_ml_pairs` for
``NonbondedForce``, :func:`exclude_ml_pairs` for ``CustomNonbondedForce``).
"""

import copy
import itertools
import re
import xml.etree.ElementTree as ElementTree
from typing import Callable, Optional, Sequence, Set, Tuple

import openmm

#: Bonded force types whose terms are removed when all their particles are ML.
BONDED_TYPES = (
    openmm.HarmonicBondForce,
    openmm.HarmonicAngleForce,
    openmm.PeriodicTorsionForce,
    openmm.RBTorsionForce,
    openmm.CMAPTorsionForce,
    openmm.CustomBondForce,
    openmm.CustomAngleForce,
    openmm.CustomTorsionForce,
    openmm.CustomCompoundBondForce,
)
#: Force types left unchanged: implicit solvent, thermostats/barostats, one-particle terms.
UNCHANGED_TYPES = (
    openmm.GBSAOBCForce,
    openmm.CustomGBForce,
    openmm.CMMotionRemover,
    openmm.MonteCarloBarostat,
    openmm.MonteCarloAnisotropicBarostat,
    openmm.MonteCarloMembraneBarostat,
    openmm.AndersenThermostat,
    openmm.CustomExternalForce,
)
_TERM_CONTAINERS = ("Bonds", "Angles", "Torsions")
_PARTICLE_ATTRIBUTE = re.compile(r"^p\d+$")
_CMAP_PARTICLE_ATTRIBUTE = re.compile(r"^[ab]\d$")


def _particle_order(name: str) -> Tuple[str, int]:
    return name[0], int(name[1:])


def split_bonded_terms(
    force: openmm.Force,
    ml: Set[int],
    is_internal: Optional[Callable[[Sequence[int]], bool]] = None,
) -> Tuple[openmm.Force, Optional[openmm.Force]]:
    """Split a bonded force into (terms kept in MM, terms that ANI replaces).

    Works on the XML serialisation, so every bonded force type (custom ones with their
    parameters, functions and derivatives included) is copied exactly.

    Parameters
    ----------
    force
        A force of one of :data:`BONDED_TYPES`.
    ml
        The ML atoms.
    is_internal
        Decides from a term's particles (in the term's order: ``p1, p2, ...``; CMAP ``a1..a4,
        b1..b4``) whether ANI replaces it; default: every particle is ML. Regions cut through
        bonds use :meth:`.linkatoms.BoundaryRules.rule_for`.

    Returns
    -------
    tuple
        The force with the kept terms, and the force with the replaced terms (``None`` when
        there are none).
    """
    if is_internal is None:
        is_internal = lambda particles: all(p in ml for p in particles)  # noqa: E731
    pattern = _CMAP_PARTICLE_ATTRIBUTE if isinstance(force, openmm.CMAPTorsionForce) else _PARTICLE_ATTRIBUTE
    root = ElementTree.fromstring(openmm.XmlSerializer.serialize(force))
    internal_root = copy.deepcopy(root)
    n_internal = 0
    for container, internal_container in zip(root, internal_root):
        if container.tag not in _TERM_CONTAINERS:
            continue
        terms = list(container)
        internal_terms = list(internal_container)
        for term, internal_term in zip(terms, internal_terms):
            names = sorted((k for k in term.attrib if pattern.match(k)), key=_particle_order)
            particles = [int(term.attrib[k]) for k in names]
            if particles and is_internal(particles):
                container.remove(term)
                n_internal += 1
            else:
                internal_container.remove(internal_term)
    kept = openmm.XmlSerializer.deserialize(ElementTree.tostring(root, encoding="unicode"))
    if n_internal == 0:
        return kept, None
    internal = openmm.XmlSerializer.deserialize(ElementTree.tostring(internal_root, encoding="unicode"))
    return kept, internal


def remove_ml_pairs(force: openmm.NonbondedForce, ml_atoms: Sequence[int]) -> None:
    """Give every ML-ML pair of ``force`` an exception with zero charge product and epsilon."""
    ml = set(ml_atoms)
    for k in range(force.getNumExceptionParameterOffsets()):
        parameter, index, _, _, _ = force.getExceptionParameterOffset(k)
        i, j = force.getExceptionParameters(index)[:2]
        if i in ml and j in ml:
            force.setExceptionParameterOffset(k, parameter, index, 0.0, 0.0, 0.0)
    for i, j in itertools.combinations(sorted(ml), 2):
        force.addException(i, j, 0.0, 1.0, 0.0, True)


def exclude_ml_pairs(force: openmm.CustomNonbondedForce, ml_atoms: Sequence[int]) -> None:
    """Exclude every ML-ML pair of ``force``."""
    existing = set()
    for k in range(force.getNumExclusions()):
        i, j = force.getExclusionParticles(k)
        existing.add((min(i, j), max(i, j)))
    for pair in itertools.combinations(sorted(ml_atoms), 2):
        if pair not in existing:
            force.addExclusion(*pair)
