"""Malformed input to every ``openmm-ani`` command: exit status 1, one ``openmm-ani: error:`` line, no traceback (issue 9).

Each case feeds one broken thing (a file, an option value, an output path) to a command that
would otherwise work, and checks that the one error line names what is wrong (the fragment next
to the case). The cases of issue 9 are marked with their item number; the others are new.
``fe-correct`` gets only argument and file errors that are found before any simulation.
"""

import os
import subprocess
import sys
from typing import Dict, List, Tuple

import mdtraj
import numpy as np
import pytest

import openmm_ani
from openmm_ani.cli import main
from openmm_ani.training.data import write_h5

from openmm_inputs import COMPLEX_CRD, COMPLEX_PRMTOP, LIGAND_PDB

LIGAND_LINES = open(LIGAND_PDB).read().splitlines()  # REMARK, then 18 ATOM records without element columns


def pdb_with(path, edit) -> str:
    lines = list(LIGAND_LINES)
    edit(lines)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


def set_x(line: str, text: str) -> str:
    return line[:30] + f"{text:>8}" + line[38:]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Dict[str, str]:
    """Broken inputs, built once."""
    d = tmp_path_factory.mktemp("fuzz")
    f: Dict[str, str] = {"dir": str(d)}
    f["empty"] = str(d / "empty.pdb")
    open(f["empty"], "w").close()
    f["garbage_pdb"] = str(d / "garbage.pdb")
    open(f["garbage_pdb"], "wb").write(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    f["garbage_dcd"] = str(d / "garbage.dcd")
    open(f["garbage_dcd"], "wb").write(b"\x54\x00\x00\x00CORD" + b"\xff" * 300)
    f["unknown_ext"] = str(d / "molecule.xyzzy")
    open(f["unknown_ext"], "w").write("18\nnot a format anyone reads\n")
    f["nan"] = pdb_with(d / "nan.pdb", lambda ls: ls.__setitem__(5, set_x(ls[5], "nan")))
    f["inf"] = pdb_with(d / "inf.pdb", lambda ls: ls.__setitem__(7, set_x(ls[7], "inf")))
    f["dup"] = pdb_with(d / "dup.pdb", lambda ls: ls.__setitem__(3, ls[3][:30] + ls[2][30:54] + ls[3][54:]))  # atom 2 on atom 1
    f["cl"] = pdb_with(d / "cl.pdb", lambda ls: ls.__setitem__(9, ls[9][:12] + " CL1" + ls[9][16:]))  # item 10
    f["sulfur"] = pdb_with(d / "sulfur.pdb", lambda ls: ls.__setitem__(9, ls[9].ljust(76) + " S"))
    f["xx"] = pdb_with(d / "xx.pdb", lambda ls: ls.__setitem__(9, ls[9].ljust(76) + "XX"))
    f["small_box"] = pdb_with(d / "small_box.pdb", lambda ls: ls.__setitem__(
        0, "CRYST1    8.500    8.500    8.500  90.00  90.00  90.00 P 1           1"))  # item 14
    traj = mdtraj.load(LIGAND_PDB)
    frames = traj.xyz[0][None] + np.random.default_rng(1).normal(scale=0.01, size=(20, traj.n_atoms, 3)).astype(np.float32)
    full = str(d / "full.dcd")
    mdtraj.Trajectory(frames, traj.topology).save_dcd(full)
    data = open(full, "rb").read()
    f["truncated_dcd"] = str(d / "truncated.dcd")  # item 10: cut off in frame 12 of 20
    open(f["truncated_dcd"], "wb").write(data[: 276 + 11 * 240 + 100])
    f["full_dcd"] = full
    arrays = dict(np.load(openmm_ani.models.bundled_path("ani1x")))
    f["corrupt_npz"] = str(d / "corrupt.npz")  # item 14: CRC-corrupt archive
    np.savez(f["corrupt_npz"], **arrays)
    blob = bytearray(open(f["corrupt_npz"], "rb").read())
    blob[len(blob) // 2] ^= 0xFF
    open(f["corrupt_npz"], "wb").write(bytes(blob))
    arrays["C.1.weight"] = arrays["C.1.weight"].copy()
    arrays["C.1.weight"][0, 0, 0] = np.nan
    f["nan_npz"] = str(d / "nan_weights.npz")  # item 6
    np.savez(f["nan_npz"], **arrays)
    f["not_npz"] = str(d / "model.npz")
    open(f["not_npz"], "w").write("a text file\n")
    os.makedirs(d / "empty_folder")
    f["empty_folder"] = str(d / "empty_folder")
    os.makedirs(d / "taken.dcd")  # a folder where an output file should go
    f["taken"] = str(d / "taken")
    f["a_file"] = str(d / "plain.txt")
    open(f["a_file"], "w").write("x")
    f["garbage_h5"] = str(d / "garbage.h5")
    open(f["garbage_h5"], "wb").write(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    f["negative_h5"] = str(d / "negative.h5")
    write_h5(f["negative_h5"], {"CH4": {"atomic_numbers": np.array([6, 1, 1, 1, -1]),
                                        "coordinates": np.zeros((2, 5, 3)) + np.arange(5)[:, None],
                                        "wb97x_dz.energy": np.array([-40.0, -40.1])}})
    f["bad_json"] = str(d / "config.json")
    open(f["bad_json"], "w").write('{"elements": ["H", "C"], ')
    f["bad_xyz"] = str(d / "bad.xyz")
    open(f["bad_xyz"], "w").write("two\ncomment\nH 0 0 0\nH 0 0 0.7\n")
    return f


def cases() -> List[Tuple[str, List[str], str]]:
    """(id, argv with {placeholders} for the fixture's files, fragment the error line must contain)."""
    L = LIGAND_PDB
    out = "{dir}/out"
    return [
        # --- energy ---
        ("energy-missing-file", ["energy", "{dir}/nothere.pdb"], "input file not found"),
        ("energy-empty-file", ["energy", "{empty}"], "empty.pdb is empty"),
        ("energy-binary-garbage", ["energy", "{garbage_pdb}"], "garbage.pdb"),
        ("energy-unknown-extension", ["energy", "{unknown_ext}"], "molecule.xyzzy"),
        ("energy-nan-coordinates", ["energy", "{nan}"], "atoms [4] are NaN or infinite"),
        ("energy-inf-coordinates", ["energy", "{inf}"], "atoms [6] are NaN or infinite"),
        ("energy-coincident-atoms-item4", ["energy", "{dup}"], "frame 0 of {dup}: atoms 1 and 2 are at the same position"),
        ("energy-ambiguous-element-item10", ["energy", "{cl}"], "8 (TMP:CL1: C or Cl)"),
        ("energy-unsupported-element", ["energy", "{sulfur}"], "S at atom indices [8]"),
        ("energy-unknown-element", ["energy", "{xx}"], "xx.pdb"),
        ("energy-truncated-dcd-item10", ["energy", "{truncated_dcd}", "--top", L], "header lists 20 frames but only 11"),
        ("energy-dcd-without-topology", ["energy", "{full_dcd}"], "full.dcd"),
        ("energy-dcd-wrong-topology", ["energy", "{full_dcd}", "--top", COMPLEX_PRMTOP], "full.dcd"),
        ("energy-garbage-dcd", ["energy", "{garbage_dcd}", "--top", L], "garbage.dcd"),
        ("energy-missing-topology", ["energy", "{full_dcd}", "--top", "{dir}/none.prmtop"], "topology file not found"),
        ("energy-prmtop-with-wrong-coordinates", ["energy", L, "--top", COMPLEX_PRMTOP], "ligand.pdb"),
        ("energy-box-too-small-item14", ["energy", "{small_box}"], "periodic box is too small"),
        ("energy-selection-syntax-item14", ["energy", L, "--ml-selection", "name C1 and (("], "invalid syntax at character 15"),
        ("energy-selection-empty", ["energy", L, "--ml-selection", "index 99999"], "matches no atoms"),
        ("energy-corrupt-model-item14", ["energy", L, "--model", "{corrupt_npz}"], "CRC"),
        ("energy-nan-model-item6", ["energy", L, "--model", "{nan_npz}"], "NaN or infinite"),
        ("energy-text-as-model", ["energy", L, "--model", "{not_npz}"], "model.npz is not an openmm-ani model file"),
        ("energy-empty-folder-as-model", ["energy", L, "--model", "{empty_folder}"], "empty_folder"),
        ("energy-member-out-of-range", ["energy", L, "--model-index", "8"], "model_index must be None or in 0..7"),
        ("energy-member-not-integer-item16", ["energy", L, "--model-index", "1.5"], "--model-index"),
        ("energy-csv-is-a-folder", ["energy", L, "--csv", "{dir}"], "is a folder"),
        ("energy-csv-missing-folder", ["energy", L, "--csv", "{dir}/no/e.csv"], "does not exist"),
        ("energy-periodic-without-box", ["energy", L, "--periodic", "yes"], "no box vectors"),
        ("energy-bad-choice-item16", ["energy", L, "--precision", "quad"], "--precision"),
        ("energy-no-input-item16", ["energy"], "required: input"),
        # --- simulate ---
        ("simulate-negative-steps-item16", ["simulate", L, "--steps", "-3", "--output", out], "--steps"),
        ("simulate-negative-threads-item16", ["simulate", L, "--threads", "-3", "--output", out], "--threads"),
        ("simulate-zero-timestep", ["simulate", L, "--timestep", "0", "--output", out], "timestep_fs must be positive"),
        ("simulate-nan-timestep", ["simulate", L, "--timestep", "nan", "--output", out], "timestep_fs must be positive"),
        ("simulate-infinite-friction", ["simulate", L, "--friction", "inf", "--output", out], "friction_per_ps must be"),
        ("simulate-negative-temperature", ["simulate", L, "--temperature", "-5", "--output", out], "temperature_k"),
        ("simulate-zero-report-interval", ["simulate", L, "--report-interval", "0", "--output", out], "--report-interval"),
        ("simulate-unknown-platform", ["simulate", L, "--platform", "Nope", "--steps", "1", "--output", out], "Nope"),
        ("simulate-ml-without-force-field", ["simulate", L, "--ml-selection", "name C1", "--output", out], "force field"),
        ("simulate-missing-force-field-file", ["simulate", L, "--ml-selection", "name C1", "--forcefield",
                                               "{dir}/nothere.xml", "--steps", "1", "--output", out], "nothere.xml"),
        ("simulate-output-folder-missing", ["simulate", L, "--output", "{dir}/no/md"], "does not exist"),
        ("simulate-output-under-a-file-item14", ["simulate", L, "--output", "{a_file}/md"], "plain.txt is a file"),
        ("simulate-output-is-a-folder-item14", ["simulate", L, "--steps", "1", "--output", "{taken}", "--overwrite"],
         "Is a directory"),
        ("simulate-existing-outputs-item15", ["simulate", L, "--steps", "1", "--output", "{taken}"], "--resume"),
        ("simulate-resume-and-overwrite", ["simulate", L, "--resume", "--overwrite"], "not allowed with"),
        ("simulate-coincident-atoms-item4", ["simulate", "{dup}", "--output", out], "atoms 1 and 2 are at the same position"),
        ("simulate-nan-coordinates-item16", ["simulate", "{nan}", "--output", out], "NaN or infinite"),
        ("simulate-box-too-small-item14", ["simulate", "{small_box}", "--steps", "1", "--output", out, "--quiet"],
         "periodic box is too small"),
        ("simulate-truncated-dcd", ["simulate", "{truncated_dcd}", "--top", L, "--output", out], "is truncated"),
        ("simulate-corrupt-model", ["simulate", L, "--model", "{corrupt_npz}", "--output", out], "CRC"),
        # --- export ---
        ("export-no-source", ["export", "{dir}/x.pt"], "exactly one"),
        ("export-two-sources", ["export", "{dir}/x.pt", "--input", L, "--elements", "C"], "exactly one"),
        ("export-unknown-element", ["export", "{dir}/x.pt", "--elements", "O,Xx"], "Xx"),
        ("export-no-elements", ["export", "{dir}/x.pt", "--elements", ","], "no ML atoms"),
        ("export-garbage-input", ["export", "{dir}/x.pt", "--input", "{garbage_pdb}"], "garbage.pdb"),
        ("export-output-is-a-folder-item14", ["export", "{dir}", "--elements", "O,H,H"], "is a folder"),
        ("export-output-folder-missing-item14", ["export", "{dir}/no/x.pt", "--elements", "O,H,H"], "does not exist"),
        ("export-output-under-a-file-item14", ["export", "{a_file}/x.pt", "--elements", "O,H,H"], "does not exist"),
        ("export-coincident-atoms-item4", ["export", "{dir}/x.pt", "--input", "{dup}"], "atoms 1 and 2 are at the same"),
        ("export-selection-syntax", ["export", "{dir}/x.pt", "--input", L, "--ml-selection", "(("], "invalid syntax"),
        ("export-periodic-without-box", ["export", "{dir}/x.pt", "--input", L, "--periodic", "yes"], "no box vectors"),
        ("export-nan-model", ["export", "{dir}/x.pt", "--elements", "O,H,H", "--model", "{nan_npz}"], "NaN or infinite"),
        # --- benchmark ---
        ("benchmark-unknown-case", ["benchmark", "--cases", "nope"], "unknown benchmark case"),
        ("benchmark-zero-steps", ["benchmark", "--steps", "0"], "--steps"),
        ("benchmark-negative-threads", ["benchmark", "--threads", "-1"], "--threads"),
        # --- fe-correct: argument and file errors found before any simulation ---
        ("fe-correct-no-output", ["fe-correct", "--ligand-resname", "TMP"], "--output"),
        ("fe-correct-bad-lambdas", ["fe-correct", "--output", out, "--lambdas", "0,a,1", "--ligand-resname", "TMP",
                                    "--complex-prmtop", COMPLEX_PRMTOP, "--complex-coords", COMPLEX_CRD,
                                    "--solvent-pdb", L, "--forcefield", "amber14-all.xml"], "--lambdas"),
        ("fe-correct-bad-iterations", ["fe-correct", "--output", out, "--n-iterations", "many"], "--n-iterations"),
        ("fe-correct-bad-duration", ["fe-correct", "--output", out, "--max-time", "soon"], "--max-time"),
        ("fe-correct-fraction-one", ["fe-correct", "--output", out, "--equilibrium-fraction", "1"], "--equilibrium-fraction"),
        ("fe-correct-fraction-zero", ["fe-correct", "--output", out, "--equilibrium-fraction", "0"], "--equilibrium-fraction"),
        ("fe-correct-fraction-percent", ["fe-correct", "--output", out, "--equilibrium-fraction", "60%"],
         "--equilibrium-fraction"),
        # --- train ---
        ("train-no-subcommand", ["train"], "required"),
        ("train-missing-data", ["train", "pretrain", "--data", "{dir}/none.h5", "--output", "{dir}/m.npz",
                                "--config", "tiny"], "training data file not found"),
        ("train-garbage-data", ["train", "pretrain", "--data", "{garbage_h5}", "--output", "{dir}/m.npz",
                                "--config", "tiny", "--work-dir", "{dir}/w1"], "garbage.h5"),
        ("train-empty-data", ["train", "pretrain", "--data", "{empty}", "--output", "{dir}/m.npz", "--config", "tiny",
                              "--work-dir", "{dir}/w2"], "empty.pdb"),
        ("train-negative-atomic-number-item7", ["train", "pretrain", "--data", "{negative_h5}", "--output", "{dir}/m.npz",
                                                "--config", "tiny", "--work-dir", "{dir}/w3"], "negative atomic numbers"),
        ("train-unknown-label", ["train", "pretrain", "--energy-key", "nope.energy", "--output", "{dir}/m.npz",
                                 "--config", "tiny", "--work-dir", "{dir}/w4"], "no label 'nope.energy'"),
        ("train-unknown-config", ["train", "pretrain", "--config", "huge", "--output", "{dir}/m.npz",
                                  "--work-dir", "{dir}/w5"], "unknown model configuration 'huge'"),
        ("train-config-bad-json", ["train", "pretrain", "--config", "{bad_json}", "--output", "{dir}/m.npz",
                                   "--work-dir", "{dir}/w6"], "config.json"),
        ("train-zero-epochs-item16", ["train", "pretrain", "--epochs", "0", "--output", "{dir}/m.npz"], "--epochs"),
        ("train-output-folder-missing", ["train", "pretrain", "--output", "{dir}/no/m.npz"], "does not exist"),
        ("train-work-dir-is-a-file", ["train", "pretrain", "--output", "{dir}/m.npz", "--work-dir", "{a_file}",
                                      "--config", "tiny"], "is a file"),
        ("transfer-unknown-source", ["train", "transfer", "--source", "nosuch", "--output", "{dir}/t.npz",
                                     "--work-dir", "{dir}/w7"], "unknown model 'nosuch'"),
        ("transfer-too-many-members", ["train", "transfer", "--members", "99", "--output", "{dir}/t.npz",
                                       "--work-dir", "{dir}/w8"], "--members must be in 1..8"),
        ("transfer-bad-freeze", ["train", "transfer", "--freeze", "a,b", "--output", "{dir}/t.npz"], "--freeze"),
        ("evaluate-unknown-model", ["train", "evaluate", "--model", "nosuch"], "unknown model 'nosuch'"),
        ("evaluate-missing-data", ["train", "evaluate", "--model", "ani1x", "--data", "{dir}/none.h5"], "none.h5"),
        ("evaluate-json-missing-folder", ["train", "evaluate", "--model", "ani1x", "--json", "{dir}/no/m.json"],
         "does not exist"),
        ("select-garbage-data", ["train", "select", "--model", "ani1x", "--data", "{garbage_h5}"], "garbage.h5"),
        ("select-zero-number", ["train", "select", "--model", "ani1x", "--data", "{garbage_h5}", "--number", "0"],
         "--number"),
        ("labels-missing-input", ["train", "labels", "{dir}/none.xyz", "-o", "{dir}/l.h5"], "structure file not found"),
        ("labels-bad-xyz", ["train", "labels", "{bad_xyz}", "-o", "{dir}/l.h5"], "expected an atom count"),
        ("labels-negative-cc", ["train", "labels", "{bad_xyz}", "-o", "{dir}/l.h5", "--cc", "-1"], "--cc"),
    ]


#: Cases whose error is raised inside an OpenMM Context (the TorchScript module run by openmm-torch): they run in a
#: child process, so that a crash there fails the case instead of ending the test session.
IN_CHILD = {"simulate-box-too-small-item14"}


@pytest.mark.parametrize("name, argv, fragment", cases(), ids=[c[0] for c in cases()])
def test_malformed_input(files, name, argv, fragment, capsys):
    argv = [a.format(**files) for a in argv]
    fragment = fragment.format(**files)
    if name in IN_CHILD:
        child = subprocess.run([sys.executable, "-m", "openmm_ani"] + argv, capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
        code, err = child.returncode, child.stderr
    else:
        code = main(argv)
        _, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("openmm-ani: error:")]
    assert code == 1, (code, err)
    assert len(errors) == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert fragment in errors[0], errors[0]
    assert len(errors[0]) < 600, errors[0]  # one readable line, not a dump of parser state
