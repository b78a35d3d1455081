"""A charged ML region is flagged: ANI-1ccx and ANI-1x were trained on neutral molecules (issue 16 item 4).

The charges are checked against the prmtop file itself (its ``%FLAG CHARGE`` section, in units of
e x 18.2223), read here without OpenMM.
"""

import copy
import warnings

import openmm
import pytest
from openmm import app, unit

import openmm_ani
from openmm_ani.openmm.embedding import NetChargeWarning, ml_net_charge

from openmm_inputs import COMPLEX_PRMTOP

#: Amber's charge unit: prmtop charges are e x 18.2223.
AMBER_CHARGE_SCALE = 18.2223


def prmtop_charges(path):
    """Atomic charges (e) from a prmtop file's CHARGE section, parsed directly."""
    with open(path) as handle:
        lines = [line.rstrip() for line in handle]
    start = lines.index("%FLAG CHARGE") + 2  # the %FORMAT line follows the flag
    values = []
    for line in lines[start:]:
        if line.startswith("%FLAG"):
            break
        values += [float(line[k:k + 16]) for k in range(0, len(line), 16) if line[k:k + 16].strip()]
    return [v / AMBER_CHARGE_SCALE for v in values]


@pytest.fixture(scope="module")
def t4():
    prmtop = app.AmberPrmtopFile(COMPLEX_PRMTOP)
    return prmtop.topology, prmtop.createSystem(implicitSolvent=app.OBC2)


def residue(topology, name, number):
    found = [r for r in topology.residues() if r.name == name and int(r.id) == number]
    assert len(found) == 1
    return [a.index for a in found[0].atoms()]


def caught(call):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return [w for w in record if issubclass(w.category, NetChargeWarning)]


def test_glutamate_side_chain_region_is_flagged(t4):
    topology, system = t4
    glu = residue(topology, "GLU", 5)
    expected = sum(prmtop_charges(COMPLEX_PRMTOP)[i] for i in glu)
    assert expected == pytest.approx(-1.0, abs=1e-3)
    assert ml_net_charge(system, glu) == pytest.approx(expected, abs=1e-6)
    potential = openmm_ani.ANIPotential("ani1ccx")
    (warning,) = caught(lambda: potential.createMixedSystem(topology, system, glu))
    message = str(warning.message)
    assert "net MM charge of -1.000 e" in message and f"atoms {min(glu)}, " in message and "neutral" in message


def test_neutral_ligand_is_not_flagged_and_the_tolerance_is_0_01_e(t4):
    topology, system = t4
    ligand = [a.index for a in topology.atoms() if a.residue.name == "TMP"]
    assert abs(sum(prmtop_charges(COMPLEX_PRMTOP)[i] for i in ligand)) < 1e-3
    potential = openmm_ani.ANIPotential("ani1ccx")
    assert caught(lambda: potential.createMixedSystem(topology, system, ligand)) == []
    for shift, flagged in ((0.005, False), (0.02, True)):  # a whole molecule: +-0.01 e counts as neutral
        shifted = copy.deepcopy(system)
        nonbonded = [f for f in shifted.getForces() if isinstance(f, openmm.NonbondedForce)][0]
        q, sigma, epsilon = nonbonded.getParticleParameters(ligand[0])
        nonbonded.setParticleParameters(ligand[0], q + shift * unit.elementary_charge, sigma, epsilon)
        assert bool(caught(lambda: potential.createMixedSystem(topology, shifted, ligand))) is flagged, shift


def test_openmmml_plugin_flags_the_charged_region(t4):
    openmmml = pytest.importorskip("openmmml")
    topology, system = t4
    glu = residue(topology, "GLU", 5)
    potential = openmmml.MLPotential("ani1ccx-openmm-ani")
    warnings_seen = caught(lambda: potential.createMixedSystem(topology, system, glu))
    assert len(warnings_seen) == 1 and "-1.000 e" in str(warnings_seen[0].message)


def test_fe_correct_refuses_a_charged_ligand_unless_allowed(t4, tmp_path, capsys, monkeypatch):
    from openmm_ani.cli import main

    from openmm_inputs import COMPLEX_CRD

    topology, _ = t4
    glu = ",".join(str(i) for i in residue(topology, "GLU", 5))
    legs = [arg for leg in ("complex", "solvent") for arg in (f"--{leg}-prmtop", COMPLEX_PRMTOP, f"--{leg}-coords",
                                                              COMPLEX_CRD, f"--{leg}-ligand-atoms", glu)]
    out = tmp_path / "fe"
    assert main(["fe-correct", *legs, "--implicit-solvent", "OBC2", "--output", str(out)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("openmm-ani: error: complex leg: the ML region (atoms ") and "-1.000 e" in line
    assert "--allow-charged" in line and not out.exists()
    # with the flag, the run goes on to the correction (replaced here by a stub that records its ligand)
    from openmm_ani.freeenergy import workflow

    seen = []
    monkeypatch.setattr(workflow, "run_correction", lambda complex_leg, *rest, **options: seen.append(complex_leg.ml_atoms))
    assert main(["fe-correct", *legs, "--implicit-solvent", "OBC2", "--output", str(out), "--allow-charged"]) == 0
    assert seen == [[int(i) for i in glu.split(",")]]
