"""Bad input at the OpenMM boundary (issue 9): atom indices, translation invariance in single
precision, regions that cannot be made whole, virtual sites outside the ML region.

References, none produced by the code under test:
* the same molecule at the origin (translation invariance: a potential energy does not depend
  on where the molecule sits, so the translated copy must give the untranslated numbers);
* the float64 PyTorch model of :func:`openmm_ani.models.load` on the whole molecule, and a
  made-whole copy built here with NumPy (periodic regions);
* the MM System evaluated by OpenMM with the ML-internal bonded terms zeroed, minus the ML-ML
  nonbonded pair energies summed here with NumPy from the ``NonbondedForce`` parameters, plus
  the ANI energy of the solute (virtual sites).
"""

import contextlib
import io
import itertools
import math
import os
import subprocess
import sys
from typing import List, Tuple

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

import openmm_ani
from openmm_ani.openmm.potential import ANIPotential
from openmm_ani.units import HARTREE_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM, HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM

from openmm_inputs import LIGAND_PDB

NM = unit.nanometer
KJ = unit.kilojoule_per_mole
#: Coulomb's constant from the CODATA 2018 exact constants and eps0 (kJ nm mol^-1 e^-2), independent of openmm_ani.units.
COULOMB = (1.602176634e-19**2 * 6.02214076e23 / (4 * math.pi * 8.8541878128e-12)) * 1e9 / 1e3


@pytest.fixture(scope="module")
def single() -> ANIPotential:
    return ANIPotential("ani1ccx", precision="single")


@pytest.fixture(scope="module")
def double() -> ANIPotential:
    return ANIPotential("ani1ccx", precision="double")


@pytest.fixture(scope="module")
def ligand() -> Tuple[np.ndarray, List[int]]:
    pdb = app.PDBFile(LIGAND_PDB)
    return np.array(pdb.positions.value_in_unit(NM)), [a.element.atomic_number for a in pdb.topology.atoms()]


def system_for(force, num_particles: int, box=None) -> openmm.System:
    system = openmm.System()
    for _ in range(num_particles):
        system.addParticle(12.0)
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    system.addForce(force)
    return system


def context_for(force, num_particles: int, box=None, platform: str = "CPU", system=None) -> openmm.Context:
    system = system_for(force, num_particles, box) if system is None else system
    properties = {"Threads": "1"} if platform == "CPU" else {}
    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform), properties)


def energy_forces(context: openmm.Context, positions: np.ndarray) -> Tuple[float, np.ndarray]:
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(KJ / NM)


def reference_energy_forces(numbers: List[int], positions_nm: np.ndarray) -> Tuple[float, np.ndarray]:
    """Ensemble energy (kJ/mol) and forces (kJ/mol/nm) of the float64 PyTorch model."""
    model = openmm_ani.models.load("ani1ccx", dtype=torch.float64)
    x = torch.tensor(positions_nm * NM_TO_ANGSTROM, dtype=torch.float64)[None].requires_grad_(True)
    energy = model(torch.tensor([numbers]), x)[0]
    (gradient,) = torch.autograd.grad(energy, x)
    return float(energy) * HARTREE_TO_KJ_PER_MOL, -gradient[0].numpy() * HARTREE_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM


# ---------------------------------------------------------------------------------------------------------------
# item 5: atom indices of createForce
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("atoms, message", [
    ([-1] + list(range(1, 18)), r"\[-1\] are out of range"),
    (list(range(17)) + [3], r"\[3\] are given more than once"),
    (list(range(17)) + [17.0], r"17\.0 is not an integer"),
    (list(range(17)) + [True], r"True is not an integer"),
])
def test_create_force_rejects_bad_indices(single, ligand, atoms, message):
    """The old code accepted these: NaN energies, and a second Context on such a force segfaulted."""
    _, numbers = ligand
    with pytest.raises(ValueError, match=message):
        single.createForce(numbers, atoms=atoms)


def test_index_beyond_the_system_is_a_clear_error(single, ligand):
    positions, numbers = ligand
    force = single.createForce(numbers, atoms=list(range(17)) + [40])
    context = context_for(force, 20)
    with pytest.raises(openmm.OpenMMException, match="ML atom index 40 is out of range for a System of 20 particles"):
        energy_forces(context, np.vstack([positions, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]]))


def test_second_context_on_a_valid_force(single, ligand):
    """Two Contexts on one force with shuffled, non-contiguous indices give the same, correct energy."""
    positions, numbers = ligand
    atoms = [2 * i + 1 for i in range(18)][::-1]
    full = np.zeros((40, 3))
    full[atoms] = positions
    full[[i for i in range(40) if i not in atoms]] = 5.0 + np.arange(22)[:, None]  # far away, not ML
    system = system_for(single.createForce(numbers, atoms=atoms), 40)
    first = energy_forces(context_for(None, 40, system=system), full)
    second = energy_forces(context_for(None, 40, system=system), full)
    reference, reference_forces = reference_energy_forces(numbers, positions)
    for energy, forces in (first, second):
        assert energy == pytest.approx(reference, abs=1e-3)  # float32 networks, float64 self energies
        assert np.abs(forces[atoms] - reference_forces).max() < 0.02  # float32 noise: 8e-3 kJ/mol/nm
        assert np.abs(np.delete(forces, atoms, axis=0)).max() == 0.0


# ---------------------------------------------------------------------------------------------------------------
# item 8: single precision does not depend on where the molecule sits
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance_nm", [10.0, 100.0])
def test_single_precision_translation_invariance(single, double, ligand, distance_nm):
    """The old code cast absolute coordinates to float32: forces moved by 0.57 (10 nm) and 4.9 kJ/mol/nm (100 nm).

    Coordinates are now taken relative to the first ML atom in float64, so the float32 inputs of the
    model are the same numbers wherever the molecule sits, up to float64 rounding of the shifted
    coordinates (1e-14 nm at 100 nm), which can flip the last float32 bit of a coordinate. Measured
    over 20 random directions: energy differences 0, force differences <= 1.1e-3 kJ/mol/nm. The
    bound for the forces is the error single precision has anyway at the origin (float32 vs float64
    model: 7e-3 to 8e-3 kJ/mol/nm here); translation may not add more. The energy bound, 1e-4 kJ/mol,
    is below the old code's errors (1.9e-3 and 1.1e-2 kJ/mol; forces 0.57 and 4.9 kJ/mol/nm).
    """
    positions, numbers = ligand
    context = context_for(single.createForce(numbers), len(numbers))
    energy, forces = energy_forces(context, positions)
    reference = context_for(double.createForce(numbers), len(numbers), platform="Reference")
    double_energy, double_forces = energy_forces(reference, positions)
    single_error = np.abs(forces - double_forces).max()
    assert 1e-4 < single_error < 0.02 and abs(energy - double_energy) < 1e-3
    moved_energy, moved_forces = energy_forces(context, positions + np.array([0.6, -0.48, 0.64]) * distance_nm)
    assert abs(moved_energy - energy) < 1e-4
    assert np.abs(moved_forces - forces).max() <= single_error


# ---------------------------------------------------------------------------------------------------------------
# item 9: regions that cannot be made whole, and the anchor of the ones that can
# ---------------------------------------------------------------------------------------------------------------


def boxed_ligand(positions: np.ndarray, edge: float) -> Tuple[np.ndarray, np.ndarray]:
    """The ligand centred in a cubic box plus one non-ML particle at a corner: (positions [19, 3], box)."""
    x = positions - positions.mean(0) + edge / 2
    return np.vstack([x, [[0.05, 0.05, 0.05]]]), np.eye(3) * edge


def test_region_spanning_half_the_box_is_an_error(single, ligand):
    """0.85 nm box: p-xylene spans 0.53-0.72 of each box vector. The old code gave an energy 174 kJ/mol off."""
    positions, numbers = ligand
    x, box = boxed_ligand(positions, 0.85)
    force = single.createForce(numbers, atoms=list(range(18)), make_whole=True)
    with pytest.raises(openmm.OpenMMException, match="the ML region spans fractions .* less than half the box"):
        energy_forces(context_for(force, 19, box), x)


@pytest.mark.parametrize("first", [0, 7, 12])  # a C first, an H first, another H
def test_made_whole_region_equals_the_whole_molecule(double, ligand, first):
    """A 2.0 nm box; the ligand straddles a corner and each ML atom is wrapped into the box on its own.

    Whatever atom is listed first, ANI sees the whole molecule: energy and forces equal the float64
    model's on the unwrapped coordinates.
    """
    positions, numbers = ligand
    edge = 2.0
    x = positions - positions.mean(0)  # centred on the box corner (0, 0, 0)
    wrapped = x - np.floor(x / edge) * edge
    assert np.ptp(wrapped, axis=0).min() > 0.5 * edge  # genuinely broken across all three faces
    order = [first] + [i for i in range(18) if i != first]
    full = np.vstack([wrapped, [[1.0, 1.0, 1.0]]])
    force = double.createForce([numbers[i] for i in order], atoms=order, make_whole=True)
    energy, forces = energy_forces(context_for(force, 19, np.eye(3) * edge, "Reference"), full)
    reference, reference_forces = reference_energy_forces(numbers, x)
    assert energy == pytest.approx(reference, abs=1e-6 * abs(reference))
    assert np.abs(forces[:18] - reference_forces).max() < 1e-6 * np.abs(reference_forces).max()


# ---------------------------------------------------------------------------------------------------------------
# item 11: virtual sites outside the ML region (TIP4P-Ew water)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dipeptide_tip4pew():
    """Alanine dipeptide in TIP4P-Ew water (openmmtools' box, extra particles added by Modeller)."""
    with contextlib.redirect_stdout(io.StringIO()):  # pymbar's import banner
        from openmmtools import testsystems
    ts = testsystems.AlanineDipeptideExplicit()
    modeller = app.Modeller(ts.topology, ts.positions)
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip4pew.xml")
    modeller.addExtraParticles(forcefield)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * NM,
                                     constraints=app.HBonds)
    positions = np.array(modeller.positions.value_in_unit(NM))
    ml = [a.index for a in modeller.topology.atoms() if a.residue.name in ("ACE", "ALA", "NME")]
    return modeller.topology, system, positions, ml


def reference_energy(system: openmm.System, positions: np.ndarray) -> Tuple[float, np.ndarray]:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(KJ / NM)


def without_internal_bonded(system: openmm.System, ml: List[int]) -> openmm.System:
    """A copy (XML round trip) of ``system`` with every bonded term among ML atoms switched off."""
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    inside = set(ml)
    for force in copy.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                i, j, r0, _ = force.getBondParameters(k)
                if {i, j} <= inside:
                    force.setBondParameters(k, i, j, r0, 0.0)
        elif isinstance(force, openmm.HarmonicAngleForce):
            for k in range(force.getNumAngles()):
                i, j, m, a0, _ = force.getAngleParameters(k)
                if {i, j, m} <= inside:
                    force.setAngleParameters(k, i, j, m, a0, 0.0)
        elif isinstance(force, openmm.PeriodicTorsionForce):
            for k in range(force.getNumTorsions()):
                i, j, m, n, periodicity, phase, _ = force.getTorsionParameters(k)
                if {i, j, m, n} <= inside:
                    force.setTorsionParameters(k, i, j, m, n, periodicity, phase, 0.0)
        elif not isinstance(force, (openmm.NonbondedForce, openmm.CMMotionRemover)):
            raise AssertionError("the reference does not handle " + type(force).__name__)
    return copy


def ml_pair_energy_forces(system: openmm.System, positions: np.ndarray, ml: List[int]) -> Tuple[float, np.ndarray]:
    """Coulomb + LJ energy and forces of the ML-ML pairs as the PME NonbondedForce counts them.

    Every pair lies within the cutoff (checked), so a non-excluded pair contributes the full
    q_i q_j / r (direct erfc + reciprocal erf) and plain LJ (no switch); an exception contributes
    its own parameters.
    """
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nb.getNonbondedMethod() == openmm.NonbondedForce.PME and not nb.getUseSwitchingFunction()
    cutoff = nb.getCutoffDistance().value_in_unit(NM)
    exceptions = {}
    for k in range(nb.getNumExceptions()):
        i, j, qq, sigma, epsilon = nb.getExceptionParameters(k)
        exceptions[(min(i, j), max(i, j))] = (qq.value_in_unit(unit.elementary_charge**2), sigma.value_in_unit(NM),
                                              epsilon.value_in_unit(KJ))
    energy, forces = 0.0, np.zeros_like(positions)
    for i, j in itertools.combinations(sorted(ml), 2):
        if (i, j) in exceptions:
            qq, sigma, epsilon = exceptions[(i, j)]
        else:
            qi, si, ei = [v.value_in_unit(u) for v, u in zip(nb.getParticleParameters(i), (unit.elementary_charge, NM, KJ))]
            qj, sj, ej = [v.value_in_unit(u) for v, u in zip(nb.getParticleParameters(j), (unit.elementary_charge, NM, KJ))]
            qq, sigma, epsilon = qi * qj, 0.5 * (si + sj), math.sqrt(ei * ej)
        d = positions[i] - positions[j]
        r = float(np.linalg.norm(d))
        assert r < cutoff
        s6 = (sigma / r) ** 6
        energy += COULOMB * qq / r + 4 * epsilon * (s6 * s6 - s6)
        # F_i = -dU/dr * d / r
        du_dr = -COULOMB * qq / r**2 + 4 * epsilon * (-12 * s6 * s6 + 6 * s6) / r
        forces[i] -= du_dr * d / r
        forces[j] += du_dr * d / r
    return energy, forces


def test_virtual_sites_outside_the_ml_region(double, dipeptide_tip4pew):
    """The old code raised ``TypeError: cannot pickle 'SwigPyObject'`` (deep copy of a VirtualSite)."""
    topology, system, positions, ml = dipeptide_tip4pew
    sites = [i for i in range(system.getNumParticles()) if system.isVirtualSite(i)]
    assert len(sites) > 600 and not set(sites) & set(ml)
    mixed = double.createMixedSystem(topology, system, ml)
    assert [i for i in range(mixed.getNumParticles()) if mixed.isVirtualSite(i)] == sites
    energy, forces = reference_energy(mixed, positions)
    mm_energy, mm_forces = reference_energy(without_internal_bonded(system, ml), positions)
    pair_energy, pair_forces = ml_pair_energy_forces(system, positions, ml)
    numbers = [list(topology.atoms())[i].element.atomic_number for i in ml]
    ani_energy, ani_forces_ml = reference_energy_forces(numbers, positions[ml])
    ani_forces = np.zeros_like(positions)
    ani_forces[ml] = ani_forces_ml
    expected = mm_energy - pair_energy + ani_energy
    expected_forces = mm_forces - pair_forces + ani_forces
    assert energy == pytest.approx(expected, abs=1e-6 * abs(expected))
    assert np.abs(forces - expected_forces).max() < 1e-6 * np.abs(expected_forces).max()


# ---------------------------------------------------------------------------------------------------------------
# item 16: non-finite positions are errors, not NaN energies
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform, value, message", [
    ("CPU", np.inf, r"positions of ML atoms \[4\] are NaN or infinite"),
    ("Reference", np.inf, r"positions of ML atoms \[4\] are NaN or infinite"),
    ("Reference", np.nan, r"positions of ML atoms \[4\] are NaN or infinite"),
    ("CPU", np.nan, r"Particle coordinate is NaN"),  # OpenMM's CPU platform checks NaN itself
])
def test_non_finite_positions_are_errors(single, ligand, platform, value, message):
    """The old code returned a NaN energy for inf positions on CPU and NaN positions on Reference."""
    positions, numbers = ligand
    moved = positions.copy()
    moved[4, 1] = value
    context = context_for(single.createForce(numbers), 18, platform=platform)
    with pytest.raises(openmm.OpenMMException, match=message):
        energy_forces(context, moved)


SMALL_BOX_SCRIPT = """
import sys
import numpy as np
import openmm
from openmm import app, unit
from openmm_ani.openmm.potential import ANIPotential

platform, edge, later = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "later"
topology = app.Topology()
residue = topology.addResidue("HOH", topology.addChain())
for symbol in "OHH":
    topology.addAtom(symbol, app.Element.getBySymbol(symbol), residue)
topology.setPeriodicBoxVectors(np.eye(3) * (2.0 if later else edge) * unit.nanometer)
system = ANIPotential("ani1ccx").createSystem(topology)
context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
context.setPositions([[0, 0, 0], [0.0957, 0, 0], [-0.024, 0.0927, 0]] * unit.nanometer)
if later:  # a box that shrinks during a run (e.g. under a barostat)
    context.getState(getEnergy=True)
    context.setPeriodicBoxVectors(*(np.eye(3) * edge))
try:
    context.getState(getEnergy=True, getForces=True)
except openmm.OpenMMException as error:
    print(str(error).strip().splitlines()[-1])
"""


@pytest.mark.parametrize("platform, later", [("CPU", False), ("Reference", False), ("CPU", True)])
def test_pure_ani_box_too_small_is_an_error_not_a_crash(tmp_path, platform, later):
    """A pure ANI box narrower than twice the cutoff (0.85 nm < 1.04 nm). openmm-torch freezes the module, and
    an error raised deep inside a frozen module crashed torch's error report (segmentation fault); the box
    check now runs where the report works. A child process, so that a crash fails this test only."""
    script = tmp_path / "small_box.py"
    script.write_text(SMALL_BOX_SCRIPT)
    child = subprocess.run([sys.executable, str(script), platform, "0.85", "later" if later else "now"],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])
    assert "periodic box is too small: its perpendicular widths are [8.5, 8.5, 8.5]" in child.stdout, child.stdout
