"""README.md runs: every fenced ```python block, and every row of the "Command line" table that can
run on small inputs, with the placeholder file names replaced by real small files. Energies are
checked against TorchANI 2.2.4 (ANI-1ccx, float64), the independent reference."""

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
from openmm import app, unit

from openmm_inputs import COMPLEX_CRD, COMPLEX_PRMTOP, LIGAND_PDB
from paths import ROOT

README = os.path.join(ROOT, "README.md")
#: Ha -> kJ/mol, CODATA 2018.
HARTREE_TO_KJ = 2625.4996394798254
#: Command-line rows not run here, each covered by its own tests (benchmark: tests/cli; fe-correct:
#: tests/freeenergy and the free-energy examples; train: tests/training and the training example).
#: Any other row must run: a new row fails test_every_command_row_is_handled until it is handled.
#: run elsewhere: benchmark (tests/benchmark), fe-correct (tests/cli/test_fe_cli.py), train and refine
#: (tests/training, their smallest settings need PySCF and minutes)
SKIPPED_ROWS = {"openmm-ani benchmark", "openmm-ani fe-correct ...", "openmm-ani train ...", "openmm-ani refine ..."}


def readme() -> str:
    with open(README, encoding="utf-8") as stream:
        return stream.read()


def python_blocks() -> List[str]:
    return re.findall(r"^```python\n(.*?)^```", readme(), flags=re.S | re.M)


def command_rows() -> List[str]:
    """The commands of the "Command line" section's table, as written."""
    section = readme().split("## Command line", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(openmm-ani[^`]*)` \|", section, flags=re.M)


def env() -> Dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", OPENMM_CPU_THREADS="1")


def torchani_hartree(atomic_numbers: Sequence[int], frames_angstrom: np.ndarray) -> np.ndarray:
    """ANI-1ccx ensemble energies (Ha) of ``frames_angstrom`` [F, N, 3] by TorchANI 2.2.4 in float64."""
    torchani = pytest.importorskip("torchani", reason="TorchANI (test reference, scripts/setup_test_reference.py) is not installed")
    import torch

    model = torchani.models.ANI1ccx(periodic_table_index=True).double()
    frames = np.asarray(frames_angstrom, dtype=np.float64)
    species = torch.tensor([list(atomic_numbers)] * len(frames))
    with torch.no_grad():
        return model((species, torch.tensor(frames))).energies.numpy()


def molecule() -> Tuple[List[int], np.ndarray]:
    pdb = app.PDBFile(LIGAND_PDB)
    return ([a.element.atomic_number for a in pdb.topology.atoms()],
            pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> str:
    """A folder with the README's file names: molecule.pdb and top.pdb (p-xylene), traj.dcd (3 frames
    of it), complex.prmtop and complex.inpcrd (openmmtools' T4 lysozyme L99A + p-xylene)."""
    folder = tmp_path_factory.mktemp("readme_inputs")
    shutil.copy(LIGAND_PDB, folder / "molecule.pdb")
    shutil.copy(LIGAND_PDB, folder / "top.pdb")
    shutil.copy(COMPLEX_PRMTOP, folder / "complex.prmtop")
    shutil.copy(COMPLEX_CRD, folder / "complex.inpcrd")
    pdb = app.PDBFile(LIGAND_PDB)
    with open(folder / "traj.dcd", "wb") as stream:
        dcd = app.DCDFile(stream, pdb.topology, 0.001)
        for frame in trajectory_frames():
            dcd.writeModel(frame * unit.angstrom)
    return str(folder)


def trajectory_frames() -> np.ndarray:
    """Three frames (Angstrom): the PDB and two small deterministic displacements of it."""
    _, x = molecule()
    shift = 0.02 * np.sin(np.arange(x.size).reshape(x.shape))
    return np.stack([x, x + shift, x - shift])


# ---------------------------------------------------------------- python blocks

#: Runs one README block, then prints the energy of the ``system`` it built at molecule.pdb's positions.
BLOCK_RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
exec(compile(open(sys.argv[1]).read(), "README.md block", "exec"), namespace)
import openmm
from openmm import app, unit
system = namespace.get("system")
result = {}
if isinstance(system, openmm.System):
    pdb = app.PDBFile("molecule.pdb")
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    result["energy_kj"] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
print("RESULT " + json.dumps(result))
"""


def test_readme_has_python_blocks() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_block_runs(index: int, inputs: str, tmp_path) -> None:
    """Block ``index`` runs as a script (exit 0) in a folder holding molecule.pdb; a ``system`` it
    builds gives TorchANI's ANI-1ccx energy for molecule.pdb."""
    block = python_blocks()[index]
    for name in os.listdir(inputs):
        os.symlink(os.path.join(inputs, name), tmp_path / name)
    (tmp_path / "block.py").write_text(block)
    result = subprocess.run([sys.executable, "-c", BLOCK_RUNNER, "block.py"], cwd=str(tmp_path), env=env(), timeout=240,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"README python block {index} failed:\n{block}\n{result.stderr[-3000:]}"
    reported = json.loads(result.stdout.rsplit("RESULT ", 1)[1])
    assert "energy_kj" in reported, f"block {index} builds no System named 'system'"
    z, x = molecule()
    expected = float(torchani_hartree(z, x[None])[0]) * HARTREE_TO_KJ
    # single precision ANI of |E| = 8.2e5 kJ/mol: well within 0.02 kJ/mol (measured 1.7e-4 for block 0)
    assert reported["energy_kj"] == pytest.approx(expected, abs=0.02)


# ---------------------------------------------------------------- command line table

def small_steps(command: str) -> int:
    """MD steps of the small run of a simulate row: 1/500 of the row's (default 1000: 2)."""
    match = re.search(r"--steps (\d+)", command)
    return (int(match.group(1)) if match else 1000) // 500


def small(command: str) -> List[str]:
    """The row's command line made small: real selections for the T4 complex (ligand residue TMP),
    1/500 of the steps, reports every step."""
    command = command.replace("resname LIG", "resname TMP")
    args = shlex.split(re.sub(r"--steps \d+ ?", "", command))
    if args[1] == "simulate":
        args += ["--steps", str(small_steps(command)), "--report-interval", "1", "--quiet"]
    return [sys.executable, "-m", "openmm_ani", *args[1:]]


def table_rows(text: str) -> List[List[float]]:
    """Numeric rows of ``openmm-ani energy``'s table."""
    return [[float(v) for v in line.split()] for line in text.splitlines() if re.match(r"^\s*\d+\s+-?\d", line)]


def frames_of(path: str, top: str) -> int:
    mdtraj = pytest.importorskip("mdtraj")
    return mdtraj.load(path, top=top).n_frames


def check_row(command: str, folder: str, stdout: str) -> None:
    """What the row's "does" column promises, on the small inputs."""
    z, x = molecule()
    if command == "openmm-ani energy molecule.pdb":
        (row,) = table_rows(stdout)
        # single precision (the default) of |E| = 310 Ha: measured 1.6e-7 Ha (4e-4 kJ/mol) off float64 TorchANI
        assert row[2] == pytest.approx(float(torchani_hartree(z, x[None])[0]), abs=2e-6)
        assert row[1] == pytest.approx(row[2] * HARTREE_TO_KJ, abs=1e-3)
    elif command.startswith("openmm-ani energy traj.dcd"):
        with open(os.path.join(folder, "e.csv")) as stream:
            rows = list(csv.DictReader(stream))
        column = next(k for k in rows[0] if "Ha" in k)
        expected = torchani_hartree(z, trajectory_frames())
        # the DCD holds float32 Angstrom: 3e-7 A rounding moves |E| by < 1e-7 Ha
        np.testing.assert_allclose([float(r[column]) for r in rows], expected, rtol=0, atol=4e-6)
    elif command.startswith("openmm-ani energy complex.inpcrd"):
        prmtop = app.AmberPrmtopFile(COMPLEX_PRMTOP)
        ligand = [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
        positions = app.AmberInpcrdFile(COMPLEX_CRD).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        atoms = list(prmtop.topology.atoms())
        expected = torchani_hartree([atoms[i].element.atomic_number for i in ligand], positions[ligand][None])[0]
        (row,) = table_rows(stdout)
        assert row[2] == pytest.approx(float(expected), abs=2e-6)
    elif command.startswith("openmm-ani simulate"):
        steps = small_steps(command)
        top = os.path.join(folder, "complex.prmtop" if "--top" in command else "molecule.pdb")
        assert frames_of(os.path.join(folder, "openmm-ani-md.dcd"), top) == steps
        with open(os.path.join(folder, "openmm-ani-md.csv")) as stream:
            assert len([line for line in stream if line.strip() and not line.startswith("#")]) == steps
        assert os.path.getsize(os.path.join(folder, "openmm-ani-md.chk")) > 0
    elif command.startswith("openmm-ani export"):
        import openmm
        import openmmtorch

        system = openmm.System()
        for _ in z:
            system.addParticle(1.0)
        system.addForce(openmmtorch.TorchForce(os.path.join(folder, "ani.pt")))
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(x * 0.1)
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        assert energy == pytest.approx(float(torchani_hartree(z, x[None])[0]) * HARTREE_TO_KJ, abs=0.02)
    elif command == "openmm-ani info":
        import openmm
        import torch

        from openmm_ani import kernels

        lines = dict(line.split(": ", 1) for line in stdout.splitlines())
        assert lines["torch"] == torch.__version__ and lines["openmm"] == openmm.__version__
        assert lines["C++ kernels"].startswith("available" if kernels.available() else "NOT available")
    else:
        raise AssertionError(f"README command row {command!r} has no check: add one to tests/test_readme.py")


def test_every_command_row_is_handled() -> None:
    rows = command_rows()
    assert len(rows) >= 10
    assert SKIPPED_ROWS <= set(rows), "a skipped row was renamed: update SKIPPED_ROWS"


def test_command_rows_run(inputs: str, tmp_path) -> None:
    """Each runnable row, in table order, exits 0 and does what its row says. A ``--resume`` row
    continues in the folder of the simulate row before it; every other row gets its own folder."""
    folder = None
    ran = 0
    for index, command in enumerate(command_rows()):
        if command in SKIPPED_ROWS:
            continue
        if "--resume" not in command or folder is None:
            folder = str(tmp_path / f"row{index}")
            os.makedirs(folder)
            for name in os.listdir(inputs):
                os.symlink(os.path.join(inputs, name), os.path.join(folder, name))
        result = subprocess.run(small(command), cwd=folder, env=env(), timeout=300, capture_output=True, text=True)
        assert result.returncode == 0, f"README row {command!r} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        check_row(command, folder, result.stdout)
        ran += 1
    assert ran == len(command_rows()) - len(SKIPPED_ROWS) >= 7
