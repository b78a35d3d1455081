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

from interruptible import start

openmmtools = pytest.importorskip("openmmtools")
from openmmtools import multistate  # noqa: E402
DATA = os.path.join(os.path.dirname(openmmtools.__file__), "data", "alanine-dipeptide-gbsa")
PRMTOP = os.path.join(DATA, "alanine-dipeptide.prmtop")
CRD = os.path.join(DATA, "alanine-dipeptide.crd")

PROTOCOL = [
    "--n-states", "3", "--n-iterations", "4", "--steps-per-iteration", "10", "--n-switches", "3",
    "--switching-steps", "10", "--equilibration-steps", "10", "--steps-between-switches", "5",
    "--platform", "Reference", "--precision", "single", "--minimize-iterations", "50", "--no-progress",
]


def leg_args(leg: str) -> list:
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
    # 4 iterations and 3 switches cannot converge: the verdict says so and what to extend
    verdict = results["verdict"]
    assert verdict["converged"] is False and verdict["legs"]["complex"]["converged"] is False
    samples = verdict["legs"]["complex"]["checks"]["effective_samples"]
    assert not samples["passed"] and samples["value"]["switches"] == 3 and samples["value"]["iterations"] <= 5
    assert any(a.startswith("complex: ") and "extend replica exchange to about" in a for a in verdict["advice"])
    assert complex_leg["lambdas"] == [0.0, 0.5, 1.0] and complex_leg["schedule"] is None

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

    # Issue 9 case 1: a rerun with settings that change the stored samples stops, listing them
    # (the windows 0, 0.5, 1 are those of --n-states 3, and more switches only extend the run).
    changed = ["--lambdas", "0,0.5,1", "--model", "ani1x", "--seed", "7", "--n-switches", "8"]
    capsys.readouterr()
    assert main(["fe-correct", *leg_args("complex"), *leg_args("solvent"), "--output", out, *PROTOCOL, *changed]) == 1
    err = capsys.readouterr().err
    assert "model \"ani1ccx\" -> \"ani1x\"" in err and "seed 2024 -> 7" in err and "--overwrite" in err, err
    assert "windows" not in err and "n_switches" not in err and len(err.strip().splitlines()) == 1
    with open(os.path.join(out, "results.json")) as stream:
        assert json.load(stream) == again  # untouched
    # ... while more switches extend it: the stored replica exchange is reused, 2 switches are added.
    assert main(["fe-correct", *leg_args("complex"), *leg_args("solvent"), "--output", out, "--mm-binding", "-6.5", *PROTOCOL,
                 "--n-switches", "5"]) == 0
    with open(os.path.join(out, "results.json")) as stream:
        extended = json.load(stream)
    assert extended["legs"]["complex"]["switching"]["forward_work"][:3] == complex_leg["switching"]["forward_work"]
    assert len(extended["legs"]["complex"]["switching"]["forward_work"]) == 5
    assert extended["legs"]["complex"]["equilibrium"]["delta_f_kt"] == complex_leg["equilibrium"]["delta_f_kt"]


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


def test_fe_correct_equilibrium_fraction_is_stored_and_may_change_on_a_rerun():
    """Issue 16: the replica-exchange share of --max-time is an option (docs and code: 0.5 by default), a budget
    setting that a rerun may change like --max-time."""
    from openmm_ani.cli import build_parser
    from openmm_ani.cli.fe_correct import settings_from_args
    from openmm_ani.freeenergy.resume import differences, record

    parser = build_parser()
    base = ["fe-correct", "--output", "x", "--ligand-resname", "LIG"]
    default = settings_from_args(parser.parse_args(base))
    assert default.equilibrium_time_fraction == 0.5
    changed = settings_from_args(parser.parse_args(base + ["--equilibrium-fraction", "0.7", "--max-time", "2h"]))
    assert changed.equilibrium_time_fraction == 0.7 and changed.max_time_s == 7200.0
    assert differences(record(default, {}), record(changed, {})) == []
    seeded = settings_from_args(parser.parse_args(base + ["--seed", "7"]))
    assert differences(record(default, {}), record(seeded, {})) == ["seed 2024 -> 7"]


def test_fe_correct_screen_says_not_enough_samples():
    """Issue 16: one switch per direction printed 'BAR ... +- 0.000'; TI is printed beside MBAR and BAR."""
    from openmm_ani.cli.fe_correct import result_lines

    leg = {"lambdas": [0.0, 1.0], "wall_time_s": 12.0, "summary": {
        "estimator": "MBAR", "delta_g_kcal_per_mol": -1.0, "d_delta_g_kcal_per_mol": 0.1, "mbar_kcal_per_mol": -1.0,
        "mbar_error_kcal_per_mol": 0.1, "ti_kcal_per_mol": -1.05, "ti_error_kcal_per_mol": 0.12,
        "ti_discretisation_kcal_per_mol": 0.02, "bar_kcal_per_mol": -0.9, "bar_error_kcal_per_mol": float("nan"),
        "bar_error_reason": "not enough samples: 1 switch(es) per direction, at least 2 needed for an error estimate"}}
    solvent = {"lambdas": [0.0, 1.0], "wall_time_s": 3.0, "summary": {
        "estimator": "BAR", "delta_g_kcal_per_mol": -2.0, "d_delta_g_kcal_per_mol": float("nan"), "bar_kcal_per_mol": -2.0,
        "bar_error_kcal_per_mol": float("nan"), "error_reason": "not enough samples: 1 switch(es) per direction"}}
    correction = {"ddg_kcal_per_mol": 1.0, "d_ddg_kcal_per_mol": float("nan"),
                  "error_reason": "solvent: not enough samples: 1 switch(es) per direction"}
    lines = [line for line in result_lines({"legs": {"complex": leg, "solvent": solvent}, "correction": correction})
             if line.startswith(("dG ", "ddG "))]
    assert lines == [
        "dG complex (MM->ML/MM): MBAR -1.000 +- 0.100, TI -1.050 +- 0.120 (discretisation 0.020), "
        "BAR -0.900 (not enough samples) kcal/mol (2 windows, 12 s)",
        "dG solvent (MM->ML/MM): BAR -2.000 (not enough samples) kcal/mol (2 windows, 3 s)",
        "ddG correction: 1.000 kcal/mol (not enough samples in the solvent leg)",
    ]


def test_fe_correct_refuses_different_ligands(tmp_path, capsys):
    """Issue 9 case 3: B2 (CB7 host-guest) in the complex, the 18-atom T4 ligand as solvent gave ddG = -145122."""
    cb7 = os.path.join(os.path.dirname(openmmtools.__file__), "data", "cb7-b2")
    t4 = os.path.join(os.path.dirname(openmmtools.__file__), "data", "T4-lysozyme-L99A-implicit")
    b2 = [a.index for a in app.AmberPrmtopFile(os.path.join(cb7, "complex-explicit.prmtop")).topology.atoms() if a.residue.name == "B2"]
    status = main(["fe-correct", "--complex-prmtop", os.path.join(cb7, "complex-explicit.prmtop"),
                   "--complex-coords", os.path.join(cb7, "complex-explicit.inpcrd"), "--complex-ligand-atoms", ",".join(map(str, b2)),
                   "--solvent-prmtop", os.path.join(t4, "ligand.prmtop"), "--solvent-coords", os.path.join(t4, "ligand-minimized.crd"),
                   "--solvent-ligand-atoms", ",".join(str(i) for i in range(18)), "--output", str(tmp_path / "out"), *PROTOCOL])
    assert status == 1
    err = capsys.readouterr().err
    assert "different ligands" in err and "complex 30 atoms" in err and "solvent 18 atoms C8H10" in err, err
    assert not os.path.exists(tmp_path / "out" / "results.json")


def test_fe_correct_ctrl_c_exits_130_and_resumes(tmp_path):
    """Issue 9 case 12: Ctrl-C stops with exit 130, the files stay valid, and a rerun continues them.

    The ligand is p-xylene alone (T4 lysozyme's ligand.prmtop, C and H only): the run's fixed
    costs (openmmtools storing and copying the System with its TorchScript file) shrink with
    the model file.
    """
    out = tmp_path / "lig"
    protocol = [*PROTOCOL, "--n-iterations", "20", "--check-interval", "5", "--n-switches", "0"]
    t4 = os.path.join(os.path.dirname(openmmtools.__file__), "data", "T4-lysozyme-L99A-implicit")
    legs = [arg for leg in ("complex", "solvent") for arg in (f"--{leg}-prmtop", os.path.join(t4, "ligand.prmtop"),
                                                              f"--{leg}-coords", os.path.join(t4, "ligand-minimized.crd"))]
    legs += ["--ligand-resname", "TMP"]
    storage = out / "complex" / "replica_exchange.nc"
    with start("fe-correct", *legs, "--output", str(out), *protocol) as child:
        child.wait_until(storage.exists, timeout=300, poll=0.2)  # the legs run under the deferring handler
        code, _, err = child.interrupt(timeout=300)
    assert code == 130, err[-2000:]
    assert "interrupted" in err
    assert not (out / "results.json").exists()
    reporter = multistate.MultiStateReporter(str(storage), open_mode="r")
    try:
        stopped_at = int(reporter.read_last_iteration(last_checkpoint=True))
        before = np.array(reporter.read_energies()[0])[: stopped_at + 1]
    finally:
        reporter.close()
    # the MD stops between chunks of steps, so the run may stop before its first checkpoint after the start;
    # the file then ends at a checkpoint (0 included) before the end, where the rerun resumes
    assert 0 <= stopped_at < 20 and stopped_at % 5 == 0
    # The rerun continues the same file to 20 iterations and finishes both legs.
    assert main(["fe-correct", *legs, "--output", str(out), *protocol]) == 0
    reporter = multistate.MultiStateReporter(str(storage), open_mode="r")
    try:
        after = np.array(reporter.read_energies()[0])
    finally:
        reporter.close()
    assert after.shape[0] == 21
    # the iterations up to the checkpoint are kept; a run stopped in its first iteration restarts at 0, whose
    # energies the resumed sampler computes again in a new single-precision Context (measured: 6e-7 relative)
    np.testing.assert_allclose(after[: stopped_at + 1], before, rtol=0 if stopped_at else 2e-6)
    assert (out / "results.json").exists()
