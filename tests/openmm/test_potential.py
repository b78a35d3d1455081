"""ANIPotential in OpenMM: Context energies/forces against the PyTorch model, TorchANI and finite
differences; serialization, exported files, import order, NVE energy conservation, bad input."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

import openmm_ani
from openmm_ani.units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM

from finite_differences import numeric_force
from openmm_inputs import LIGAND_PDB, ligand_pdb, small_waterbox

KJ = unit.kilojoule_per_mole
FORCE_UNIT = unit.kilojoule_per_mole / unit.nanometer
PLATFORMS = ["Reference", "CPU"]


def make_context(system, platform, positions, box=None):
    properties = {"Threads": "1"} if platform == "CPU" else {}
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform),
                             properties)
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    return context


def context_energy_forces(context):
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(FORCE_UNIT)


def torch_energy_forces(model, numbers, positions_nm, box_nm=None):
    """Energy (kJ/mol) and forces (kJ/mol/nm) from the PyTorch model in its own units (Å, Ha)."""
    dtype = next(model.parameters()).dtype
    x = torch.tensor(np.asarray(positions_nm) * NM_TO_ANGSTROM, dtype=dtype).unsqueeze(0).requires_grad_(True)
    cell = None if box_nm is None else torch.tensor(np.asarray(box_nm) * NM_TO_ANGSTROM, dtype=dtype)
    energy = model(torch.tensor([numbers]), x, cell)[0]
    (grad,) = torch.autograd.grad(energy, x)
    forces = -grad[0].detach().double().numpy() * HARTREE_TO_KJ_PER_MOL * NM_TO_ANGSTROM
    return float(energy.detach()) * HARTREE_TO_KJ_PER_MOL, forces


def numbers_of(topology):
    return [a.element.atomic_number for a in topology.atoms()]


@pytest.fixture(scope="module")
def potentials():
    return {p: openmm_ani.ANIPotential("ani1ccx", precision=p) for p in ("single", "double")}


# tolerance of OpenMM vs the same-precision PyTorch model: (energy, kJ/mol; forces, relative to the
# largest force component). float32 rounds positions/energies at ~1e-7 relative; sums of ~10^3
# float32 terms in a different order (TorchScript vs eager) leave ~1e-4 of the largest force.
TOLERANCE = {"double": (1e-6, 1e-9), "single": (0.25, 5e-4)}


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("precision", ["single", "double"])
def test_context_matches_torch_model_vacuum(potentials, platform, precision):
    pdb = ligand_pdb()
    potential = potentials[precision]
    system = potential.createSystem(pdb.topology)
    assert system.getNumParticles() == 18
    masses = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(18)]
    assert masses == pytest.approx([a.element.mass.value_in_unit(unit.dalton) for a in pdb.topology.atoms()])
    assert not system.usesPeriodicBoundaryConditions()
    assert any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    energy, forces = context_energy_forces(make_context(system, platform, pdb.positions))
    ref_energy, ref_forces = torch_energy_forces(potential.model, numbers_of(pdb.topology), positions)
    tol_e, tol_f = TOLERANCE[precision]
    assert energy == pytest.approx(ref_energy, abs=tol_e)
    assert np.abs(forces - ref_forces).max() < tol_f * np.abs(ref_forces).max()
    assert np.abs(ref_forces).max() > 100.0  # a non-trivial configuration: forces of hundreds of kJ/mol/nm


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("precision", ["single", "double"])
def test_context_matches_torch_model_periodic(potentials, platform, precision):
    topology, positions, box = small_waterbox()
    potential = potentials[precision]
    system = potential.createSystem(topology)
    assert system.usesPeriodicBoundaryConditions()
    # shift so that molecules straddle the box faces: periodic images must be used
    shifted = positions + 0.37
    energy, forces = context_energy_forces(make_context(system, platform, shifted * unit.nanometer))
    ref_energy, ref_forces = torch_energy_forces(potential.model, numbers_of(topology), shifted, box)
    tol_e, tol_f = TOLERANCE[precision]
    assert energy == pytest.approx(ref_energy, abs=tol_e * 20)  # |E| is 20x the vacuum case's
    assert np.abs(forces - ref_forces).max() < tol_f * np.abs(ref_forces).max()
    # the unshifted configuration has the same energy (translation invariance through PBC)
    energy0, _ = context_energy_forces(make_context(system, platform, positions * unit.nanometer))
    assert energy0 == pytest.approx(energy, abs=tol_e * 20)
    # and without periodicity the energy is clearly different (images matter)
    vacuum, _ = torch_energy_forces(potential.model, numbers_of(topology), shifted, None)
    assert abs(vacuum - ref_energy) > 10.0


def test_context_matches_torchani_double():
    torchani = pytest.importorskip("torchani", reason="TorchANI 2.2.4 reference (scripts/setup_test_reference.py)")
    pdb = ligand_pdb()
    system = openmm_ani.ANIPotential("ani1ccx", precision="double").createSystem(pdb.topology)
    energy, forces = context_energy_forces(make_context(system, "Reference", pdb.positions))
    reference = torchani.models.ANI1ccx(periodic_table_index=True).double()
    x = torch.tensor(pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom)).unsqueeze(0).requires_grad_(True)
    e = reference((torch.tensor([numbers_of(pdb.topology)]), x)).energies[0]
    (g,) = torch.autograd.grad(e, x)
    assert energy == pytest.approx(float(e) * HARTREE_TO_KJ_PER_MOL, abs=1e-5)
    np.testing.assert_allclose(forces, -g[0].numpy() * HARTREE_TO_KJ_PER_MOL * NM_TO_ANGSTROM, atol=1e-4)


def finite_difference_check(context, positions, components, h=1e-5):
    _, forces = context_energy_forces(context)
    for atom, axis in components:
        numeric = numeric_force(context, positions, atom, axis, h)
        assert forces[atom, axis] == pytest.approx(numeric, rel=1e-4, abs=1e-2), (atom, axis)
    context.setPositions(positions * unit.nanometer)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_forces_match_finite_differences_vacuum(potentials, platform):
    pdb = ligand_pdb()
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    context = make_context(potentials["double"].createSystem(pdb.topology), platform, pdb.positions)
    finite_difference_check(context, positions, [(0, 0), (7, 1), (8, 2), (17, 0), (12, 1)])


def test_forces_match_finite_differences_periodic(potentials):
    topology, positions, _ = small_waterbox()
    shifted = positions + 0.37
    context = make_context(potentials["double"].createSystem(topology), "Reference", shifted * unit.nanometer)
    # atoms whose neighbours lie across a box face after the shift
    wrapped = np.nonzero((shifted.max(axis=1) > 1.0))[0][:3]
    finite_difference_check(context, shifted, [(int(i), 0) for i in wrapped] + [(0, 2)])


@pytest.mark.parametrize("periodic", [False, True])
def test_xml_round_trip_keeps_working_force(potentials, periodic):
    """serialize -> openmm_ani.serialization.deserialize_system -> same energies and forces."""
    from openmm_ani.serialization import deserialize_system

    if periodic:
        topology, positions, _ = small_waterbox()
        positions = positions * unit.nanometer
    else:
        pdb = ligand_pdb()
        topology, positions = pdb.topology, pdb.positions
    system = potentials["double"].createSystem(topology)
    system.getForce(0).setForceGroup(2)
    energy, forces = context_energy_forces(make_context(system, "Reference", positions))
    copy = deserialize_system(openmm.XmlSerializer.serialize(system))
    assert copy.getNumForces() == 2 and copy.getForce(1).getName() == "CMMotionRemover"
    assert copy.getForce(0).getForceGroup() == 2
    assert copy.getForce(0).usesPeriodicBoundaryConditions() == periodic
    assert copy.usesPeriodicBoundaryConditions() == periodic
    energy2, forces2 = context_energy_forces(make_context(copy, "Reference", positions))
    assert energy2 == energy
    np.testing.assert_array_equal(forces2, forces)


def test_plain_xmlserializer_round_trip(tmp_path):
    """openmm.XmlSerializer.deserialize itself (in a subprocess: with openmmtorch 1.5 + OpenMM 8.6 it crashes)."""
    script = textwrap.dedent(
        f"""
        import torch, openmm, openmmtorch
        from openmm import app
        import openmm_ani
        pdb = app.PDBFile({LIGAND_PDB!r})
        system = openmm_ani.ANIPotential("ani1ccx", precision="double").createSystem(pdb.topology)
        copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
        energies = []
        for s in (system, copy):
            context = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            context.setPositions(pdb.positions)
            energies.append(context.getState(getEnergy=True).getPotentialEnergy()._value)
        print(energies[0], energies[1])
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = map(float, result.stdout.split())
    assert first == second


EXPORT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    import openmm, openmmtorch
    path, periodic = sys.argv[1], sys.argv[2] == "1"
    data = json.load(open(sys.argv[3]))
    system = openmm.System()
    for mass in data["masses"]:
        system.addParticle(mass)
    if periodic:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in data["box"]])
    force = openmmtorch.TorchForce(path)
    force.setUsesPeriodicBoundaryConditions(periodic)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.array(data["positions"]))
    state = context.getState(getEnergy=True, getForces=True)
    json.dump({"energy": state.getPotentialEnergy()._value, "forces": state.getForces(asNumpy=True)._value.tolist(),
               "openmm_ani_loaded": any(m.startswith("openmm_ani") for m in sys.modules)}, sys.stdout)
    """
)


@pytest.mark.parametrize("periodic", [False, True])
def test_exported_file_runs_without_openmm_ani(potentials, tmp_path, periodic):
    if periodic:
        topology, positions, box = small_waterbox()
    else:
        pdb = ligand_pdb()
        topology, box = pdb.topology, None
        positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    potential = potentials["double"]
    path = potential.export(tmp_path / "ani.pt", topology=topology)
    assert os.path.isfile(path)
    data = {"masses": [a.element.mass.value_in_unit(unit.dalton) for a in topology.atoms()],
            "positions": positions.tolist(), "box": None if box is None else np.asarray(box).tolist()}
    (tmp_path / "data.json").write_text(json.dumps(data))
    (tmp_path / "run.py").write_text(EXPORT_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(path), "1" if periodic else "0",
                             str(tmp_path / "data.json")], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["openmm_ani_loaded"] is False
    energy, forces = context_energy_forces(make_context(potential.createSystem(topology), "Reference",
                                                        positions * unit.nanometer))
    assert out["energy"] == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(np.array(out["forces"]), forces, atol=1e-6)


def test_openmm_imported_before_torch_still_works(tmp_path):
    """`import openmm` first makes OpenMM fail to load openmm-torch's kernels; the package reloads them."""
    script = textwrap.dedent(
        f"""
        import openmm
        from openmm import app
        import openmm_ani
        pdb = app.PDBFile({LIGAND_PDB!r})
        system = openmm_ani.ANIPotential("ani1ccx", precision="double").createSystem(pdb.topology)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(pdb.positions)
        print(context.getState(getEnergy=True).getPotentialEnergy()._value)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pdb = ligand_pdb()
    ref, _ = torch_energy_forces(openmm_ani.models.load("ani1ccx"), numbers_of(pdb.topology),
                                 pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(ref, abs=1e-6)


def test_nve_energy_conservation():
    """ANI-1ccx p-xylene, float64, velocity Verlet 1 fs, 200 steps: the total energy is conserved.

    The bound (0.5 kJ/mol on drift and fluctuation, against ~70 kJ/mol of kinetic energy) fails for
    forces inconsistent with the energy (e.g. a wrong unit factor on the forces).
    """
    pdb = ligand_pdb()
    system = openmm_ani.ANIPotential("ani1ccx", precision="double").createSystem(pdb.topology, removeCMMotion=False)
    integrator = openmm.VerletIntegrator(1.0 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 200)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 7)
    totals, kinetic = [], []
    for _ in range(20):
        integrator.step(10)
        state = context.getState(getEnergy=True)
        k = state.getKineticEnergy().value_in_unit(KJ)
        totals.append(state.getPotentialEnergy().value_in_unit(KJ) + k)
        kinetic.append(k)
    totals = np.array(totals)
    drift = np.polyfit(np.arange(len(totals)) * 10, totals, 1)[0] * 200  # kJ/mol over the run
    fluctuation = totals.std()
    print(f"NVE: drift {drift:+.4f} kJ/mol over 200 fs, fluctuation {fluctuation:.4f} kJ/mol, "
          f"mean kinetic {np.mean(kinetic):.1f} kJ/mol")
    assert np.mean(kinetic) > 20.0
    assert abs(drift) < 0.5
    assert fluctuation < 0.5


def test_bad_input_errors():
    with pytest.raises(ValueError, match="precision"):
        openmm_ani.ANIPotential("ani1ccx", precision="half")
    with pytest.raises(ValueError, match="unknown model"):
        openmm_ani.ANIPotential("no-such-model")
    potential = openmm_ani.ANIPotential("ani1ccx")
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for name, element in [("C1", "C"), ("S1", "S"), ("H1", "H")]:
        topology.addAtom(name, app.Element.getBySymbol(element), residue)
    with pytest.raises(ValueError, match=r"S at atom indices \[1\]"):
        potential.createSystem(topology)
    topology.addAtom("EP", None, residue)
    with pytest.raises(ValueError, match=r"3 \(MOL:EP\)"):
        potential.createSystem(topology)
    with pytest.raises(ValueError, match="exactly one"):
        potential.export("x.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        potential.export("/nonexistent-dir/x.pt", atomic_numbers=[8, 1, 1])


def test_model_attributes():
    single = openmm_ani.ANIPotential("ani1x", model_index=2)
    assert single.model.num_models == 1 and single.name == "ani1x" and single.precision == "single"
    assert next(single.model.parameters()).dtype == torch.float32
    assert next(openmm_ani.ANIPotential(precision="double").model.parameters()).dtype == torch.float64
    force = single.createForce([8, 1, 1], atoms=[2, 0, 1], make_whole=True)
    assert force.usesPeriodicBoundaryConditions()
    assert not single.createForce([8, 1, 1]).usesPeriodicBoundaryConditions()
