"""``openmm-ani fe-correct`` end to end on alanine dipeptide (AMBER prmtop, ANI for the whole solute).

Both legs get the same input with the same seed, so the two legs are the same calculation:
dG_complex == dG_solvent exactly, ddG == 0 and the corrected binding free energy equals the
MM value given. The leg's dG itself is checked against the independently computed MM -> ANI
energy difference at the starting structure (the free energy of a rigid-ish molecule follows
the energy gap at the input structure to within ~30 kcal/mol (minimisation and sampling move it by ~15),
compared with ~3e5 kcal/mol of absolute ANI-MM offset: wrong units or signs fail by orders of magnitude).
"""

import json
import os

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

import openmm_ani.models
from openmm_ani.cli import main
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL, NM_TO_ANGSTROM

openmmtools = pytest.importorskip("openmmtools")
DATA = os.path.join(os.path.dirname(openmmtools.__file__), "data", "alanine-dipeptide-gbsa")
PRMTOP = os.path.join(DATA, "alanine-dipeptide.prmtop")
CRD = os.path.join(DATA, "alanine-dipeptide.crd")

PROTOCOL = [
    "--n-states", "3", "--n-iterations", "4", "--steps-per-iteration", "10", "--n-switches", "3",
    "--switching-steps", "10", "--equilibration-steps", "10", "--steps-between-switches", "5",
    "--platform", "Reference", "--precision", "double", "--minimize-iterations", "50", "--no-progress",
]


def leg_args(leg: str, atoms: str = "0-21") -> list:
    indices = ",".join(str(i) for i in range(22))
    return [f"--{leg}-prmtop", PRMTOP, f"--{leg}-coords", CRD, f"--{leg}-ligand-atoms", indices]


def test_fe_correct_end_to_end(tmp_path, capsys):
    out = str(tmp_path / "lig")
    status = main(["fe-correct", *leg_args("complex"), *leg_args("solvent"), "--output", out, "--mm-binding", "-6.5", *PROTOCOL])
    assert status == 0
    assert "ddG correction" in capsys.readouterr().out
    with open(os.path.join(out, "results.json")) as stream:
        results = json.load(stream)
    complex_leg, solvent_leg = results["legs"]["complex"], results["legs"]["solvent"]
    assert complex_leg["summary"]["delta_g_kcal_per_mol"] == solvent_leg["summary"]["delta_g_kcal_per_mol"]
    assert results["correction"]["ddg_kcal_per_mol"] == 0.0
    assert results["correction"]["corrected_binding_kcal_per_mol"] == -6.5
    assert len(complex_leg["switching"]["forward_work"]) == 3
    assert np.array(complex_leg["equilibrium"]["overlap"]).shape == (3, 3)
    for name in ("complex/overlap.png", "complex/work.png", "solvent/overlap.png", "complex/replica_exchange.nc", "settings.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    with open(os.path.join(out, "complex", "overlap.png"), "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"

    # Reference: energy gap E_ANI - E_MM(internal) at the input structure (the whole solute is ML,
    # so the ML-internal MM energy is the whole vacuum MM energy without the GB term).
    prmtop = app.AmberPrmtopFile(PRMTOP)
    positions = app.AmberInpcrdFile(CRD).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    system = prmtop.createSystem(nonbondedMethod=app.NoCutoff)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    e_mm = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilocalorie_per_mole)
    model = openmm_ani.models.load("ani1ccx")
    numbers = torch.tensor([[a.element.atomic_number for a in prmtop.topology.atoms()]])
    e_ani = float(model(numbers, torch.tensor(positions * NM_TO_ANGSTROM).unsqueeze(0))[0]) * HARTREE_TO_KCAL_PER_MOL
    gap = e_ani - e_mm
    # MBAR over 3 windows is within ~15 kcal/mol; BAR from 3 switches of 10 steps is far from
    # converged (~60 kcal/mol dissipation), so it only gets an order-of-magnitude check.
    assert abs(complex_leg["summary"]["mbar_kcal_per_mol"] - gap) < 30.0, (complex_leg["summary"], gap)
    assert abs(complex_leg["summary"]["bar_kcal_per_mol"] - gap) < 200.0, (complex_leg["summary"], gap)

    # A second call finds everything in place and reproduces the results (resume path).
    assert main(["fe-correct", *leg_args("complex"), *leg_args("solvent"), "--output", out, "--mm-binding", "-6.5", *PROTOCOL]) == 0
    with open(os.path.join(out, "results.json")) as stream:
        again = json.load(stream)
    assert again["correction"] == results["correction"]


def test_fe_correct_bad_input(tmp_path, capsys):
    out = str(tmp_path / "bad")
    assert main(["fe-correct", "--complex-prmtop", str(tmp_path / "missing.prmtop"), "--complex-coords", CRD, *leg_args("solvent"),
                 "--complex-ligand-atoms", "0,1", "--output", out, *PROTOCOL]) == 1
    assert "missing.prmtop" in capsys.readouterr().err
    assert main(["fe-correct", "--complex-prmtop", PRMTOP, "--complex-coords", CRD, "--solvent-prmtop", PRMTOP,
                 "--solvent-coords", CRD, "--ligand-resname", "LIG", "--output", out, *PROTOCOL]) == 1
    err = capsys.readouterr().err
    assert "no residue named 'LIG'" in err and "ALA" in err and len(err.strip().splitlines()) == 1
    assert main(["fe-correct", *leg_args("complex"), *leg_args("solvent"), "--complex-ligand-atoms", "0,99", "--output", out, *PROTOCOL]) == 1
    assert "[99] are out of range" in capsys.readouterr().err
    assert main(["fe-correct", *leg_args("complex"), *leg_args("solvent"), "--n-states", "1", "--output", out, *PROTOCOL[2:]]) == 1
    assert "at least two lambda windows" in capsys.readouterr().err
