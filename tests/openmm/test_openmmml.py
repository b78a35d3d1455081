"""openmm-ml integration: the ``openmmml.potentials`` entry points, energies through
``openmmml.MLPotential`` equal to ANIPotential's and to openmm-ml's own TorchANI-based ``ani1ccx``."""

import contextlib
import importlib.metadata
import io

import openmm
import pytest
from openmm import app, unit

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


def test_mixed_system_through_openmmml_mechanical_embedding():
    pytest.importorskip("openmm_ani.mixed", reason="mixed ML/MM systems (issue 4) not present")
    prmtop = app.AmberPrmtopFile(COMPLEX_PRMTOP)
    positions = app.AmberInpcrdFile(COMPLEX_CRD).positions
    mm = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    ligand = [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
    ours = openmm_ani.ANIPotential(precision="double").createMixedSystem(prmtop.topology, mm, ligand)
    via = openmmml.MLPotential("ani1ccx-openmm-ani", precision="double").createMixedSystem(prmtop.topology, mm, ligand)
    assert energy(via, positions) == pytest.approx(energy(ours, positions), abs=1e-4)


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
