"""Mixed ML/MM systems by mechanical embedding, with optional MM <-> ML/MM interpolation.

:func:`create_mixed_system` takes an MM :class:`openmm.System` and a selection of ML atoms
and returns a new System in which

* bonded terms whose atoms are *all* ML (bonds, angles, proper/improper/RB torsions, CMAP,
  Custom{Bond,Angle,Torsion,CompoundBond}Force terms) are removed;
* ML-ML pairs get no MM nonbonded interaction: ``NonbondedForce`` exceptions with zero
  charge product and zero epsilon, ``CustomNonbondedForce`` exclusions;
* ML-MM and MM-MM interactions and implicit solvent (``GBSAOBCForce``, ``CustomGBForce``)
  are unchanged;
* a ``TorchForce`` computes the ANI energy of the ML atoms only (any order, need not be
  contiguous).

Periodic systems: the ML region is made whole by the minimum image from its first atom,
whatever the wrapping of the coordinates, and evaluated by ANI as an isolated molecule.
**ML atoms never interact with periodic images of the ML region through ANI**; their
MM interactions with MM atoms (and the reciprocal-space part of PME between ML charges,
which the MM force field computes) follow the MM force field's periodic treatment. The ML
region must span less than half the box.

With ``interpolate=True`` the energy is
``lambda_interpolate * U_mixed + (1 - lambda_interpolate) * U_MM``, where the global
parameter ``lambda_interpolate`` (default 1) is an energy-parameter derivative of the
System, so ``dU/dlambda`` is available from OpenMM for thermodynamic integration. This is
the ANI ``TorchForce`` scaled by ``lambda_interpolate`` itself (a TorchForce global
parameter, derivative by autograd) plus a ``CustomCVForce`` scaled by ``1 - lambda_interpolate``
whose collective variables are copies of the ML-internal MM terms (bonded terms restricted to
ML atoms, and the ML-ML nonbonded pair terms written so that at ``lambda_interpolate = 0`` the
MM system is reproduced exactly for NoCutoff, reaction-field and Ewald/PME electrostatics).
A TorchForce cannot itself be a collective variable: the CustomCVForce clones its variables
through XmlSerializer, and openmmtorch 1.5 cannot deserialise a TorchForce with OpenMM 8.6.
With ``backend="python"`` the ANI term is a small picklable ``PythonForce`` inside the
CustomCVForce (``lambda*ani + (1-lambda)*mm``), the form the openmmtools workflow uses.
"""

import copy
import itertools
import logging
import math
import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import openmm
import torch

from .units import COULOMB_CONSTANT_KJ_NM_PER_MOL_E2

if TYPE_CHECKING:  # pragma: no cover - typing only
    import openmm.app

logger = logging.getLogger(__name__)

#: Name of the global parameter that interpolates MM (0) -> mixed ML/MM (1).
LAMBDA_PARAMETER = "lambda_interpolate"


#: Bonded force types whose terms are removed when all their particles are ML.
_BONDED_TYPES = (
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
_UNCHANGED_TYPES = (
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


def validate_ml_atoms(topology: "openmm.app.Topology", system: openmm.System, ml_atoms: Iterable[int]) -> List[int]:
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
    atoms: List[int] = []
    for value in ml_atoms:
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"ML atom index {value!r} is not an integer") from None
        if isinstance(value, bool) or index != value:
            raise ValueError(f"ML atom index {value!r} is not an integer")
        atoms.append(index)
    if not atoms:
        raise ValueError("the ML atom selection is empty")
    out_of_range = sorted({i for i in atoms if i < 0 or i >= n_particles})
    if out_of_range:
        raise ValueError(f"ML atom indices {out_of_range} are out of range for a System of {n_particles} particles")
    duplicates = sorted(i for i, count in Counter(atoms).items() if count > 1)
    if duplicates:
        raise ValueError(f"ML atom indices {duplicates} are given more than once")
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


def _split_terms(force: openmm.Force, ml: Set[int]) -> Tuple[openmm.Force, Optional[openmm.Force]]:
    """Split a bonded force into (terms with a non-ML particle, terms with only ML particles).

    Works on the XML serialisation, so every bonded force type (custom ones with their
    parameters, functions and derivatives included) is copied exactly. The second element
    is ``None`` when the force has no ML-internal term.
    """
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
            particles = [int(v) for k, v in term.attrib.items() if pattern.match(k)]
            if particles and all(p in ml for p in particles):
                container.remove(term)
                n_internal += 1
            else:
                internal_container.remove(internal_term)
    kept = openmm.XmlSerializer.deserialize(ElementTree.tostring(root, encoding="unicode"))
    if n_internal == 0:
        return kept, None
    internal = openmm.XmlSerializer.deserialize(ElementTree.tostring(internal_root, encoding="unicode"))
    return kept, internal


def _format(value: float) -> str:
    return repr(float(value))


def _nonbonded_internal_forces(force: openmm.NonbondedForce, ml_atoms: Sequence[int]) -> List[openmm.Force]:
    """CustomBondForces giving the MM nonbonded energy of the ML-ML pairs of ``force``.

    The energy is ``U(NonbondedForce) - U(NonbondedForce with ML-ML exceptions zeroed)``,
    exactly, for the supported nonbonded methods: normal pairs use the method's cutoff,
    reaction field or Ewald form (direct + reciprocal = plain Coulomb within the cutoff,
    ``erf(alpha r)/r`` beyond it) and the LJ switching function; exceptions are plain
    Coulomb + LJ, as OpenMM computes them.
    """
    method = force.getNonbondedMethod()
    if method == openmm.NonbondedForce.LJPME:
        raise NotImplementedError("interpolate=True does not support LJPME; use PME for the MM system")
    for k in range(force.getNumParticleParameterOffsets()):
        if force.getParticleParameterOffset(k)[1] in set(ml_atoms):
            raise NotImplementedError("interpolate=True does not support particle parameter offsets on ML atoms")
    ml = set(ml_atoms)
    for k in range(force.getNumExceptionParameterOffsets()):
        i, j = force.getExceptionParameters(force.getExceptionParameterOffset(k)[1])[:2]
        if i in ml and j in ml:
            raise NotImplementedError("interpolate=True does not support exception parameter offsets between ML atoms")
    coulomb = _format(COULOMB_CONSTANT_KJ_NM_PER_MOL_E2)
    cutoff = force.getCutoffDistance().value_in_unit(openmm.unit.nanometer)
    lj = "4*eps*((sig/r)^12-(sig/r)^6)"
    if method == openmm.NonbondedForce.NoCutoff:
        pair = f"{coulomb}*qq/r + {lj}"
    else:
        switch = "1"
        if force.getUseSwitchingFunction():
            r_switch = force.getSwitchingDistance().value_in_unit(openmm.unit.nanometer)
            x = f"max(0, (r-{_format(r_switch)})/{_format(cutoff - r_switch)})"
            switch = f"(1 - 10*({x})^3 + 15*({x})^4 - 6*({x})^5)"
        lj_cut = f"step({_format(cutoff)}-r)*{switch}*{lj}"
        if method in (openmm.NonbondedForce.CutoffNonPeriodic, openmm.NonbondedForce.CutoffPeriodic):
            dielectric = force.getReactionFieldDielectric()
            k_rf = (dielectric - 1.0) / ((2.0 * dielectric + 1.0) * cutoff**3)
            c_rf = 3.0 * dielectric / ((2.0 * dielectric + 1.0) * cutoff)
            pair = f"step({_format(cutoff)}-r)*{coulomb}*qq*(1/r + {_format(k_rf)}*r^2 - {_format(c_rf)}) + {lj_cut}"
        else:  # Ewald, PME: the pair's direct (erfc, cut) plus reciprocal (erf) parts
            alpha = 0.0
            if method == openmm.NonbondedForce.PME:
                alpha = force.getPMEParameters()[0].value_in_unit(openmm.unit.nanometer**-1)
            if alpha == 0.0:
                alpha = math.sqrt(-math.log(2.0 * force.getEwaldErrorTolerance())) / cutoff
            a = _format(alpha)
            pair = f"{coulomb}*qq*(step({_format(cutoff)}-r)*erfc({a}*r) + erf({a}*r))/r + {lj_cut}"
    exception_energy = f"{coulomb}*qq/r + {lj}"
    pairs = openmm.CustomBondForce(pair)
    exceptions = openmm.CustomBondForce(exception_energy)
    for custom in (pairs, exceptions):
        for name in ("qq", "sig", "eps"):
            custom.addPerBondParameter(name)
    pairs.setUsesPeriodicBoundaryConditions(force.usesPeriodicBoundaryConditions())
    exceptions.setUsesPeriodicBoundaryConditions(
        force.usesPeriodicBoundaryConditions() and force.getExceptionsUsePeriodicBoundaryConditions()
    )
    excepted: Dict[Tuple[int, int], int] = {}
    for k in range(force.getNumExceptions()):
        i, j = force.getExceptionParameters(k)[:2]
        if i in ml and j in ml:
            excepted[(min(i, j), max(i, j))] = k
    for i, j in itertools.combinations(sorted(ml), 2):
        if (i, j) in excepted:
            _, _, qq, sig, eps = force.getExceptionParameters(excepted[(i, j)])
            qq_v = qq.value_in_unit(openmm.unit.elementary_charge**2)
            eps_v = eps.value_in_unit(openmm.unit.kilojoule_per_mole)
            if qq_v != 0.0 or eps_v != 0.0:
                exceptions.addBond(i, j, [qq_v, sig.value_in_unit(openmm.unit.nanometer), eps_v])
        else:
            qi, si, ei = force.getParticleParameters(i)
            qj, sj, ej = force.getParticleParameters(j)
            qq_v = (qi * qj).value_in_unit(openmm.unit.elementary_charge**2)
            eps_v = math.sqrt(ei.value_in_unit(openmm.unit.kilojoule_per_mole) * ej.value_in_unit(openmm.unit.kilojoule_per_mole))
            sig_v = 0.5 * (si + sj).value_in_unit(openmm.unit.nanometer)
            if qq_v != 0.0 or eps_v != 0.0:
                pairs.addBond(i, j, [qq_v, sig_v, eps_v])
    return [custom for custom in (pairs, exceptions) if custom.getNumBonds() > 0]


def _remove_ml_nonbonded(force: openmm.NonbondedForce, ml_atoms: Sequence[int]) -> None:
    """Give every ML-ML pair of ``force`` an exception with zero charge product and epsilon."""
    ml = set(ml_atoms)
    for k in range(force.getNumExceptionParameterOffsets()):
        parameter, index, _, _, _ = force.getExceptionParameterOffset(k)
        i, j = force.getExceptionParameters(index)[:2]
        if i in ml and j in ml:
            force.setExceptionParameterOffset(k, parameter, index, 0.0, 0.0, 0.0)
    for i, j in itertools.combinations(sorted(ml), 2):
        force.addException(i, j, 0.0, 1.0, 0.0, True)


def _custom_nonbonded_internal(force: openmm.CustomNonbondedForce, ml_atoms: Sequence[int]) -> openmm.Force:
    """A copy of ``force`` restricted to ML-ML pairs (no long-range correction)."""
    internal = copy.deepcopy(force)
    ml = set(ml_atoms)
    groups = [force.getInteractionGroupParameters(k) for k in range(force.getNumInteractionGroups())]
    if not groups:
        groups = [(list(ml), list(ml))]
    for k in range(internal.getNumInteractionGroups()):
        internal.setInteractionGroupParameters(k, [], [])
    added = 0
    for set1, set2 in groups:
        a = sorted(ml.intersection(set1))
        b = sorted(ml.intersection(set2))
        if a and b:
            internal.addInteractionGroup(a, b)
            added += 1
    if added == 0:
        internal.addInteractionGroup([min(ml)], [min(ml)])  # a force with no pairs
    internal.setUseLongRangeCorrection(False)
    return internal


def _remove_ml_custom_nonbonded(force: openmm.CustomNonbondedForce, ml_atoms: Sequence[int]) -> None:
    """Exclude every ML-ML pair of ``force``."""
    existing = set()
    for k in range(force.getNumExclusions()):
        i, j = force.getExclusionParticles(k)
        existing.add((min(i, j), max(i, j)))
    for pair in itertools.combinations(sorted(ml_atoms), 2):
        if pair not in existing:
            force.addExclusion(*pair)


def create_mixed_system(
    potential: Any,
    topology: "openmm.app.Topology",
    system: openmm.System,
    ml_atoms: Iterable[int],
    interpolate: bool = False,
    removeConstraints: bool = True,
    forceGroup: int = 0,
    *,
    backend: str = "torch",
) -> openmm.System:
    """A new System with the ML atoms described by ANI and the rest by the MM force field.

    Parameters
    ----------
    potential
        An :class:`openmm_ani.ANIPotential` (anything with ``.model.elements`` and
        ``.createForce(atomic_numbers, atoms=..., make_whole=...)``).
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
        Force group of the ANI force (of the interpolating ``CustomCVForce`` when
        ``interpolate``).
    backend
        ``"torch"``: the ANI term is an ``openmmtorch.TorchForce`` (no Python in the MD loop);
        with ``interpolate`` it scales itself by ``lambda_interpolate`` and the ML-internal MM
        terms sit in a ``CustomCVForce`` scaled by ``1 - lambda_interpolate``.
        ``"python"``: the ANI term is an ``openmm.PythonForce`` whose pickled state is a few
        hundred bytes (the model is rebuilt from its name once per process), so Systems can
        be copied, serialised and hashed cheaply (openmmtools); with ``interpolate`` it sits
        in the ``CustomCVForce`` with the MM terms.

    Returns
    -------
    openmm.System
        The mixed System (lengths nm, energies kJ/mol as in OpenMM).

    Raises
    ------
    ValueError
        Bad selections (see :func:`validate_ml_atoms`), elements the model lacks (naming the
        atoms), or a bad force group.
    NotImplementedError
        ``interpolate`` with LJPME or parameter offsets on ML atoms.
    """
    if not 0 <= int(forceGroup) <= 31:
        raise ValueError(f"forceGroup must be in 0..31, got {forceGroup}")
    atoms = validate_ml_atoms(topology, system, ml_atoms)
    numbers = check_elements(topology, atoms, list(potential.model.elements))
    ml = set(atoms)
    periodic = system.usesPeriodicBoundaryConditions()

    new_system = openmm.System()
    new_system.setDefaultPeriodicBoxVectors(*system.getDefaultPeriodicBoxVectors())
    for i in range(system.getNumParticles()):
        new_system.addParticle(system.getParticleMass(i))
        if system.isVirtualSite(i):
            new_system.setVirtualSite(i, copy.deepcopy(system.getVirtualSite(i)))
    for k in range(system.getNumConstraints()):
        i, j, distance = system.getConstraintParameters(k)
        if removeConstraints and i in ml and j in ml:
            continue
        new_system.addConstraint(i, j, distance)

    internal_forces: List[openmm.Force] = []
    for force in system.getForces():
        if isinstance(force, _BONDED_TYPES):
            kept, internal = _split_terms(force, ml)
            new_system.addForce(kept)
            if internal is not None:
                internal_forces.append(internal)
        elif isinstance(force, openmm.NonbondedForce):
            if interpolate:
                internal_forces.extend(_nonbonded_internal_forces(force, atoms))
            mixed = copy.deepcopy(force)
            _remove_ml_nonbonded(mixed, atoms)
            new_system.addForce(mixed)
        elif isinstance(force, openmm.CustomNonbondedForce):
            if interpolate:
                internal_forces.append(_custom_nonbonded_internal(force, atoms))
            mixed = copy.deepcopy(force)
            _remove_ml_custom_nonbonded(mixed, atoms)
            new_system.addForce(mixed)
        else:
            if not isinstance(force, _UNCHANGED_TYPES):
                logger.warning("force %s (%s) is copied unchanged into the mixed system", force.getName(), type(force).__name__)
            new_system.addForce(copy.deepcopy(force))

    if backend == "python":
        from .freeenergy.pythonforce import create_python_ani_force

        ani = create_python_ani_force(potential, numbers, atoms, make_whole=periodic)
    elif backend != "torch":
        raise ValueError(f"unknown backend {backend!r}; use 'torch' or 'python'")
    elif interpolate:
        ani = _lambda_scaled_torch_force(potential, numbers, atoms, periodic)
    else:
        ani = potential.createForce(numbers, atoms=atoms, make_whole=periodic)
    if not interpolate:
        ani.setForceGroup(int(forceGroup))
        new_system.addForce(ani)
        return new_system

    cv = openmm.CustomCVForce("")
    cv.addGlobalParameter(LAMBDA_PARAMETER, 1.0)
    cv.addEnergyParameterDerivative(LAMBDA_PARAMETER)
    mm_names = []
    for k, internal in enumerate(internal_forces):
        internal.setForceGroup(0)
        name = f"mm{k}"
        cv.addCollectiveVariable(name, internal)
        mm_names.append(name)
    mm_sum = "+".join(mm_names) if mm_names else "0"
    if backend == "python":
        # openmmtools sees one force with the parameter: the ANI term lives inside the CV.
        cv.addCollectiveVariable("ani", ani)
        cv.setEnergyFunction(f"{LAMBDA_PARAMETER}*ani + (1-{LAMBDA_PARAMETER})*({mm_sum})")
    else:
        # A TorchForce cannot sit inside a CustomCVForce (the CV clones its variables through
        # XmlSerializer, and openmmtorch 1.5 cannot deserialize with OpenMM 8.6): it scales
        # itself by the global parameter and provides its own derivative.
        ani.setForceGroup(int(forceGroup))
        new_system.addForce(ani)
        cv.setEnergyFunction(f"(1-{LAMBDA_PARAMETER})*({mm_sum})")
    cv.setForceGroup(int(forceGroup))
    new_system.addForce(cv)
    return new_system


class _ScaledNonPeriodic(torch.nn.Module):
    """``lambda * inner(positions)`` for a TorchForce with one global parameter."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, positions: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return scale * self.inner(positions, None)


class _ScaledPeriodic(torch.nn.Module):
    """``lambda * inner(positions, boxvectors)`` for a periodic TorchForce with one global parameter."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, positions: torch.Tensor, boxvectors: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return scale * self.inner(positions, boxvectors)


def _lambda_scaled_torch_force(potential: Any, numbers: Sequence[int], atoms: Sequence[int], periodic: bool) -> openmm.Force:
    """A TorchForce giving ``lambda_interpolate * E_ANI`` with the parameter's energy derivative."""
    from .potential import import_openmmtorch

    openmmtorch = import_openmmtorch()
    inner = potential.createModule(numbers, atoms=atoms, make_whole=periodic)
    wrapper = _ScaledPeriodic(inner) if periodic else _ScaledNonPeriodic(inner)
    force = openmmtorch.TorchForce(torch.jit.script(wrapper))
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.addGlobalParameter(LAMBDA_PARAMETER, 1.0)
    force.addEnergyParameterDerivative(LAMBDA_PARAMETER)
    force.setName("ANI (lambda_interpolate)")
    return force
