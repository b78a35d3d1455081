"""The TorchForce copy probe: a broken OpenMM/openmmtorch pair is reported, never a segfault.

The broken pair (OpenMM >= 8.6 with the openmmtorch 1.5 PyPI wheel) is simulated: fake probe
programs crash with SIGSEGV, fail, or print wrong or right energies, and the version strings
the cache is keyed on are monkeypatched. The real probe runs once on the pinned stack, where
copies work.
"""

import os
import sys
import textwrap

import openmm
import pytest
from openmm import app

import openmm_ani
from openmm_ani.openmm import openmmtorch as probe
from openmm_ani.openmm.openmmtorch import TorchForceCopyError
from openmm_ani.serialization import deserialize_system

from openmm_inputs import COMPLEX_CRD, COMPLEX_PRMTOP  # noqa: F401  (the T4 complex, for mixed systems)

GOOD = "print('built', flush=True)\nprint('energies 0.14 0.14 0.14 0.28')"
SEGFAULT = "import os, signal\nprint('built', flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)"
FAILS = "print('built', flush=True)\nraise RuntimeError(\"Unknown property 'encodedFileContents' in node 'encodedFileContents'\")"
WRONG = "print('built', flush=True)\nprint('energies 0.14 0.0 0.14 0.28')"
CANNOT_BUILD = "raise ImportError('no openmmtorch here')"


def counted(script: str, counter: str) -> str:
    """``script``, appending a line to ``counter`` each time it runs."""
    return f"open({counter!r}, 'a').write('run\\n')\n" + script


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """A private cache folder and an empty in-process memo; the broken pair's version strings."""
    monkeypatch.setenv(probe.CACHE_DIR_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.delenv(probe.SKIP_PROBE_VARIABLE, raising=False)
    monkeypatch.setattr(probe, "_CHECKED", {})
    monkeypatch.setattr(openmm, "__version__", "8.6.1")
    monkeypatch.setattr(probe, "_openmmtorch_version", lambda: "1.5")
    return tmp_path


def command(script: str):
    return [sys.executable, "-c", script]


def test_segfaulting_probe_gives_one_line_error(isolated):
    result = probe.probe_torchforce_copies(command(SEGFAULT))
    assert result.ok is False and result.detail == "the probe process crashed (SIGSEGV)"
    with pytest.raises(TorchForceCopyError) as error:
        probe.require_torchforce_copies(command(SEGFAULT))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("OpenMM 8.6.1 cannot copy a TorchForce of openmmtorch 1.5")
    assert 'pip install "openmm>=8.4,<8.6"' in message and "conda-forge's openmm-torch built for OpenMM 8.6.1" in message


@pytest.mark.parametrize("script, detail", [
    (FAILS, "copying failed: RuntimeError: Unknown property 'encodedFileContents'"),
    (WRONG, "copies of a TorchForce give wrong energies (0.14, 0.0, 0.14, 0.28)"),
])
def test_failing_probe_gives_the_error(isolated, script, detail):
    assert probe.probe_torchforce_copies(command(script)).ok is False
    with pytest.raises(TorchForceCopyError, match=r"cannot copy a TorchForce .*" + detail.replace("(", r"\(").replace(")", r"\)")):
        probe.require_torchforce_copies(command(script))


def test_good_probe_passes_and_inconclusive_probe_only_warns(isolated, caplog):
    assert probe.probe_torchforce_copies(command(GOOD)).ok is True
    probe.require_torchforce_copies(command(GOOD))
    result = probe.probe_torchforce_copies(command(CANNOT_BUILD))
    assert result.ok is None and "ImportError: no openmmtorch here" in result.detail
    probe.require_torchforce_copies(command(CANNOT_BUILD))  # no verdict on copies: a warning, not an error
    assert "could not check that OpenMM copies TorchForces" in caplog.text


def test_cache_is_keyed_on_the_versions(isolated, monkeypatch):
    counter = str(isolated / "runs.txt")
    runs = lambda: open(counter).read().count("run") if os.path.exists(counter) else 0  # noqa: E731
    monkeypatch.setattr(probe, "PROBE_SCRIPT", counted(SEGFAULT, counter))
    assert probe.probe_torchforce_copies().ok is False
    assert probe.probe_torchforce_copies().ok is False  # the same process: no second run
    assert runs() == 1
    monkeypatch.setattr(probe, "_CHECKED", {})  # a new process, same installed pair: read from disk
    monkeypatch.setattr(probe, "PROBE_SCRIPT", counted(GOOD, counter))
    assert probe.probe_torchforce_copies().ok is False
    assert runs() == 1
    monkeypatch.setattr(openmm, "__version__", "8.5.2")  # another OpenMM: probed again
    assert probe.probe_torchforce_copies().ok is True
    monkeypatch.setattr(probe, "_openmmtorch_version", lambda: "1.6")  # another openmmtorch: probed again
    assert probe.probe_torchforce_copies().ok is True
    assert runs() == 3
    text = open(probe.cache_path()).read()
    assert "openmm=8.6.1;openmmtorch=1.5;library=" in text and "openmm=8.5.2;openmmtorch=1.6;library=" in text
    assert not [name for name in os.listdir(os.path.dirname(probe.cache_path())) if name.endswith(".tmp")]


def test_skip_variable(isolated, monkeypatch):
    monkeypatch.setenv(probe.SKIP_PROBE_VARIABLE, "1")
    probe.require_torchforce_copies(command(SEGFAULT))


def test_real_probe_on_the_pinned_stack(monkeypatch, tmp_path):
    """The real probe program: copies of a TorchForce work with the pinned OpenMM 8.4-8.5 + openmmtorch 1.5."""
    monkeypatch.setattr(probe, "_CHECKED", {})
    monkeypatch.setenv(probe.CACHE_DIR_VARIABLE, str(tmp_path))
    result = probe.probe_torchforce_copies()
    assert result.ok is True, result.detail
    assert os.path.exists(probe.cache_path())


@pytest.fixture
def broken_pair(isolated, monkeypatch):
    monkeypatch.setattr(probe, "PROBE_SCRIPT", SEGFAULT)


def t4():
    prmtop = app.AmberPrmtopFile(COMPLEX_PRMTOP)
    system = prmtop.createSystem(nonbondedMethod=app.NoCutoff)
    return prmtop.topology, system, [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]


def test_operations_that_copy_raise_on_the_broken_pair(broken_pair):
    topology, system, ligand = t4()
    potential = openmm_ani.ANIPotential("ani1ccx")
    plain = potential.createMixedSystem(topology, system, ligand)  # no copy: still allowed
    with pytest.raises(TorchForceCopyError, match="OpenMM 8.6.1 cannot copy a TorchForce"):
        potential.createMixedSystem(topology, system, ligand, interpolate=True)
    openmmml = pytest.importorskip("openmmml")
    via = openmmml.MLPotential("ani1ccx-openmm-ani")
    via.createMixedSystem(topology, system, ligand)
    with pytest.raises(TorchForceCopyError, match="OpenMM 8.6.1 cannot copy a TorchForce"):
        via.createMixedSystem(topology, system, ligand, interpolate=True)
    # a TorchForce nested in a CustomCVForce can only be read by XmlSerializer
    wrapper = openmm.CustomCVForce("ani")
    wrapper.addCollectiveVariable("ani", potential.createForce([6, 1], atoms=[0, 1]))
    nested = openmm.System()
    for _ in range(2):
        nested.addParticle(1.0)
    nested.addForce(wrapper)
    xml = openmm.XmlSerializer.serialize(nested)
    with pytest.raises(TorchForceCopyError):
        deserialize_system(xml)
    top_level = openmm.XmlSerializer.serialize(plain)  # a top-level TorchForce is rebuilt in Python: allowed
    assert deserialize_system(top_level).getNumForces() == plain.getNumForces()


def test_probe_script_source_is_what_runs():
    """The default command runs PROBE_SCRIPT in this interpreter (what the cached verdict is about)."""
    assert "XmlSerializer.deserialize" in probe.PROBE_SCRIPT and "copy.deepcopy" in probe.PROBE_SCRIPT
    assert textwrap.dedent(probe.PROBE_SCRIPT) == probe.PROBE_SCRIPT
