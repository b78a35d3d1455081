"""openmm-ml integration: the ``openmmml.potentials`` entry points, energies through
``openmmml.MLPotential`` equal to ANIPotential's and to openmm-ml's own TorchANI-based ``ani1ccx``;
mixed systems through openmm-ml's mechanical embedding (interpolation included) equal to ours."""

import contextlib
import importlib.metadata
import io

import numpy as np
import openmm
import pytest
from openmm import app, unit
from packaging.version import Version

import openmm_ani

from openmm_inputs import COMPLEX_CRD, COMPLEX_PRMTOP, ligand_pdb, small_waterbox

with contextlib.redirect_stdout(io.StringIO()):
    openmmml = pytest.importorskip("openmmml", reason="openmm-ml (PyPI: openmmml, in the test extra) not installed")

OUR_NAMES = {"ani1ccx-openmm-ani", "ani1x-openmm-ani", "openmm-ani"}


def energy(system, positions):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def test_entry_points_registered_without_clashes():
    points = importlib.metadata.entry_points(group="openmmml.potentials")
    ours = {p.name for p in points if p.value.startswith("openmm_ani.")}
    assert ours == OUR_NAMES
    builtin = {p.name for p in importlib.metadata.distribution("openmmml").entry_points
               if p.group == "openmmml.potentials"}
    assert "ani1ccx" in builtin and not (builtin & OUR_NAMES)
    assert OUR_NAMES <= set(openmmml.MLPotential._implFactories)


@pytest.mark.parametrize("precision", ["single", "double"])
def test_mlpotential_equals_anipotential(precision):
    pdb = ligand_pdb()
    ours = energy(openmm_ani.ANIPotential("ani1ccx", precision=precision).createSystem(pdb.topology), pdb.positions)
    via = energy(openmmml.MLPotential("ani1ccx-openmm-ani", precision=precision).createSystem(pdb.topology),
                 pdb.positions)
    assert via == ours
    single_member = openmmml.MLPotential("ani1x-openmm-ani", modelIndex=3, precision=precision)
    reference = openmm_ani.ANIPotential("ani1x", model_index=3, precision=precision)
    assert energy(single_member.createSystem(pdb.topology), pdb.positions) == energy(
        reference.createSystem(pdb.topology), pdb.positions)


def test_mlpotential_periodic_water():
    topology, positions, _ = small_waterbox()
    x = positions * unit.nanometer
    ours = energy(openmm_ani.ANIPotential(precision="double").createSystem(topology), x)
    via = energy(openmmml.MLPotential("ani1ccx-openmm-ani", precision="double").createSystem(topology), x)
    assert via == pytest.approx(ours, abs=1e-6)


def test_matches_openmmml_builtin_torchani_ani1ccx():
    pytest.importorskip("torchani", reason="openmm-ml's built-in ani1ccx needs TorchANI (scripts/setup_test_reference.py)")
    pdb = ligand_pdb()
    ours = energy(openmmml.MLPotential("ani1ccx-openmm-ani", precision="double").createSystem(pdb.topology),
                  pdb.positions)
    with contextlib.redirect_stdout(io.StringIO()):
        builtin = energy(openmmml.MLPotential("ani1ccx").createSystem(pdb.topology), pdb.positions)
    # openmm-ml runs TorchANI 2.2.4 in float64, the independent implementation of the same published model;
    # it converts Ha -> kJ/mol with 2625.499638 (TorchANI's constant) where openmm-ani uses CODATA 2018's
    # 2625.49963948: 5.5e-10 relative, 4.5e-4 kJ/mol here
    assert ours == pytest.approx(builtin, rel=2e-9)
    assert ours / builtin == pytest.approx(2625.4996394798254 / 2625.499638, abs=1e-10)
    assert abs(ours) > 1e5


@pytest.fixture(scope="module")
def t4_complex():
    prmtop = app.AmberPrmtopFile(COMPLEX_PRMTOP)
    positions = app.AmberInpcrdFile(COMPLEX_CRD).positions
    mm = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds, implicitSolvent=app.OBC2)
    ligand = [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
    return prmtop.topology, mm, positions, ligand


def evaluate(system, positions, lam=None):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    if lam is not None:
        context.setParameter("lambda_interpolate", lam)
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def test_mixed_system_through_openmmml_mechanical_embedding(t4_complex):
    topology, mm, positions, ligand = t4_complex
    ours = openmm_ani.ANIPotential(precision="double").createMixedSystem(topology, mm, ligand)
    via = openmmml.MLPotential("ani1ccx-openmm-ani", precision="double").createMixedSystem(topology, mm, ligand)
    (e_via, f_via), (e_ours, f_ours) = evaluate(via, positions), evaluate(ours, positions)
    assert e_via == pytest.approx(e_ours, rel=1e-12)
    np.testing.assert_allclose(f_via, f_ours, rtol=0, atol=1e-8 * np.abs(f_ours).max())


def test_interpolation_through_openmmml_equals_ours(t4_complex):
    """openmm-ml deep-copies the TorchForce into its CustomCVForce (a segfault on OpenMM 8.6 with the
    openmmtorch 1.5 wheel). With NoCutoff (+ GB) its ML-ML Coulomb/LJ terms are ours; it writes Coulomb's
    constant as 138.935456 (ours CODATA 2018, 1.2e-8 relative): ~1e-5 kJ/mol on ~1e3 kJ/mol of ML-ML pairs."""
    topology, mm, positions, ligand = t4_complex
    ours = openmm_ani.ANIPotential(precision="double").createMixedSystem(topology, mm, ligand, interpolate=True)
    via = openmmml.MLPotential("ani1ccx-openmm-ani", precision="double").createMixedSystem(
        topology, mm, ligand, interpolate=True, mlLongRange=False)
    mm_energy, _ = evaluate(mm, positions)
    for lam in (0.0, 0.3, 0.7, 1.0):
        (e_via, f_via), (e_ours, f_ours) = evaluate(via, positions, lam), evaluate(ours, positions, lam)
        assert e_via == pytest.approx(e_ours, abs=1e-4), lam
        np.testing.assert_allclose(f_via, f_ours, rtol=0, atol=1e-6 * np.abs(f_ours).max())
    assert e_ours - mm_energy < -1e5  # lambda = 1 is far from MM: the comparison above can fail


def test_embedding_keywords(t4_complex):
    topology, mm, positions, ligand = t4_complex
    potential = openmmml.MLPotential("ani1ccx-openmm-ani", precision="double")
    plain = evaluate(potential.createMixedSystem(topology, mm, ligand), positions)[0]
    accepted = potential.createMixedSystem(topology, mm, ligand, embedding="mechanical", mlLongRange=False)
    assert evaluate(accepted, positions)[0] == plain
    with pytest.raises(ValueError, match="mlLongRange=True: ANI has no long-range interactions"):
        potential.createMixedSystem(topology, mm, ligand, mlLongRange=True)
    with pytest.raises(ValueError, match="'mechanical' embedding only"):
        potential.createMixedSystem(topology, mm, ligand, embedding="electrostatic")
    with pytest.raises(ValueError, match="unknown argument"):
        potential.createMixedSystem(topology, mm, ligand, cutoff=1.0)


@pytest.mark.skipif(Version(importlib.metadata.version("openmmml")) >= Version("1.8"), reason="openmm-ml 1.8 places link atoms itself")
def test_link_atoms_need_openmm_ani_under_openmmml17(t4_complex):
    topology, mm, _, _ = t4_complex
    side_chain = [a.index for a in topology.atoms() if a.residue.index == 152 and a.name not in ("N", "H", "CA", "HA", "C", "O")]
    potential = openmmml.MLPotential("ani1ccx-openmm-ani")
    with pytest.raises(ValueError, match="linkAtomDistances: this openmm-ml has no link atoms"):
        potential.createMixedSystem(topology, mm, side_chain, linkAtomDistances=[(side_chain[0], 2436, 0.11)])
    with pytest.warns(UserWarning, match=r"cut through bonds \[\(2438, 2436\)\] and this openmm-ml \(< 1.8\) adds no link atoms"):
        potential.createMixedSystem(topology, mm, side_chain)


def test_factory_errors():
    with pytest.raises(ValueError, match="modelPath"):
        openmmml.MLPotential("openmm-ani")
    with pytest.raises(ValueError, match="unknown argument"):
        openmmml.MLPotential("ani1ccx-openmm-ani", flavour="x")
    path = openmm_ani.models.bundled_path("ani1x")
    pdb = ligand_pdb()
    by_path = openmmml.MLPotential("openmm-ani", modelPath=path, precision="double")
    assert energy(by_path.createSystem(pdb.topology), pdb.positions) == energy(
        openmm_ani.ANIPotential("ani1x", precision="double").createSystem(pdb.topology), pdb.positions)
