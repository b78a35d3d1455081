"""The openmm-ani command line on real inputs (openmmtools' T4 lysozyme L99A files), checked against
the PyTorch model, and its one-line errors on bad inputs."""

import csv
import os
import subprocess
import sys

import mdtraj
import numpy as np
import pytest
import torch
from openmm import unit

import openmm_ani
from openmm_ani.cli import main
from openmm_ani.units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM

from openmm_inputs import COMPLEX_CRD, COMPLEX_PRMTOP, LIGAND_PDB, openmmtools_data

COMPLEX_PDB = openmmtools_data("T4-lysozyme-L99A-implicit", "complex.pdb")


def model_energy_std(positions_nm, numbers):
    """Ensemble mean and sample std (kJ/mol) from the float64 PyTorch model."""
    model = openmm_ani.models.load("ani1ccx")
    x = torch.tensor(np.asarray(positions_nm, dtype=np.float64) * NM_TO_ANGSTROM)[None]
    mean, std = model.energies_and_std(torch.tensor([numbers]), x)
    return float(mean) * HARTREE_TO_KJ_PER_MOL, float(std) * HARTREE_TO_KJ_PER_MOL


def member_force_spread(positions_nm, numbers):
    """Largest per-atom RMS deviation (kJ/mol/nm) of the 8 members' forces, each member loaded on its own."""
    forces = []
    for k in range(8):
        model = openmm_ani.models.load("ani1ccx", model_index=k)
        x = torch.tensor(np.asarray(positions_nm, dtype=np.float64) * NM_TO_ANGSTROM)[None].requires_grad_(True)
        (gradient,) = torch.autograd.grad(model(torch.tensor([numbers]), x)[0], x)
        forces.append(-gradient[0].numpy() * HARTREE_TO_KJ_PER_MOL * NM_TO_ANGSTROM)
    deviation = np.array(forces) - np.mean(forces, axis=0)
    return float(np.sqrt((deviation**2).sum(-1).mean(0)).max())


def ligand():
    traj = mdtraj.load(LIGAND_PDB)
    return traj, [a.element.number for a in traj.topology.atoms]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out):
    return [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]


def test_energy_pdb(capsys):
    code, out, err = run(capsys, "energy", LIGAND_PDB)
    assert code == 0, err
    (row,) = table_rows(out)
    traj, numbers = ligand()
    energy, std = model_energy_std(traj.xyz[0], numbers)
    assert float(row[1]) == pytest.approx(energy, abs=1e-3)
    assert float(row[2]) == pytest.approx(energy / HARTREE_TO_KJ_PER_MOL, abs=1e-7)
    assert float(row[3]) == pytest.approx(std, abs=1e-3)
    assert float(row[4]) == pytest.approx(member_force_spread(traj.xyz[0], numbers), rel=1e-6)


def test_energy_no_forces_has_no_force_column(capsys, tmp_path):
    """`--no-forces` leaves the force-spread column out (it printed a column of nan), in the table and the CSV."""
    code, out, err = run(capsys, "energy", LIGAND_PDB, "--no-forces")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["frame", "energy_kJ/mol", "energy_Ha", "energy_std_kJ/mol"] and "nan" not in out
    assert float(row.split()[1]) == pytest.approx(model_energy_std(ligand()[0].xyz[0], ligand()[1])[0], abs=1e-3)
    assert run(capsys, "energy", LIGAND_PDB, "--no-forces", "--csv", str(tmp_path / "e.csv"))[0] == 0
    with open(tmp_path / "e.csv") as handle:
        assert next(csv.reader(handle)) == ["frame", "energy_kJ/mol", "energy_Ha", "energy_std_kJ/mol"]


def test_coordinates_without_topology_name_the_option(capsys, tmp_path):
    ligand()[0].save_dcd(str(tmp_path / "traj.dcd"))
    one_line_error(*run(capsys, "energy", str(tmp_path / "traj.dcd"))[::2], "traj.dcd", "coordinates only", "--top")


def test_closed_pipe_exits_quietly(tmp_path):
    """`openmm-ani energy traj.dcd ... | head -2`: no "Broken pipe" error when the reader goes away."""
    traj, _ = ligand()
    frames = traj.xyz + np.random.default_rng(1).normal(scale=0.002, size=(200, traj.n_atoms, 3)).astype(np.float32)
    mdtraj.Trajectory(frames, traj.topology).save_dcd(str(tmp_path / "long.dcd"))
    command = f"{sys.executable} -m openmm_ani energy {tmp_path / 'long.dcd'} --top {LIGAND_PDB} --no-forces | head -2"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert len(result.stdout.splitlines()) == 2 and result.stdout.split()[0] == "frame"
    assert result.stderr == "", result.stderr
    assert result.returncode == 141  # 128 + SIGPIPE, as for `yes | head`


def test_energy_prmtop_inpcrd_selection_equals_ligand_alone(capsys):
    code, out, err = run(capsys, "energy", COMPLEX_CRD, "--top", COMPLEX_PRMTOP, "--ml-selection", "resname TMP",
                         "--no-forces")
    assert code == 0, err
    (row,) = table_rows(out)
    traj, numbers = ligand()  # ligand.pdb holds the same coordinates (3 decimals in Å)
    energy, _ = model_energy_std(traj.xyz[0], numbers)
    assert float(row[1]) == pytest.approx(energy, abs=0.5)
    complex_traj = mdtraj.load_restrt(COMPLEX_CRD, top=COMPLEX_PRMTOP)
    atoms = complex_traj.topology.select("resname TMP")
    exact, _ = model_energy_std(complex_traj.xyz[0][atoms], numbers)
    assert float(row[1]) == pytest.approx(exact, abs=1e-3)


def test_energy_trajectory_csv(capsys, tmp_path):
    traj, numbers = ligand()
    rng = np.random.default_rng(3)
    frames = traj.xyz[0][None] + rng.normal(scale=0.002, size=(3, traj.n_atoms, 3)).astype(np.float32)
    moved = mdtraj.Trajectory(frames, traj.topology)
    moved.save_dcd(str(tmp_path / "traj.dcd"))
    code, out, err = run(capsys, "energy", str(tmp_path / "traj.dcd"), "--top", LIGAND_PDB,
                         "--csv", str(tmp_path / "e.csv"))
    assert code == 0, err
    with open(tmp_path / "e.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["frame"]) for r in rows] == [0, 1, 2]
    reread = mdtraj.load(str(tmp_path / "traj.dcd"), top=LIGAND_PDB)
    for r, xyz in zip(rows, reread.xyz):
        energy, std = model_energy_std(xyz, numbers)
        assert float(r["energy_kJ/mol"]) == pytest.approx(energy, abs=1e-4)
        assert float(r["energy_std_kJ/mol"]) == pytest.approx(std, abs=1e-4)
    assert len({r["energy_kJ/mol"] for r in rows}) == 3


def one_line_error(code, err, *fragments):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("openmm-ani: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_energy_errors(capsys, tmp_path):
    one_line_error(*run(capsys, "energy", str(tmp_path / "missing.pdb"))[::2], "input file not found", "missing.pdb")
    one_line_error(*run(capsys, "energy", COMPLEX_PDB, "--no-forces")[::2], "unsupported element", "S at atom indices")
    text = open(LIGAND_PDB).read().splitlines()
    line = text[5]  # ATOM 5 (C5): replace x by nan
    text[5] = line[:30] + "     nan" + line[38:]
    (tmp_path / "nan.pdb").write_text("\n".join(text) + "\n")
    one_line_error(*run(capsys, "energy", str(tmp_path / "nan.pdb"))[::2], "NaN", "[4]")
    (tmp_path / "junk.xyzzy").write_text("nothing\n")
    one_line_error(*run(capsys, "energy", str(tmp_path / "junk.xyzzy"))[::2], "junk.xyzzy")
    one_line_error(*run(capsys, "energy", LIGAND_PDB, "--ml-selection", "resname NOPE")[::2], "matches no atoms")
    one_line_error(*run(capsys, "energy", LIGAND_PDB, "--model", "nosuchmodel")[::2], "unknown model")


def test_export_file_gives_model_energy(capsys, tmp_path):
    import openmm

    from openmm_ani.openmm.openmmtorch import import_openmmtorch

    code, out, err = run(capsys, "export", str(tmp_path / "ani.pt"), "--input", LIGAND_PDB, "--precision", "double")
    assert code == 0, err
    traj, numbers = ligand()
    system = openmm.System()
    for _ in numbers:
        system.addParticle(12.0)
    system.addForce(import_openmmtorch().TorchForce(str(tmp_path / "ani.pt")))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(traj.xyz[0].astype(np.float64))
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert energy == pytest.approx(model_energy_std(traj.xyz[0], numbers)[0], abs=1e-4)
    code, out, err = run(capsys, "export", str(tmp_path / "w.pt"), "--elements", "O,H,H")
    assert code == 0 and os.path.isfile(tmp_path / "w.pt")
    one_line_error(*run(capsys, "export", str(tmp_path / "x.pt"), "--elements", "O,Xx")[::2], "Xx")
    one_line_error(*run(capsys, "export", str(tmp_path / "x.pt"), "--elements", "O,S")[::2], "S")
    one_line_error(*run(capsys, "export", str(tmp_path / "x.pt"))[::2], "exactly one")


def test_simulate_pure_ani(capsys, tmp_path):
    prefix = str(tmp_path / "md")
    code, out, err = run(capsys, "simulate", LIGAND_PDB, "--steps", "20", "--report-interval", "10", "--threads", "1",
                         "--output", prefix, "--quiet", "--precision", "double")
    assert code == 0, err
    assert "ns/day" in out and "ms/step" in out
    frames = mdtraj.load(prefix + ".dcd", top=LIGAND_PDB)
    assert frames.n_frames == 2
    with open(prefix + ".csv") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    assert len(lines) == 2
    # the logged potential energy is the ANI energy of the logged frame
    energy = float(lines[-1].split(",")[2])
    assert energy == pytest.approx(model_energy_std(frames.xyz[-1], ligand()[1])[0], abs=0.05)  # DCD is float32
    disagreement = np.loadtxt(prefix + ".disagreement.csv", delimiter=",", comments="#")
    assert disagreement.shape == (2, 5) and disagreement[-1, 0] == 20
    # the force spread (it was a column of nan): the largest per-atom RMS deviation of the 8 members' forces
    assert disagreement[-1, 4] == pytest.approx(member_force_spread(frames.xyz[-1], ligand()[1]), rel=1e-3)


def test_simulate_ml_ligand_in_protein(capsys, tmp_path):
    prefix = str(tmp_path / "mix")
    code, out, err = run(capsys, "simulate", COMPLEX_CRD, "--top", COMPLEX_PRMTOP, "--ml-selection", "resname TMP",
                         "--implicit-solvent", "OBC2", "--steps", "2", "--report-interval", "1", "--threads", "1",
                         "--output", prefix, "--quiet")
    assert code == 0, err
    assert mdtraj.load(prefix + ".dcd", top=COMPLEX_PRMTOP).n_frames == 2


def test_simulate_errors(capsys, tmp_path):
    one_line_error(*run(capsys, "simulate", LIGAND_PDB, "--steps", "-3")[::2], "--steps")
    one_line_error(*run(capsys, "simulate", LIGAND_PDB, "--ml-selection", "name C1", "--steps", "1",
                        "--output", str(tmp_path / "m"))[::2], "force field")
    one_line_error(*run(capsys, "simulate", LIGAND_PDB, "--steps", "1", "--output",
                        str(tmp_path / "no" / "dir" / "x"))[::2], "does not exist")


def test_benchmark_runs(capsys):
    code, out, err = run(capsys, "benchmark", "--cases", "pxylene", "--steps", "3", "--no-openmmml", "--threads", "1")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line.startswith("pxylene")]
    assert len(rows) == 2 and all(float(r[3]) > 0 for r in rows)
    one_line_error(*run(capsys, "benchmark", "--cases", "nope")[::2], "unknown benchmark case")


def test_every_command_is_registered():
    """The parser lists each command module's command, the training and free-energy ones included."""
    from openmm_ani.cli import build_parser

    listed = build_parser().format_help()
    names = [line.split()[0] for line in listed.split("COMMAND\n", 2)[-1].splitlines() if line.startswith("    ") and not line.startswith("      ")]
    assert names == ["energy", "simulate", "export", "benchmark", "fe-correct", "train", "refine", "info"]


def test_console_script_and_module_entry():
    result = subprocess.run([sys.executable, "-m", "openmm_ani", "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for command in ("energy", "simulate", "export", "benchmark"):
        assert command in result.stdout
    result = subprocess.run([sys.executable, "-m", "openmm_ani", "energy", "/nonexistent.pdb"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "openmm-ani: error: input file not found: /nonexistent.pdb"
    assert "Traceback" not in result.stderr


def test_coincident_atoms_in_a_later_frame_are_named(capsys, tmp_path):
    """Issue 9 item 4: two atoms at one position made ANI's energy NaN and `energy` printed nan with exit 0."""
    traj, _ = ligand()
    frames = np.repeat(traj.xyz, 4, axis=0)
    frames[2, 5] = frames[2, 11]
    mdtraj.Trajectory(frames, traj.topology).save_dcd(str(tmp_path / "traj.dcd"))
    one_line_error(*run(capsys, "energy", str(tmp_path / "traj.dcd"), "--top", LIGAND_PDB)[::2],
                   "frame 2 of", "atoms 5 and 11 are at the same position")


def test_trajectory_reading_prints_nothing_else(capfd, tmp_path):
    """mdtraj's DCD plugin writes to file descriptor 1; the table on stdout has only the table."""
    traj, _ = ligand()
    traj.save_dcd(str(tmp_path / "one.dcd"))
    assert main(["energy", str(tmp_path / "one.dcd"), "--top", LIGAND_PDB, "--no-forces"]) == 0
    out, _ = capfd.readouterr()
    assert "dcdplugin" not in out and len(out.strip().splitlines()) == 2


def test_ctrl_c_during_rescoring(tmp_path):
    """A real SIGINT while `energy` rescores a long trajectory: exit 130, one line, no CSV (it is written atomically).

    The signal goes out once the first frame's row is on stdout (``--verbose`` prints the table
    as frames are computed): the model is loaded and frames are being evaluated.
    """
    from interruptible import start

    traj, _ = ligand()
    frames = traj.xyz + np.random.default_rng(0).normal(scale=0.002, size=(20000, traj.n_atoms, 3)).astype(np.float32)
    mdtraj.Trajectory(frames, traj.topology).save_dcd(str(tmp_path / "long.dcd"))
    with start("energy", str(tmp_path / "long.dcd"), "--top", LIGAND_PDB, "--csv", str(tmp_path / "e.csv"), "--verbose") as child:
        child.wait_for_line(lambda line: line.split()[:1] == ["0"])
        code, out, err = child.interrupt(timeout=120)
    assert code == 130, err
    assert err.strip().splitlines() == ["openmm-ani: interrupted"]
    assert 2 <= len(out.strip().splitlines()) < 20001  # header and at least the first row, not all frames
    assert os.listdir(tmp_path) == ["long.dcd"]
