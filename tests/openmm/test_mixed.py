"""Mixed ML/MM systems: lambda=0 is the MM system, lambda=1 an independently assembled reference.

References used here, none produced by openmm_ani.mixed:
* lambda=0: the original MM System evaluated by OpenMM (Reference platform, double precision);
* lambda=1: ANI energy of the ML atoms from openmm_ani.models.load (PyTorch, float64, Å/Ha
  converted with openmm_ani.units) + the original MM System with the ML-internal bonded force
  constants set to zero, minus the ML-ML Coulomb + Lennard-Jones pair energies summed in
  PyTorch from the NonbondedForce parameters (exceptions where the force field has them);
* dU/dlambda: a central finite difference of Context energies in lambda.
"""

import copy
import itertools
import math
from typing import Dict, List, Tuple, Union

import numpy as np
import pytest
import torch
import openmm
from openmm import app, unit

import openmm_ani.models
from openmm_ani.openmm.embedding import create_mixed_system

# Coulomb's constant from the CODATA 2018 exact constants (e, N_A) and eps0, independently of
# openmm_ani.units: e^2 N_A / (4 pi eps0) in J m mol^-1, then kJ nm mol^-1.
COULOMB_CONSTANT_KJ_NM_PER_MOL_E2 = (1.602176634e-19**2 * 6.02214076e23 / (4 * math.pi * 8.8541878128e-12)) * 1e9 / 1e3
from openmm_ani.openmm.potential import ANIPotential
from openmm_ani.units import HARTREE_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM, HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM

testsystems = pytest.importorskip("openmmtools.testsystems")

NM = unit.nanometer


@pytest.fixture(scope="module")
def potential() -> ANIPotential:
    return ANIPotential("ani1ccx", precision="double")


@pytest.fixture(scope="module")
def ani_reference() -> torch.nn.Module:
    return openmm_ani.models.load("ani1ccx", dtype=torch.float64)


@pytest.fixture(scope="module")
def hostguest():
    return testsystems.HostGuestExplicit()


@pytest.fixture(scope="module")
def t4():
    return testsystems.LysozymeImplicit()


def residue_atoms(topology: app.Topology, names: Tuple[str, ...]) -> List[int]:
    return [a.index for a in topology.atoms() if a.residue.name in names]


def reference_context(system: openmm.System, positions: np.ndarray) -> openmm.Context:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return context


def evaluate(system: Union[openmm.System, openmm.Context], positions: np.ndarray, parameters: Dict[str, float] = {},
             groups: int = -1):
    """Energy, forces and parameter derivatives of a System (in a new Reference Context) or of a Context.

    An interpolating System is evaluated at several lambdas in one Context: each new Context reloads
    the TorchScript model, which dominated these tests' run time.
    """
    context = system if isinstance(system, openmm.Context) else reference_context(system, positions)
    for name, value in parameters.items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True, getParameterDerivatives=bool(parameters), groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / NM)
    derivatives = dict(state.getEnergyParameterDerivatives()) if parameters else {}
    return energy, forces, derivatives


def zero_internal_bonded(system: openmm.System, ml: List[int]) -> openmm.System:
    """A copy of ``system`` with every all-ML bonded term's force constant set to zero."""
    ml_set = set(ml)
    reference = copy.deepcopy(system)
    for force in reference.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                i, j, r0, kb = force.getBondParameters(k)
                if i in ml_set and j in ml_set:
                    force.setBondParameters(k, i, j, r0, 0.0)
        elif isinstance(force, openmm.HarmonicAngleForce):
            for k in range(force.getNumAngles()):
                i, j, m, a0, ka = force.getAngleParameters(k)
                if {i, j, m} <= ml_set:
                    force.setAngleParameters(k, i, j, m, a0, 0.0)
        elif isinstance(force, openmm.PeriodicTorsionForce):
            for k in range(force.getNumTorsions()):
                i, j, m, n, per, phase, kt = force.getTorsionParameters(k)
                if {i, j, m, n} <= ml_set:
                    force.setTorsionParameters(k, i, j, m, n, per, phase, 0.0)
        elif isinstance(force, (openmm.CMAPTorsionForce, openmm.RBTorsionForce, openmm.CustomTorsionForce)):
            raise AssertionError("test reference does not handle " + type(force).__name__)
    return reference


def ml_pair_energy(system: openmm.System, positions: np.ndarray, ml: List[int]) -> Tuple[float, np.ndarray]:
    """Coulomb + LJ energy (kJ/mol) and forces of all ML-ML pairs, from NonbondedForce parameters."""
    nb = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
    exceptions = {}
    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        exceptions[(min(i, j), max(i, j))] = (qq.value_in_unit(unit.elementary_charge**2), sig.value_in_unit(NM), eps.value_in_unit(unit.kilojoule_per_mole))
    alpha = 0.0
    if nb.getNonbondedMethod() == openmm.NonbondedForce.PME:
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        alpha = nb.getPMEParametersInContext(context)[0]
        del context
    x = torch.tensor(positions, dtype=torch.float64, requires_grad=True)
    energy = torch.zeros((), dtype=torch.float64)
    for i, j in itertools.combinations(sorted(ml), 2):
        if (i, j) in exceptions:
            qq, sig, eps = exceptions[(i, j)]
        else:
            qi, si, ei = [v._value for v in nb.getParticleParameters(i)]
            qj, sj, ej = [v._value for v in nb.getParticleParameters(j)]
            qq, sig, eps = qi * qj, 0.5 * (si + sj), math.sqrt(ei * ej)
        r = torch.linalg.norm(x[i] - x[j])
        switch = torch.ones((), dtype=torch.float64)
        coulomb = 1.0 / r
        if (i, j) not in exceptions and nb.getNonbondedMethod() != openmm.NonbondedForce.NoCutoff:
            assert nb.getNonbondedMethod() == openmm.NonbondedForce.PME, "the reference handles NoCutoff and PME"
            cutoff = nb.getCutoffDistance().value_in_unit(NM)
            if float(r) >= cutoff:  # no direct-space term; the reciprocal-space part of the pair remains
                coulomb, switch = torch.erf(alpha * r) / r, torch.zeros((), dtype=torch.float64)
            elif nb.getUseSwitchingFunction():
                r_switch = nb.getSwitchingDistance().value_in_unit(NM)
                t = torch.clamp((r - r_switch) / (cutoff - r_switch), min=0.0)
                switch = 1 - t**3 * (10 - 15 * t + 6 * t**2)
        lj = 4 * eps * ((sig / r) ** 12 - (sig / r) ** 6)
        energy = energy + COULOMB_CONSTANT_KJ_NM_PER_MOL_E2 * qq * coulomb + switch * lj
    (gradient,) = torch.autograd.grad(energy, x)
    return float(energy.detach()), -gradient.numpy()


def ani_energy_forces(model: torch.nn.Module, topology: app.Topology, positions: np.ndarray, ml: List[int]):
    numbers = torch.tensor([[list(topology.atoms())[i].element.atomic_number for i in ml]])
    coords = torch.tensor(positions[ml] * NM_TO_ANGSTROM, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
    energy = model(numbers, coords)[0]
    (gradient,) = torch.autograd.grad(energy, coords)
    forces = np.zeros_like(positions)
    forces[ml] = -gradient[0].numpy() * HARTREE_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM
    return float(energy) * HARTREE_TO_KJ_PER_MOL, forces


def reference_lambda1(system, topology, positions, ml, model):
    mm_energy, mm_forces, _ = evaluate(zero_internal_bonded(system, ml), positions)
    pair_energy, pair_forces = ml_pair_energy(system, positions, ml)
    ani_energy, ani_forces = ani_energy_forces(model, topology, positions, ml)
    return mm_energy - pair_energy + ani_energy, mm_forces - pair_forces + ani_forces


def assert_close(energy, forces, ref_energy, ref_forces, rel=1e-6):
    assert abs(energy - ref_energy) <= rel * abs(ref_energy), (energy, ref_energy)
    assert np.abs(forces - ref_forces).max() <= rel * np.abs(ref_forces).max(), np.abs(forces - ref_forces).max()


def host_guest_selection(ts) -> Tuple[List[int], np.ndarray]:
    """Guest atoms plus the nearest water, shuffled: unsorted and non-contiguous."""
    positions = np.array(ts.positions.value_in_unit(NM))
    guest = residue_atoms(ts.topology, ("B2",))
    waters = [[a.index for a in r.atoms()] for r in ts.topology.residues() if r.name == "HOH"]
    spread = [max(np.linalg.norm(positions[w][:, None] - positions[guest][None], axis=-1).max(), 0) for w in waters]
    water = waters[int(np.argmin(spread))]
    ml = guest + water
    np.random.default_rng(7).shuffle(ml)
    return [int(i) for i in ml], positions


def test_lambda0_equals_mm_periodic(potential, hostguest):
    ml, positions = host_guest_selection(hostguest)
    mixed = create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml, interpolate=True)
    ref_energy, ref_forces, _ = evaluate(hostguest.system, positions)
    energy, forces, _ = evaluate(mixed, positions, {"lambda_interpolate": 0.0})
    assert_close(energy, forces, ref_energy, ref_forces)


def test_lambda0_equals_mm_alanine_dipeptide_explicit(potential):
    ts = testsystems.AlanineDipeptideExplicit()
    ml = residue_atoms(ts.topology, ("ACE", "ALA", "NME"))[::-1]
    mixed = create_mixed_system(potential.model, ts.topology, ts.system, ml, interpolate=True)
    positions = np.array(ts.positions.value_in_unit(NM))
    ref_energy, ref_forces, _ = evaluate(ts.system, positions)
    energy, forces, _ = evaluate(mixed, positions, {"lambda_interpolate": 0.0})
    assert_close(energy, forces, ref_energy, ref_forces)


def test_lambda0_and_lambda1_implicit_solvent(potential, ani_reference, t4):
    ml = residue_atoms(t4.topology, ("TMP",))
    positions = np.array(t4.positions.value_in_unit(NM))
    mixed = create_mixed_system(potential.model, t4.topology, t4.system, ml, interpolate=True)
    ref_energy, ref_forces, _ = evaluate(t4.system, positions)
    context = reference_context(mixed, positions)
    energy, forces, _ = evaluate(context, positions, {"lambda_interpolate": 0.0})
    assert_close(energy, forces, ref_energy, ref_forces)
    energy, forces, _ = evaluate(context, positions, {"lambda_interpolate": 1.0})
    ref_energy, ref_forces = reference_lambda1(t4.system, t4.topology, positions, ml, ani_reference)
    assert_close(energy, forces, ref_energy, ref_forces)


def test_lambda1_equals_reference_unsorted_noncontiguous(potential, ani_reference, hostguest):
    ml, positions = host_guest_selection(hostguest)
    assert ml != sorted(ml) and max(ml) - min(ml) + 1 > len(ml)
    ref_energy, ref_forces = reference_lambda1(hostguest.system, hostguest.topology, positions, ml, ani_reference)
    interpolating = create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml, interpolate=True)
    energy, forces, _ = evaluate(interpolating, positions, {"lambda_interpolate": 1.0})
    assert_close(energy, forces, ref_energy, ref_forces)
    plain = create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml)
    energy, forces, _ = evaluate(plain, positions)
    assert_close(energy, forces, ref_energy, ref_forces)


def test_ligand_straddling_the_box_edge(potential, ani_reference, hostguest):
    ml, positions = host_guest_selection(hostguest)
    box = np.diag([v[k].value_in_unit(NM) for k, v in enumerate(hostguest.system.getDefaultPeriodicBoxVectors())])
    # Translate everything so that the ML region's centre sits on the x = 0 box face: whole but straddling.
    shift = -positions[ml].mean(0) * np.array([1.0, 0.0, 0.0])
    moved = positions + shift
    assert moved[ml, 0].min() < 0.0 < moved[ml, 0].max()
    ref_energy, ref_forces = reference_lambda1(hostguest.system, hostguest.topology, moved, ml, ani_reference)
    mixed = create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml, forceGroup=3)
    energy, forces, _ = evaluate(mixed, moved)
    assert_close(energy, forces, ref_energy, ref_forces)
    # Wrap every ML atom into the box independently: ANI must still see the whole molecule.
    wrapped = moved.copy()
    wrapped[ml] -= np.floor(wrapped[ml] / np.diag(box)) * np.diag(box)
    assert np.ptp(wrapped[ml, 0]) > 0.5 * box[0, 0]
    ani_ref, ani_ref_forces = ani_energy_forces(ani_reference, hostguest.topology, moved, ml)
    ani_energy, ani_forces, _ = evaluate(mixed, wrapped, groups=1 << 3)
    assert_close(ani_energy, ani_forces, ani_ref, ani_ref_forces)


def test_dudlambda_matches_finite_difference(potential, hostguest):
    ml, positions = host_guest_selection(hostguest)
    mixed = create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml, interpolate=True)
    lam, h = 0.3, 1e-3
    context = reference_context(mixed, positions)
    _, _, derivatives = evaluate(context, positions, {"lambda_interpolate": lam})
    e_plus = evaluate(context, positions, {"lambda_interpolate": lam + h})[0]
    e_minus = evaluate(context, positions, {"lambda_interpolate": lam - h})[0]
    fd = (e_plus - e_minus) / (2 * h)
    assert abs(derivatives["lambda_interpolate"] - fd) <= 1e-6 * abs(fd)
    assert abs(fd) > 1.0  # the two end states differ: the derivative is not trivially zero


def test_input_system_untouched_and_constraints(potential, hostguest):
    ml, _ = host_guest_selection(hostguest)
    before = openmm.XmlSerializer.serialize(hostguest.system)
    ml_set = set(ml)

    def internal_constraints(system):
        return sum(1 for k in range(system.getNumConstraints()) if set(system.getConstraintParameters(k)[:2]) <= ml_set)

    assert internal_constraints(hostguest.system) > 0
    removed = create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml)
    kept = create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml, removeConstraints=False)
    assert openmm.XmlSerializer.serialize(hostguest.system) == before
    assert internal_constraints(removed) == 0
    assert internal_constraints(kept) == internal_constraints(hostguest.system)
    assert removed.getNumConstraints() == hostguest.system.getNumConstraints() - internal_constraints(hostguest.system)


def small_system(symbols: List[str]):
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    system = openmm.System()
    for k, symbol in enumerate(symbols):
        topology.addAtom(f"{symbol}{k}", app.Element.getBySymbol(symbol), residue)
        system.addParticle(12.0)
    return topology, system


def test_bad_input(potential):
    topology, system = small_system(["C", "Cl", "H", "S", "O"])
    with pytest.raises(ValueError, match=r"1 \(MOL:Cl1, Cl\).*3 \(MOL:S3, S\)"):
        create_mixed_system(potential.model, topology, system, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        create_mixed_system(potential.model, topology, system, [])
    with pytest.raises(ValueError, match=r"\[5, 9\] are out of range"):
        create_mixed_system(potential.model, topology, system, [0, 9, 5])
    with pytest.raises(ValueError, match=r"-1"):
        create_mixed_system(potential.model, topology, system, [-1, 0])
    with pytest.raises(ValueError, match=r"\[2\] are given more than once"):
        create_mixed_system(potential.model, topology, system, [2, 0, 2])
    with pytest.raises(ValueError, match="not an integer"):
        create_mixed_system(potential.model, topology, system, [0, 1.5])
    system.addParticle(1.0)
    with pytest.raises(ValueError, match="5 atoms but the System has 6 particles"):
        create_mixed_system(potential.model, topology, system, [0])


def test_virtual_sites_rejected(potential):
    topology, system = small_system(["O", "H", "H", "H"])
    system.setParticleMass(3, 0.0)
    system.setVirtualSite(3, openmm.ThreeParticleAverageSite(0, 1, 2, 0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match="virtual sites and extra particles cannot be ML atoms: 3"):
        create_mixed_system(potential.model, topology, system, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="virtual site 3 is defined by ML atoms"):
        create_mixed_system(potential.model, topology, system, [0, 1, 2])


def test_openmm_ml_gives_the_same_energies(potential, hostguest):
    """openmm-ml's mixed systems use TorchANI in float32 and, at lambda=0, an unswitched LJ for the
    ML-ML pairs, so they agree with ours to ~1e-3 kJ/mol at lambda=1 and ~1e-2 kJ/mol at lambda=0
    (where ours equals the MM system exactly, tested above)."""
    openmmml = pytest.importorskip("openmmml", reason="openmm-ml is not installed (not on PyPI; conda-forge only)")
    ml, positions = host_guest_selection(hostguest)
    ml_potential = openmmml.MLPotential("ani1ccx")
    theirs = ml_potential.createMixedSystem(hostguest.topology, hostguest.system, ml, interpolate=True)
    ours = create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml, interpolate=True)
    e_ours = evaluate(ours, positions, {"lambda_interpolate": 1.0})[0]
    their_context = reference_context(theirs, positions)
    assert abs(e_ours - evaluate(their_context, positions, {"lambda_interpolate": 1.0})[0]) < 1e-3
    e_plain = evaluate(ml_potential.createMixedSystem(hostguest.topology, hostguest.system, ml), positions)[0]
    assert abs(evaluate(create_mixed_system(potential.model, hostguest.topology, hostguest.system, ml), positions)[0] - e_plain) < 1e-3
    e_mm = evaluate(hostguest.system, positions)[0]
    assert abs(evaluate(their_context, positions, {"lambda_interpolate": 0.0})[0] - e_mm) < 0.05


@pytest.mark.parametrize("method", ["CutoffPeriodic", "Ewald", "CutoffNonPeriodic"])
def test_lambda0_equals_mm_other_nonbonded_methods(potential, method):
    """Reaction field (periodic and not, cutoff shorter than the ML region) and Ewald."""
    if method == "CutoffNonPeriodic":
        ts = testsystems.AlanineDipeptideVacuum()
        nb = [f for f in ts.system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
        nb.setNonbondedMethod(openmm.NonbondedForce.CutoffNonPeriodic)
        nb.setCutoffDistance(0.4)  # shorter than the molecule: some ML-ML pairs lie beyond it
        ml = list(range(ts.system.getNumParticles()))[::-1]
    else:
        ts = testsystems.AlanineDipeptideExplicit(nonbondedMethod=getattr(app, method), nonbondedCutoff=0.5 * NM)
        ml = residue_atoms(ts.topology, ("ACE", "ALA", "NME"))[::-1]
    positions = np.array(ts.positions.value_in_unit(NM))
    mixed = create_mixed_system(potential.model, ts.topology, ts.system, ml, interpolate=True)
    ref_energy, ref_forces, _ = evaluate(ts.system, positions)
    energy, forces, _ = evaluate(mixed, positions, {"lambda_interpolate": 0.0})
    assert_close(energy, forces, ref_energy, ref_forces)
