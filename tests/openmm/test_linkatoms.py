"""Link atoms: ML regions cut through covalent bonds, against openmm-ml 1.8's own results.

References, none produced by openmm_ani:
* ``tests/data/openmmml18_link_atoms.json``, written by ``scripts/openmmml18_link_reference.py``
  with openmm-ml 1.8 on OpenMM 8.6.1: the MM bonded terms it removes, its hydrogen caps (virtual
  sites), the MM part of its mixed System (exact) and its ANI part (TorchANI in float32);
* the float64 PyTorch model (``openmm_ani.models.load``) evaluated on the ML atoms plus
  openmm-ml's cap positions (the ANI part to 1e-9);
* the MM System at lambda = 0; central finite differences of energies for forces (openmm-ml
  1.8's ANI forces are 10x too small, so its forces are not used).
"""

import contextlib
import io
import json
import os
from collections import Counter
from typing import Dict, List, Union

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

import openmm_ani.models
from openmm_ani.openmm.embedding import create_mixed_system
from openmm_ani.openmm.embedding.linkatoms import create_link_atom_module, find_link_bonds
from openmm_ani.openmm.potential import ANIPotential
from openmm_ani.units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM

from finite_differences import numeric_force
from paths import DATA_DIR

with contextlib.redirect_stdout(io.StringIO()):  # pymbar's import banner
    testsystems = pytest.importorskip("openmmtools.testsystems")

NM = unit.nanometer
KJ = unit.kilojoule_per_mole
REFERENCE = os.path.join(DATA_DIR, "openmmml18_link_atoms.json")
#: openmm-ml 1.8's ANI energies (TorchANI, float32 networks) agree with ours to 4e-10 relative: mostly
#: TorchANI's hartree -> kJ/mol factor 2625.499638 against CODATA 2018's 2625.49963948 (5.6e-10).
FLOAT32_REL = 2e-9


@pytest.fixture(scope="module")
def reference() -> Dict:
    with open(REFERENCE, encoding="utf-8") as stream:
        return json.load(stream)


@pytest.fixture(scope="module")
def potential() -> ANIPotential:
    return ANIPotential("ani1ccx", precision="double")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return openmm_ani.models.load("ani1ccx", dtype=torch.float64)


SYSTEMS = {
    "AlanineDipeptideVacuum": lambda: testsystems.AlanineDipeptideVacuum(),
    "AlanineDipeptideExplicit": lambda: testsystems.AlanineDipeptideExplicit(),
    "LysozymeImplicit": lambda: testsystems.LysozymeImplicit(implicitSolvent=None),
}


def load_case(reference: Dict, name: str):
    case = reference["cases"][name]
    with contextlib.redirect_stdout(io.StringIO()):
        ts = SYSTEMS[case["testsystem"]]()
    positions = np.array(ts.positions.value_in_unit(NM))
    for index, xyz in case["positions_nm"].items():  # the structure openmm-ml saw
        np.testing.assert_array_equal(positions[int(index)], xyz)
    return case, ts, positions


def reference_context(system: openmm.System, positions: np.ndarray) -> openmm.Context:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions * NM)
    return context


def evaluate(system: Union[openmm.System, openmm.Context], positions: np.ndarray, groups: int = -1,
             parameters: Dict[str, float] = {}):
    """Energy (kJ/mol) and forces (kJ/mol/nm) of a System (in a new Reference Context) or of a Context."""
    context = system if isinstance(system, openmm.Context) else reference_context(system, positions)
    for name, value in parameters.items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(KJ / NM)


def bonded_terms(system: openmm.System) -> Dict[str, Counter]:
    terms: Dict[str, Counter] = {}
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            found = [force.getBondParameters(k)[:2] for k in range(force.getNumBonds())]
        elif isinstance(force, openmm.HarmonicAngleForce):
            found = [force.getAngleParameters(k)[:3] for k in range(force.getNumAngles())]
        elif isinstance(force, openmm.PeriodicTorsionForce):
            found = [force.getTorsionParameters(k)[:4] for k in range(force.getNumTorsions())]
        else:
            continue
        terms.setdefault(type(force).__name__, Counter()).update(tuple(t) for t in found)
    return terms


def cap_distances(case: Dict) -> List:
    return [tuple(entry) for entry in case["link_atom_distances_nm"]]


def ani_energy(model: torch.nn.Module, numbers: List[int], positions_nm: np.ndarray) -> float:
    x = torch.tensor(positions_nm * NM_TO_ANGSTROM, dtype=torch.float64).unsqueeze(0)
    with torch.no_grad():
        return float(model(torch.tensor([numbers]), x)[0]) * HARTREE_TO_KJ_PER_MOL


CASES = ["dipeptide-vacuum", "dipeptide-vacuum-distance", "dipeptide-explicit-pme", "t4-side-chains-vacuum"]


@pytest.mark.parametrize("name", CASES)
def test_same_mm_terms_removed_as_openmmml18(reference, potential, name):
    case, ts, _ = load_case(reference, name)
    mixed = potential.createMixedSystem(ts.topology, ts.system, case["ml_atoms"], linkAtomDistances=cap_distances(case))
    before, after = bonded_terms(ts.system), bonded_terms(mixed)
    for force, removed in case["removed_terms"].items():
        assert before[force] - after[force] == Counter(tuple(t) for t in removed), force
    assert sum(len(v) for v in case["removed_terms"].values()) > 0


@pytest.mark.parametrize("name", CASES)
def test_caps_and_energies_match_openmmml18(reference, potential, model, name):
    case, ts, positions = load_case(reference, name)
    ml = case["ml_atoms"]
    links = find_link_bonds(ts.topology, ml, cap_distances(case))
    assert [[link.ml_atom, link.mm_atom] for link in links] == case["link_bonds"]
    mixed = potential.createMixedSystem(ts.topology, ts.system, ml, forceGroup=1, linkAtomDistances=cap_distances(case))
    assert mixed.getNumParticles() == ts.system.getNumParticles()  # caps are not particles
    caps = np.array(case["mixed"]["caps_nm"])
    numbers = [list(ts.topology.atoms())[i].element.atomic_number for i in ml]
    periodic = ts.system.usesPeriodicBoundaryConditions()
    module = create_link_atom_module(potential.model, numbers, ml, links, len(positions), periodic)
    box = torch.tensor(np.array([list(v.value_in_unit(NM)) for v in ts.system.getDefaultPeriodicBoxVectors()]))
    ours = module.cap_positions(torch.tensor(positions), box if periodic else None).numpy()
    np.testing.assert_allclose(ours, caps, rtol=0, atol=1e-12)
    numbers += [1] * len(links)
    mm_energy, _ = evaluate(mixed, positions, groups=1 << 0)
    ani, _ = evaluate(mixed, positions, groups=1 << 1)
    total, _ = evaluate(mixed, positions)
    # MM part: exactly openmm-ml's (same force field terms kept). With PME, openmm-ml's two cap particles
    # (zero charge and epsilon) enter the NonbondedForce's dispersion correction: 4.3e-5 kJ/mol here.
    periodic_offset = 1e-4 if periodic else 1e-7
    assert mm_energy == pytest.approx(case["mixed"]["mm"], rel=1e-12, abs=periodic_offset)
    # ANI part: the float64 model on the ML atoms + openmm-ml's caps, then openmm-ml's float32 number
    assert ani == pytest.approx(ani_energy(model, numbers, np.concatenate([positions[ml], caps])), rel=1e-11)
    assert ani == pytest.approx(case["mixed"]["ani"], rel=FLOAT32_REL)
    assert total == pytest.approx(case["mixed"]["total"], rel=FLOAT32_REL)


@pytest.mark.parametrize("name", ["dipeptide-vacuum", "t4-side-chains-vacuum"])
def test_interpolation_with_link_atoms(reference, potential, name):
    case, ts, positions = load_case(reference, name)
    mixed = potential.createMixedSystem(ts.topology, ts.system, case["ml_atoms"], interpolate=True)
    mm_energy, mm_forces = evaluate(ts.system, positions)
    context = reference_context(mixed, positions)  # one Context for every lambda (each new one reloads the model)
    energy, forces = evaluate(context, positions, parameters={"lambda_interpolate": 0.0})
    assert energy == pytest.approx(mm_energy, rel=1e-12, abs=1e-8)  # exactly the MM System
    np.testing.assert_allclose(forces, mm_forces, rtol=0, atol=1e-8 * np.abs(mm_forces).max())
    assert case["mm_energy"] == pytest.approx(mm_energy, rel=1e-12, abs=1e-8)
    for value, theirs in case["interpolated"]["lambda"].items():
        ours, _ = evaluate(context, positions, parameters={"lambda_interpolate": float(value)})
        # openmm-ml's ML-ML Coulomb uses 138.935456 (ours CODATA 2018): 1e-8 relative of the pair energies
        assert ours == pytest.approx(theirs, rel=FLOAT32_REL, abs=1e-5), value


def finite_difference(system: openmm.System, positions: np.ndarray, components, groups: int = -1, h: float = 1e-5) -> None:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions * NM)
    forces = context.getState(getForces=True, groups=groups).getForces(asNumpy=True).value_in_unit(KJ / NM)
    for atom, axis in components:
        numeric = numeric_force(context, positions, atom, axis, h, groups)
        assert forces[atom, axis] == pytest.approx(numeric, rel=1e-5, abs=1e-3), (atom, axis)


def test_cap_forces_reach_both_bond_atoms(reference, potential):
    """The cap sits on the ML-MM bond: its force must be carried to both atoms (chain rule)."""
    case, ts, positions = load_case(reference, "dipeptide-vacuum")
    mixed = potential.createMixedSystem(ts.topology, ts.system, case["ml_atoms"], forceGroup=1)
    _, forces = evaluate(mixed, positions, groups=1 << 1)
    outside = [i for i in range(len(positions)) if i not in case["ml_atoms"] and i not in (4, 16)]
    assert np.abs(forces[[4, 16]]).max(axis=1).min() > 1.0  # both MM link atoms feel their caps
    assert np.abs(forces[outside]).max() == 0.0
    # MM link atoms (4, 16), ML link atoms (6, 14), and an ML atom away from the cuts (11)
    finite_difference(mixed, positions, [(4, 0), (4, 2), (16, 1), (6, 0), (14, 2), (11, 1)], groups=1 << 1)
    finite_difference(mixed, positions, [(4, 1), (16, 0), (6, 2)])


def test_periodic_caps_use_the_minimum_image(reference, potential):
    """Wrap each atom into the box separately, with the dipeptide across a box face: the ANI part stays."""
    case, ts, positions = load_case(reference, "dipeptide-explicit-pme")
    mixed = potential.createMixedSystem(ts.topology, ts.system, case["ml_atoms"], forceGroup=1)
    box = np.diag([v[k].value_in_unit(NM) for k, v in enumerate(ts.system.getDefaultPeriodicBoxVectors())])
    whole = positions - positions[6] + np.array([0.0, 0.5, 0.5]) * np.diag(box)  # ALA N on the x = 0 face
    wrapped = whole - np.floor(whole / np.diag(box)) * np.diag(box)
    dipeptide = list(range(22))
    assert np.ptp(wrapped[dipeptide, 0]) > 0.5 * box[0, 0]  # the molecule is split across the box
    reference_energy, reference_forces = evaluate(mixed, whole, groups=1 << 1)
    energy, forces = evaluate(mixed, wrapped, groups=1 << 1)
    assert energy == pytest.approx(case["mixed"]["ani"], rel=FLOAT32_REL)
    assert energy == pytest.approx(reference_energy, abs=1e-6)
    np.testing.assert_allclose(forces, reference_forces, atol=1e-6)
    finite_difference(mixed, wrapped, [(4, 0), (16, 0), (6, 0)])


def test_link_atoms_with_implicit_solvent(reference, potential, model):
    """openmm-ml 1.8 cannot build this System (its caps are missing from CustomGBForce); here lambda = 0
    is the MM System and the ANI part equals openmm-ml's vacuum result on the same atoms."""
    assert "CustomGBForce" in reference["notes"]["t4-side-chains-gb"]
    case, _, positions = load_case(reference, "t4-side-chains-vacuum")
    with contextlib.redirect_stdout(io.StringIO()):
        ts = testsystems.LysozymeImplicit()
    assert any(isinstance(f, openmm.CustomGBForce) for f in ts.system.getForces())
    mixed = potential.createMixedSystem(ts.topology, ts.system, case["ml_atoms"], interpolate=True, forceGroup=1)
    mm_energy, _ = evaluate(ts.system, positions)
    assert evaluate(mixed, positions, parameters={"lambda_interpolate": 0.0})[0] == pytest.approx(mm_energy, rel=1e-12)
    plain = potential.createMixedSystem(ts.topology, ts.system, case["ml_atoms"], forceGroup=1)
    assert evaluate(plain, positions, groups=1 << 1)[0] == pytest.approx(case["mixed"]["ani"], rel=FLOAT32_REL)


def test_distance_override_units(reference, potential):
    case, ts, positions = load_case(reference, "dipeptide-vacuum-distance")
    in_angstrom = [(6, 4, 1.0 * unit.angstrom)]  # either atom order, a Quantity
    mixed = potential.createMixedSystem(ts.topology, ts.system, case["ml_atoms"], forceGroup=1, linkAtomDistances=in_angstrom)
    assert evaluate(mixed, positions, groups=1 << 1)[0] == pytest.approx(case["mixed"]["ani"], rel=FLOAT32_REL)
    default = reference["cases"]["dipeptide-vacuum"]["mixed"]["ani"]
    assert abs(case["mixed"]["ani"] - default) > 1.0  # the override changes the energy: the check can fail


def without_bonds(topology: app.Topology) -> app.Topology:
    bare = app.Topology()
    chain = bare.addChain()
    for residue in topology.residues():
        new = bare.addResidue(residue.name, chain)
        for atom in residue.atoms():
            bare.addAtom(atom.name, atom.element, new)
    return bare


def test_bad_link_atom_input(potential):
    with contextlib.redirect_stdout(io.StringIO()):
        ts = testsystems.AlanineDipeptideVacuum()
    ala = [a.index for a in ts.topology.atoms() if a.residue.name == "ALA"]
    with pytest.raises(ValueError, match=r"names bonds \[\(6, 8\)\] that are not bonds between an ML and an MM atom"):
        potential.createMixedSystem(ts.topology, ts.system, ala, linkAtomDistances=[(6, 8, 0.1)])
    with pytest.raises(ValueError, match=r"bond \(4, 6\) has unit kilojoule/mole, not a length"):
        potential.createMixedSystem(ts.topology, ts.system, ala, linkAtomDistances=[(4, 6, 1.0 * KJ)])
    with pytest.raises(ValueError, match=r"bond \(4, 6\) is -0.1 nm"):
        potential.createMixedSystem(ts.topology, ts.system, ala, linkAtomDistances=[(4, 6, -0.1)])
    with pytest.raises(ValueError, match=r"MM atom 4 is bonded to ML atoms \[1, 6\]"):
        potential.createMixedSystem(ts.topology, ts.system, [0, 1, 2, 3] + ala)
    with pytest.raises(ValueError, match=r"System bonds ML atoms to MM atoms \[\(4, 6\), \(14, 16\)\]"):
        potential.createMixedSystem(without_bonds(ts.topology), ts.system, ala)
