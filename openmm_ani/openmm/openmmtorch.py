"""Loading openmm-torch correctly, and checking that this OpenMM can copy its forces.

``import_openmmtorch`` is the one place that imports openmm-torch;
``require_torchforce_copies`` is the one check that copying a ``TorchForce`` will not crash.

openmmtorch 1.5 from PyPI must be imported after ``torch`` (it links against libtorch and
fails to find its libraries otherwise), and if ``openmm`` was imported before torch, OpenMM
could not load the openmm-torch kernel plugins at that moment; :func:`reload_torch_plugins`
loads them again once torch is in the process.
"""

import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from ..files import write_text

logger = logging.getLogger(__name__)

_SIMTK_NOTICE = "Warning: importing 'simtk.openmm' is deprecated"


class _DropSimtkNotice(logging.Filter):
    """Drop the deprecation notice openmmtorch's ``import simtk.openmm`` logs on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_SIMTK_NOTICE)


def import_openmmtorch() -> Any:
    """Import and return the ``openmmtorch`` module, importing ``torch`` first.

    openmmtorch 1.5 wheels load libtorch symbols that are only resolvable once ``torch``
    is imported. This also covers scripts that ran ``import openmm`` before torch was
    loaded: OpenMM then failed to load the openmm-torch kernel plugins at its import
    (``libnvrtc`` not found), and they are loaded again here, now that torch is in the
    process (see :func:`reload_torch_plugins`). The deprecation notice openmmtorch triggers
    through ``simtk.openmm`` is filtered out.

    Returns
    -------
    module
        The ``openmmtorch`` module.
    """
    import torch  # noqa: F401  (must precede openmmtorch)

    root = logging.getLogger()
    notice_filter = _DropSimtkNotice()
    root.addFilter(notice_filter)
    try:
        import openmmtorch
    finally:
        root.removeFilter(notice_filter)
    reload_torch_plugins()
    return openmmtorch


_PLUGINS_CHECKED = False


def reload_torch_plugins() -> List[str]:
    """Load openmm-torch kernel plugins that OpenMM failed to load before torch was imported.

    ``import openmm`` loads every plugin in OpenMM's plugin folder; the openmm-torch ones
    fail when libtorch is not yet in the process, leaving ``TorchForce`` without kernels
    ("does not support all required kernels"). With torch imported, those libraries load;
    they are loaded through a temporary folder of links so that no other plugin (and no
    platform) is registered twice. Runs once per process.

    Returns
    -------
    list of str
        The plugin libraries loaded now (empty when nothing had failed).
    """
    global _PLUGINS_CHECKED
    if _PLUGINS_CHECKED:
        return []
    _PLUGINS_CHECKED = True
    import openmm

    failed = []
    for message in openmm.Platform.getPluginLoadFailures():
        match = re.match(r"Error loading library (\S+?): ", message)
        if match and "OpenMMTorch" in os.path.basename(match.group(1)) and os.path.isfile(match.group(1)):
            failed.append(match.group(1))
    if not failed:
        return []
    with tempfile.TemporaryDirectory(prefix="openmm-ani-plugins-") as folder:
        for library in failed:
            os.symlink(library, os.path.join(folder, os.path.basename(library)))
        loaded = [os.path.basename(path) for path in openmm.Platform.loadPluginsFromDirectory(folder)]
        for message in openmm.Platform.getPluginLoadFailures():
            logger.debug("openmm-torch plugin still not loadable: %s", message)
    logger.debug("loaded openmm-torch plugins after torch: %s", loaded)
    return loaded


# --- Can this OpenMM copy a TorchForce? ------------------------------------------------------
#
# The openmmtorch 1.5 wheel on PyPI is compiled against OpenMM 8.4/8.5 headers. OpenMM 8.6
# changed the layout of ``SerializationNode`` (openmm/openmm#5249), and with that pair every
# copy of a TorchForce (``XmlSerializer.deserialize``, ``copy.deepcopy``, pickling, a TorchForce
# inside a ``CustomCVForce``) crashes the process with a segmentation fault. A crash cannot be
# caught in-process, so the check runs in a child process, once per (OpenMM version,
# openmmtorch version, openmmtorch library) and is remembered in a user cache file.

#: What the child process runs: build and evaluate a tiny TorchForce (then print ``built``);
#: deep-copy it, round-trip a System holding it through ``XmlSerializer``, deep-copy a System
#: holding it inside a ``CustomCVForce``; evaluate each on the Reference platform and print the
#: energies.
PROBE_SCRIPT = """
import copy, os, sys, tempfile
import torch
import openmm
import openmmtorch

class Square(torch.nn.Module):
    def forward(self, positions):
        return (positions ** 2).sum()

def system_with(force):
    system = openmm.System()
    system.addParticle(1.0)
    system.addForce(force)  # the System owns the force from now on
    return system

def energy(system):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions([openmm.Vec3(0.1, 0.2, 0.3)])
    return context.getState(getEnergy=True).getPotentialEnergy()._value

with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "square.pt")
    torch.jit.trace(Square(), torch.zeros(1, 3, dtype=torch.float64)).save(path)
    original = energy(system_with(openmmtorch.TorchForce(path)))
    force = openmmtorch.TorchForce(path)
print("built", flush=True)
copied = system_with(copy.deepcopy(force))
restored = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(copied))
wrapper = openmm.CustomCVForce("2*t")
wrapper.addCollectiveVariable("t", copy.deepcopy(force))
wrapped = copy.deepcopy(system_with(wrapper))
print("energies", original, energy(copied), energy(restored), energy(wrapped), flush=True)
"""
#: Energies the probe must print: |x|^2 for x = (0.1, 0.2, 0.3) nm, twice for the CustomCVForce.
PROBE_EXPECTED = (0.14, 0.14, 0.14, 0.28)
#: Seconds the probe may take (it imports torch and OpenMM from a cold start).
PROBE_TIMEOUT_S = 300.0
#: Environment variable: the folder of openmm-ani's cache files (default ~/.cache/openmm-ani).
CACHE_DIR_VARIABLE = "OPENMM_ANI_CACHE_DIR"
#: Environment variable: set to 1 to skip the probe (environments that cannot start a process).
SKIP_PROBE_VARIABLE = "OPENMM_ANI_SKIP_TORCHFORCE_PROBE"
_CACHE_FILE = "torchforce-probe.json"
_CHECKED: Dict[str, "ProbeResult"] = {}


class TorchForceCopyError(RuntimeError):
    """The installed OpenMM and openmm-torch cannot copy a TorchForce (they would crash)."""


class ProbeResult(NamedTuple):
    """Outcome of the TorchForce copy probe for one OpenMM/openmmtorch pair.

    Attributes
    ----------
    ok
        Serialization, deserialization and deep copies of a TorchForce work (``None``: the
        probe could not build a TorchForce at all, so it says nothing about copies).
    detail
        What happened (``"ok"``, the signal that killed the probe, or its last error line).
    key
        The cache key: OpenMM version, openmmtorch version and library path.
    """

    ok: Optional[bool]
    detail: str
    key: str


def _openmmtorch_version() -> str:
    try:
        return importlib.metadata.version("openmmtorch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _openmmtorch_library() -> str:
    for name in ("_openmmtorch", "openmmtorch"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            return os.path.realpath(spec.origin)
    return "not installed"


def stack_key() -> str:
    """The installed pair that the probe result belongs to: ``openmm=...;openmmtorch=...;library=...``."""
    import openmm

    return f"openmm={openmm.__version__};openmmtorch={_openmmtorch_version()};library={_openmmtorch_library()}"


def cache_path() -> str:
    """The probe's cache file: ``$OPENMM_ANI_CACHE_DIR``, ``$XDG_CACHE_HOME/openmm-ani`` or ``~/.cache/openmm-ani``."""
    folder = os.environ.get(CACHE_DIR_VARIABLE)
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "openmm-ani")
    return os.path.join(folder, _CACHE_FILE)


def _read_cache(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable TorchForce probe cache %s: %s", path, error)
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: str, key: str, result: ProbeResult) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = _read_cache(path)
        data[key] = {"ok": result.ok, "detail": result.detail, "checked": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError as error:  # a read-only home: the result still holds for this process
        logger.warning("could not cache the TorchForce probe result in %s: %s", path, error)


def _run_probe(command: Sequence[str], key: str) -> ProbeResult:
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=environment)
    except subprocess.TimeoutExpired as error:
        raise TorchForceCopyError(
            f"the TorchForce copy probe did not finish in {PROBE_TIMEOUT_S:.0f} s; "
            f"set {SKIP_PROBE_VARIABLE}=1 to skip it on a known-good stack"
        ) from error
    built = any(line.strip() == "built" for line in done.stdout.splitlines())
    if done.returncode != 0 and not built:  # the probe itself could not run: no verdict on copying
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return ProbeResult(None, f"the probe could not build a TorchForce: {lines[-1] if lines else done.returncode}", key)
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return ProbeResult(False, f"the probe process crashed ({name})", key)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return ProbeResult(False, f"copying failed: {lines[-1] if lines else f'exit status {done.returncode}'}", key)
    found = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("energies")]
    try:
        energies = tuple(float(value) for value in found[-1]) if found else ()
    except ValueError:
        energies = ()
    if len(energies) != len(PROBE_EXPECTED) or any(abs(e - x) > 1e-9 for e, x in zip(energies, PROBE_EXPECTED)):
        return ProbeResult(False, f"copies of a TorchForce give wrong energies {energies} (expected {PROBE_EXPECTED})", key)
    return ProbeResult(True, "ok", key)


def probe_torchforce_copies(command: Optional[Sequence[str]] = None, use_cache: bool = True) -> ProbeResult:
    """Whether this OpenMM + openmm-torch pair can copy a TorchForce, checked without crashing.

    A child process serializes, deserializes and deep-copies a small TorchForce (alone and
    inside a ``CustomCVForce``) and evaluates the copies; a segmentation fault there is reported
    here as ``ok=False``. The result is kept for the process and, keyed on :func:`stack_key`,
    in the cache file :func:`cache_path` (written atomically), so the child runs once per
    installed pair.

    Parameters
    ----------
    command
        The probe command (default: this Python interpreter running :data:`PROBE_SCRIPT`).
        A command given here always runs; its result is not cached.
    use_cache
        Read and write the in-process and on-disk caches (default command only).

    Returns
    -------
    ProbeResult

    Raises
    ------
    TorchForceCopyError
        If the probe does not finish within :data:`PROBE_TIMEOUT_S`.
    """
    key = stack_key()
    if command is not None:
        return _run_probe(list(command), key)
    if use_cache and key in _CHECKED:
        return _CHECKED[key]
    path = cache_path()
    if use_cache:
        cached = _read_cache(path).get(key)
        if isinstance(cached, dict) and isinstance(cached.get("ok"), bool):
            result = ProbeResult(cached["ok"], str(cached.get("detail", "")), key)
            _CHECKED[key] = result
            return result
    logger.info("checking that OpenMM can copy a TorchForce (%s)", key)
    result = _run_probe([sys.executable, "-c", PROBE_SCRIPT], key)
    if use_cache and result.ok is not None:
        _CHECKED[key] = result
        _write_cache(path, key, result)
    return result


def require_torchforce_copies(command: Optional[Sequence[str]] = None) -> None:
    """Raise a one-line :class:`TorchForceCopyError` where copying a TorchForce would crash.

    Called before every operation of openmm-ani that copies a TorchForce (mixed systems with
    ``interpolate=True``, mixed systems through openmm-ml, deserializing a TorchForce nested in
    another force); openmmtools' thermodynamic states copy Systems too. Costs one child process
    per installed OpenMM/openmmtorch pair (cached on disk), nothing afterwards. Skipped when the
    environment variable ``OPENMM_ANI_SKIP_TORCHFORCE_PROBE`` is ``1``.

    Parameters
    ----------
    command
        The probe command (tests); default :data:`PROBE_SCRIPT` in this interpreter.

    Raises
    ------
    TorchForceCopyError
        Naming the installed versions and what to install instead.
    """
    if os.environ.get(SKIP_PROBE_VARIABLE) == "1":
        return
    result = probe_torchforce_copies(command)
    if result.ok is None:
        logger.warning("could not check that OpenMM copies TorchForces safely: %s", result.detail)
        return
    if result.ok:
        return
    import openmm

    version = openmm.__version__
    raise TorchForceCopyError(
        f"OpenMM {version} cannot copy a TorchForce of openmmtorch {_openmmtorch_version()} "
        f"({_openmmtorch_library()}): {result.detail}; openmmtorch was built for another OpenMM version. "
        f'Install a matching pair: pip install "openmm>=8.4,<8.6" (what the openmmtorch 1.5 wheel is built for), '
        f"or conda-forge's openmm-torch built for OpenMM {version} (conda install -c conda-forge openmm={version} openmm-torch)"
    )
