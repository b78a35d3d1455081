"""Ensemble-disagreement reporter against an independent computation from the 8 single members
(``models.load(model_index=k)``), for a pure ANI molecule, an ML ligand in an MM protein and a
periodic water box; threshold warnings."""

import io
import warnings

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

import openmm_ani
from openmm_ani.reporter import DisagreementEvaluator, EnsembleDisagreementReporter, EnsembleDisagreementWarning
from openmm_ani.units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM

from openmm_inputs import COMPLEX_CRD, COMPLEX_PRMTOP, ligand_pdb, small_waterbox


def independent_statistics(numbers, positions_nm, box_nm=None):
    """Energy mean/std (kJ/mol) and max per-atom force RMS deviation (kJ/mol/nm) from 8 separate models."""
    energies, forces = [], []
    cell = None if box_nm is None else torch.tensor(np.asarray(box_nm) * NM_TO_ANGSTROM, dtype=torch.float64)
    for k in range(8):
        model = openmm_ani.models.load("ani1ccx", model_index=k)
        x = torch.tensor(np.asarray(positions_nm) * NM_TO_ANGSTROM, dtype=torch.float64)[None].requires_grad_(True)
        e = model(torch.tensor([numbers]), x, cell)[0]
        (g,) = torch.autograd.grad(e, x)
        energies.append(float(e.detach()) * HARTREE_TO_KJ_PER_MOL)
        forces.append(-g[0].numpy() * HARTREE_TO_KJ_PER_MOL * NM_TO_ANGSTROM)
    energies, forces = np.array(energies), np.array(forces)
    deviation = forces - forces.mean(0)
    spread = np.sqrt((deviation**2).sum(-1).mean(0)).max()
    return energies.mean(), energies.std(ddof=1), spread


def parse(text):
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return np.array([[float(v) for v in line.split(",")] for line in lines])


def test_reporter_pure_ani_matches_single_members():
    pdb = ligand_pdb()
    potential = openmm_ani.ANIPotential("ani1ccx", precision="double")
    system = potential.createSystem(pdb.topology)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    simulation = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(pdb.positions)
    stream = io.StringIO()
    reporter = EnsembleDisagreementReporter(stream, 5, pdb.topology, potential)
    simulation.reporters.append(reporter)
    simulation.step(10)
    rows = parse(stream.getvalue())
    assert rows[:, 0].tolist() == [5, 10]
    positions = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    numbers = [a.element.atomic_number for a in pdb.topology.atoms()]
    mean, std, spread = independent_statistics(numbers, positions)
    assert rows[-1, 2] == pytest.approx(mean, abs=1e-5)
    assert rows[-1, 3] == pytest.approx(std, rel=1e-6)
    assert rows[-1, 4] == pytest.approx(spread, rel=1e-6)
    assert reporter.last.energy_std == pytest.approx(std, rel=1e-9)
    assert std > 0.1 and spread > 1.0  # the members genuinely disagree
    # the ensemble energy is also the one OpenMM integrates
    omm = simulation.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert omm == pytest.approx(mean, abs=1e-5)


def test_reporter_ml_ligand_in_mm_protein():
    prmtop = app.AmberPrmtopFile(COMPLEX_PRMTOP)
    crd = app.AmberInpcrdFile(COMPLEX_CRD)
    system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    ligand = [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
    assert len(ligand) == 18 and ligand[0] > 0
    simulation = app.Simulation(prmtop.topology, system, openmm.VerletIntegrator(0.5 * unit.femtosecond),
                                openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    simulation.context.setPositions(crd.positions)
    stream = io.StringIO()
    potential = openmm_ani.ANIPotential("ani1ccx", precision="double")
    simulation.reporters.append(EnsembleDisagreementReporter(stream, 2, prmtop.topology, potential, ml_atoms=ligand))
    simulation.step(2)
    positions = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    numbers = [a.element.atomic_number for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
    mean, std, spread = independent_statistics(numbers, positions[ligand])
    row = parse(stream.getvalue())[-1]
    assert row[0] == 2
    assert row[2:].tolist() == pytest.approx([mean, std, spread], rel=1e-6)


def test_evaluator_periodic_water_matches_single_members():
    topology, positions, box = small_waterbox()
    shifted = positions + 0.37  # molecules across the faces
    numbers = [a.element.atomic_number for a in topology.atoms()]
    model = openmm_ani.models.load("ani1ccx")
    result = DisagreementEvaluator(model, numbers, periodic=True)(shifted, box)
    mean, std, spread = independent_statistics(numbers, shifted, box)
    assert [result.energy, result.energy_std, result.force_spread] == pytest.approx([mean, std, spread], rel=1e-6)


def test_threshold_warns_once_per_crossing():
    pdb = ligand_pdb()
    potential = openmm_ani.ANIPotential("ani1ccx", precision="double")
    simulation = app.Simulation(pdb.topology, potential.createSystem(pdb.topology),
                                openmm.VerletIntegrator(0.5 * unit.femtosecond),
                                openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(pdb.positions)
    std = DisagreementEvaluator(potential.model, [a.element.atomic_number for a in pdb.topology.atoms()])(
        pdb.positions, forces=False).energy_std
    below = EnsembleDisagreementReporter(io.StringIO(), 1, pdb.topology, potential, threshold=std * 0.5, forces=False)
    above = EnsembleDisagreementReporter(io.StringIO(), 1, pdb.topology, potential,
                                         threshold=std * 3 * unit.kilojoule_per_mole, forces=False)
    simulation.reporters.extend([below, above])
    with pytest.warns(EnsembleDisagreementWarning, match="exceeds the threshold") as record:
        simulation.step(3)
    assert len([w for w in record if issubclass(w.category, EnsembleDisagreementWarning)]) == 1
    assert below.exceeded == [1] and above.exceeded == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnsembleDisagreementWarning)
        simulation.step(2)  # still above: no new warning


def test_bad_inputs():
    pdb = ligand_pdb()
    model = openmm_ani.models.load("ani1ccx")
    evaluator = DisagreementEvaluator(model, [a.element.atomic_number for a in pdb.topology.atoms()])
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer).copy()
    positions[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"atoms \[4\]"):
        evaluator(positions)
    with pytest.raises(ValueError, match="reportInterval"):
        EnsembleDisagreementReporter(io.StringIO(), 0, pdb.topology)
    with pytest.raises(ValueError, match="box vectors are required"):
        DisagreementEvaluator(model, [8, 1, 1], periodic=True)(np.zeros((3, 3)))
