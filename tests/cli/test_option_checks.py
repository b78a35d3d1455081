"""Options a run cannot use are refused in one line, before any output file is written (issue 19).

An unavailable OpenMM platform names the platforms there are (and, for CUDA, the ``cuda12``
extra); ``--implicit-solvent``/``--forcefield`` on a pure-ANI input and ``--threads`` on a
non-CPU platform are refused instead of being ignored without a word.
"""

import os

import openmm
import pytest

from openmm_ani.cli import main
from openmm_ani.openmm.platforms import get_platform, platform_names

from openmm_inputs import LIGAND_PDB

REGISTERED = sorted(openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms()))


def one_error_line(capsys, code, *fragments):
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("openmm-ani: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_platform_names_are_openmms():
    assert sorted(platform_names()) == REGISTERED
    assert get_platform("Reference").getName() == "Reference"


@pytest.mark.skipif("CUDA" in REGISTERED, reason="this machine has the CUDA platform")
def test_unavailable_platform_before_any_file(capsys, tmp_path):
    prefix = tmp_path / "md"
    line = one_error_line(capsys, main(["simulate", LIGAND_PDB, "--steps", "5", "--platform", "CUDA",
                                        "--output", str(prefix)]), "'CUDA'", 'openmm-ani[cuda12]')
    assert all(name in line for name in REGISTERED)
    out = tmp_path / "fe"
    legs = ["--complex-prmtop", LIGAND_PDB, "--complex-coords", LIGAND_PDB, "--solvent-prmtop", LIGAND_PDB,
            "--solvent-coords", LIGAND_PDB, "--ligand-resname", "TMP"]
    one_error_line(capsys, main(["fe-correct", *legs, "--platform", "CUDA", "--output", str(out)]), "'CUDA'", "cuda12")
    one_error_line(capsys, main(["simulate", LIGAND_PDB, "--platform", "NoSuch", "--output", str(prefix)]),
                   "'NoSuch'", "available: ")
    assert os.listdir(tmp_path) == []  # no settings.json, no checkpoint, no output folder


@pytest.mark.parametrize("option", [["--implicit-solvent", "OBC2"], ["--forcefield", "amber14-all.xml"]])
def test_mm_options_on_a_pure_ani_input_are_refused(capsys, tmp_path, option):
    code = main(["simulate", LIGAND_PDB, "--steps", "5", *option, "--output", str(tmp_path / "md")])
    one_error_line(capsys, code, option[0], "--ml-selection", "ANI alone")
    assert os.listdir(tmp_path) == []


def test_threads_on_a_non_cpu_platform_are_refused(capsys, tmp_path):
    code = main(["simulate", LIGAND_PDB, "--steps", "5", "--platform", "Reference", "--threads", "2",
                 "--output", str(tmp_path / "md")])
    one_error_line(capsys, code, "threads=2", "CPU platform only")
    assert os.listdir(tmp_path) == []


def test_info_reports_versions_and_kernels(capsys, monkeypatch):
    import torch

    from openmm_ani import __version__, kernels

    assert main(["info"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["openmm-ani"] == __version__ and lines["torch"] == torch.__version__
    assert lines["openmm"] == openmm.__version__
    assert lines["OpenMM platforms"].split(", ") == platform_names()
    assert lines["C++ kernels"].startswith("available" if kernels.available() else "NOT available")
    monkeypatch.setattr(kernels, "available", lambda: False)
    monkeypatch.setattr(kernels, "unavailable_reason", lambda: "the C++ kernels were not built")
    assert main(["info"]) == 0
    kernel_line = capsys.readouterr().out.splitlines()[-1]
    assert kernel_line.startswith("C++ kernels: NOT available: the C++ kernels were not built") and "slower" in kernel_line
