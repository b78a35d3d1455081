"""Every ``openmm-ani`` command prints only its own lines (results on stdout, its progress on stderr).

The commands run in subprocesses at tiny settings, so each starts with fresh imports (pymbar and
TorchANI speak at import time). Every stdout and stderr line must match the command's own
patterns below; nothing from openmmtools (citations, "multistate API is experimental"), pymbar
(JAX banner, timeseries caveat), TorchANI (cuaev, pkg_resources) or torch (requires_grad
scalar) gets through. In-process tests check the filters themselves: the noise becomes DEBUG
records, and openmm-ani's own warnings and other packages' other messages still show.
"""

import io
import logging
import os
import re
import subprocess
import sys
import warnings

import pytest

from openmm_ani import thirdparty
from openmm_ani.kernels import KernelUnavailableWarning
from openmm_inputs import LIGAND_PDB, openmmtools_data

T4_LIGAND_PRMTOP = openmmtools_data("T4-lysozyme-L99A-implicit", "ligand.prmtop")
T4_LIGAND_CRD = openmmtools_data("T4-lysozyme-L99A-implicit", "ligand-minimized.crd")

#: Words of third-party chatter that no line may contain (case-insensitive).
BANNED = ("cite", "warning", "deprecated", "experimental", "cuaev", "pymbar", "jax", "requires_grad", "pkg_resources")

NUMBER = r"-?(?:\d+(?:\.\d+)?|nan)"
#: openmm-ani's own warning (only where the C++ kernels are not built) and the source line Python shows under it.
OWN_WARNING = re.compile(r"KernelUnavailableWarning: openmm-ani: ")
TQDM = re.compile(r"^\s*\d+%\|.*\|\s*\d+/\d+ \[.*\]$")

#: One estimate on fe-correct's screen: with its error, or "(not enough samples)" without one.
ESTIMATE = rf"{NUMBER}( \+- {NUMBER}| \(not enough samples\))"
FE_STDOUT = [
    rf"dG (complex|solvent) \(MM->ML/MM\): MBAR {ESTIMATE}(, TI {ESTIMATE}( \(discretisation {NUMBER}\))?)?"
    rf"(, BAR {ESTIMATE})? kcal/mol \(\d+ windows, \d+ s\)",
    rf"ddG correction: {NUMBER} (\+- {NUMBER} kcal/mol|\+- {NUMBER} \+- {NUMBER} kcal/mol \(\+- stat \+- model\)|"
    rf"kcal/mol \(not enough samples in the .+\))",
    rf"model (complex|solvent): (\+- model {NUMBER} kcal/mol; ensemble disagreement on \d+ lambda=1 samples: .+ kcal/mol/A|"
    r"model uncertainty unavailable \(.+\))",
    rf"verdict: (NOT CONVERGED|CONVERGED) \(ddG error (vs target: {NUMBER} (>|<=) {NUMBER}|: .+) kcal/mol\)",
    r"  (complex|solvent): (not )?converged( \(failed: [a-z_, ]+(\[[^]]*not enough samples[^]]*\][a-z_, ]*)*\))?",
    r"  - (complex|solvent): .+",
    r"  \(note\) .+",
    r"results: .+results\.json",
]
BENCH_STDOUT = [
    r"openmm-ani benchmark: CPU platform, .+ fs Langevin, precision single, \d+ alternating rounds, kernels \w+, "
    r"default torch threads = \d+",
    r"case +engine +threads +ms/step +range +ns/day +atoms +E0 kJ/mol",
    rf"pxylene +(openmm-ani|openmm-ml) +(1|default) +{NUMBER} +\S+ +{NUMBER} +18 +{NUMBER}",
    rf"pxylene threads=(1|default): openmm-ml/openmm-ani {NUMBER}x \(energy difference [+-]{NUMBER} kJ/mol\)",
]
ENERGY_STDOUT = [
    r" *frame +energy_kJ/mol +energy_Ha +energy_std_kJ/mol +force_spread_kJ/mol/nm",
    rf" *0 +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}",
]
SIMULATE_STDOUT = [
    rf"(initial|final) potential energy: {NUMBER} kJ/mol",
    rf"\d+ steps in {NUMBER} s: {NUMBER} ms/step, {NUMBER} ns/day",
    r"trajectory: \S+\.dcd +state data: \S+\.csv +disagreement: \S+\.disagreement\.csv +checkpoint: \S+\.chk",
]


def run_command(*argv: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run([sys.executable, "-m", "openmm_ani", *argv], capture_output=True, text=True,
                               timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def foreign_lines(text: str, patterns, progress: bool = False):
    """Lines of ``text`` that match none of ``patterns`` (blank lines and tqdm updates excepted)."""
    allowed = [re.compile(p) for p in patterns]
    lines = re.split(r"[\r\n]", text) if progress else text.splitlines()
    foreign = []
    skip_source_line = False
    for line in lines:
        if skip_source_line and line.startswith(" "):
            skip_source_line = False
            continue
        skip_source_line = bool(OWN_WARNING.search(line))
        if not line.strip() or skip_source_line or (progress and TQDM.match(line)):
            continue
        if not any(p.fullmatch(line) for p in allowed):
            foreign.append(line)
    return foreign


def assert_only_own_lines(completed: subprocess.CompletedProcess, stdout_patterns, stderr_patterns=(),
                          progress: bool = False) -> None:
    assert foreign_lines(completed.stdout, stdout_patterns) == [], completed.stdout
    assert foreign_lines(completed.stderr, stderr_patterns, progress) == [], completed.stderr
    for stream in (completed.stdout, completed.stderr):
        for line in stream.splitlines():
            if not OWN_WARNING.search(line):
                assert not any(word in line.lower() for word in BANNED), line


def test_fe_correct_prints_only_its_results(tmp_path):
    """Replica exchange (openmmtools citations, experimental notices; pymbar MBAR and timeseries) and
    one switch per direction (pymbar BAR) on p-xylene alone, both legs: only the results block."""
    legs = [arg for leg in ("complex", "solvent") for arg in (f"--{leg}-prmtop", T4_LIGAND_PRMTOP, f"--{leg}-coords", T4_LIGAND_CRD)]
    completed = run_command(
        "fe-correct", *legs, "--ligand-resname", "TMP", "--output", str(tmp_path / "lig"),
        "--n-states", "2", "--n-iterations", "2", "--steps-per-iteration", "2", "--check-interval", "1",
        "--n-switches", "1", "--switching-steps", "2", "--equilibration-steps", "2", "--steps-between-switches", "1",
        "--minimize-iterations", "5", "--platform", "Reference", "--no-progress",
    )
    assert_only_own_lines(completed, FE_STDOUT)
    assert "ddG correction" in completed.stdout and "BAR" in completed.stdout  # both estimators ran
    # one switch per direction: BAR has no error estimate (issue 16: it printed "+- 0.000")
    assert re.search(r"BAR -?\d+\.\d+ \(not enough samples\)", completed.stdout), completed.stdout


def test_benchmark_with_openmmml_peer_prints_only_its_table():
    """openmm-ml's TorchANI model is built (TorchANI imported) and timed: only the table and the ratios."""
    pytest.importorskip("openmmml")
    pytest.importorskip("torchani")
    completed = run_command("benchmark", "--cases", "pxylene", "--steps", "2", "--rounds", "1", "--threads", "1")
    assert_only_own_lines(completed, BENCH_STDOUT)
    assert re.search(r"^pxylene +openmm-ml ", completed.stdout, re.M)


def test_energy_and_simulate_stay_quiet(tmp_path):
    assert_only_own_lines(run_command("energy", LIGAND_PDB), ENERGY_STDOUT)
    completed = run_command("simulate", LIGAND_PDB, "--steps", "20", "--report-interval", "10", "--threads", "1",
                            "--output", str(tmp_path / "md"))
    assert_only_own_lines(completed, SIMULATE_STDOUT, progress=True)  # its tqdm bar is its own progress


@pytest.fixture
def debug_records():
    """Records of openmm_ani.thirdparty and the noisy loggers, DEBUG included, captured in a list."""
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    names = ["openmm_ani.thirdparty"] + [name for name, _ in thirdparty.NOISY_RECORDS]
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield records
    for lg, level in zip(loggers, levels):
        lg.removeHandler(handler)
        lg.setLevel(level)


def test_noisy_warnings_are_ignored_and_own_warnings_show():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = len(warnings.filters)
        thirdparty.quiet_third_party()
        thirdparty.quiet_third_party()  # idempotent: one entry per noisy warning
        assert len(warnings.filters) == before + len(thirdparty.NOISY_WARNINGS)
        warnings.warn_explicit("cuaev not installed", UserWarning, "aev.py", 16, module="torchani.aev")
        warnings.warn_explicit("pkg_resources is deprecated as an API.", UserWarning, "__init__.py", 39, module="torchani")
        warnings.warn_explicit("Converting a tensor with requires_grad=True to a scalar may lead to unexpected behavior.",
                               UserWarning, "openmm.py", 5963, module="openmm.openmm")
        warnings.warn_explicit("openmm-ani: kernels missing", KernelUnavailableWarning, "kernels.py", 1, module="openmm_ani.kernels")
        warnings.warn_explicit("cuaev not installed", UserWarning, "x.py", 1, module="mypackage")  # same text, other package
        warnings.warn_explicit("something else", UserWarning, "aev.py", 20, module="torchani.aev")  # other TorchANI warning
    assert [str(w.message) for w in caught] == ["openmm-ani: kernels missing", "cuaev not installed", "something else"]


def test_noisy_log_records_are_demoted_and_others_pass(debug_records, capsys):
    thirdparty.quiet_third_party()
    sampler_log = logging.getLogger("openmmtools.multistate.multistatesampler")
    sampler_log.warning("Warning: The openmmtools.multistate API is experimental and may change in future releases")
    sampler_log.warning("storage file is corrupt")
    assert [(r.levelno, r.getMessage()[:12]) for r in debug_records] == [(logging.DEBUG, "Warning: The"),
                                                                         (logging.WARNING, "storage file")]
    debug_records.clear()
    sampler_log.setLevel(logging.NOTSET)  # DEBUG not enabled: the demoted record goes nowhere
    sampler_log.warning("Warning: The openmmtools.multistate API is experimental and may change in future releases")
    assert debug_records == []


def test_stdout_to_debug_captures_prints_and_keeps_exceptions(debug_records, capsys):
    with thirdparty.stdout_to_debug("citations"):
        print("Please cite the following:")
    assert capsys.readouterr().out == ""
    assert "Please cite the following:" in debug_records[-1].getMessage()
    with pytest.raises(RuntimeError, match="boom"):
        with thirdparty.stdout_to_debug("failing call"):
            print("half a banner")
            raise RuntimeError("boom")
    assert "half a banner" in debug_records[-1].getMessage()
    print("own line")
    assert capsys.readouterr().out == "own line\n"
