"""Optional C++ kernels: the ANI energy and its analytic gradient in one operator call.

The sources in ``csrc/`` are built by ``setup.py`` with torch's extension tools against the torch
of the build (``pip install .`` gets it from pyproject's build requirements; ``make install`` and
the conda recipe build against the installed one); the library file carries that torch version as
a marker string, and registers ``torch.ops.openmm_ani.*``:

* ``energy_gradient(positions, species, cell, <AEV parameters>, num_species, num_models,
  weights, biases, layers, activations, need_gradient) -> (member energies [M] float64,
  gradient [N, 3])`` — neighbour search, AEVs, element networks (ATen matrix products) and the
  analytic gradient of the ensemble-mean energy, CPU only;
* ``aev_batch(positions [B, N, 3], species [B, N], cell, <AEV parameters>, num_species) -> AEVs
  [B, N, L]`` — parallel over molecules, differentiable once with respect to the positions (an
  autograd function whose backward is the analytic AEV gradient; a second derivative raises):
  ``AEVComputer.forward`` on CPU tensors and energy-only training;
* ``aev_and_gradient(...)`` — the AEVs and the gradient of ``sum(aev * aev_grad)``, for tests;
* ``instruction_set()`` and ``build_info()`` — diagnostics.

:func:`load` loads the library once (``import openmm_ani`` calls it through
:mod:`openmm_ani.model`). Where it was not built, or was built for another torch, or the
environment sets ``OPENMM_ANI_KERNELS=0``, :func:`available` is False and openmm-ani uses its
pure TorchScript path, which computes the same quantities about twice as slowly
(:data:`SLOWDOWN`); :func:`warn_unavailable` says so once. A library built for another torch
minor version is refused by its marker before it is loaded (loading it could crash). This package
imports nothing from the rest of openmm_ani.
"""

import glob
import os
import warnings
from typing import List, Optional

import torch

#: File name stem of the compiled library (``<stem>.so`` / ``.pyd`` / ``.dylib``).
LIBRARY_STEM = "_openmm_ani_kernels"
#: Prefix of the marker string in the library naming the torch it was built against (``ops.cpp``).
VERSION_MARKER = b"openmm-ani-kernels-built-against-torch="
#: Environment variable that disables the kernels when set to ``0``.
DISABLE_VARIABLE = "OPENMM_ANI_KERNELS"
#: What the TorchScript path costs instead, measured on the 2-core development CPU (one thread,
#: single precision, docs/benchmarks-openmm.md): told to users whose install has no kernels.
SLOWDOWN = "MD about 1.8-2x slower (p-xylene 1.3 -> 2.3 ms/step, 255 waters 11 -> 22 ms/step)"


class KernelUnavailableWarning(RuntimeWarning):
    """The C++ kernels are not available; the (slower) TorchScript path is used."""


_loaded: Optional[bool] = None
_reason: Optional[str] = None
_warned = False


def library_candidates() -> List[str]:
    """Paths of compiled kernel libraries next to this file."""
    folder = os.path.dirname(os.path.abspath(__file__))
    found: List[str] = []
    for pattern in (LIBRARY_STEM + "*.so", LIBRARY_STEM + "*.pyd", LIBRARY_STEM + "*.dylib"):
        found.extend(sorted(glob.glob(os.path.join(folder, pattern))))
    return found


def built_against(library: str) -> Optional[str]:
    """The torch version whose marker ``library`` carries, read from the file without loading it (``None``: no marker)."""
    with open(library, "rb") as handle:
        data = handle.read()
    start = data.find(VERSION_MARKER)
    if start < 0:
        return None
    start += len(VERSION_MARKER)
    end = data.find(b"\0", start)
    return data[start:end if end >= 0 else start + 64].decode("ascii", "replace") or None


def _torch_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def _other_torch(library: str, built_for: str) -> str:
    return (f"the C++ kernels in {library} were built for torch {built_for}, but torch {torch.__version__} is "
            "loaded; reinstall openmm-ani to rebuild them")


def load() -> bool:
    """Load the compiled kernels once; return whether ``torch.ops.openmm_ani`` is usable."""
    global _loaded, _reason
    if _loaded is not None:
        return _loaded
    _loaded = False
    if os.environ.get(DISABLE_VARIABLE, "1").strip() == "0":
        _reason = f"disabled by {DISABLE_VARIABLE}=0"
        return False
    candidates = library_candidates()
    if not candidates:
        _reason = ("the C++ kernels were not built (no C++ compiler or no torch at build time); reinstall "
                   "openmm-ani (`pip install .` or `pip install openmm-ani`) where a C++ compiler is installed")
        return False
    marked = built_against(candidates[0])
    if marked is not None and _torch_minor(marked) != _torch_minor(torch.__version__):  # refused before loading
        _reason = _other_torch(candidates[0], marked)
        return False
    try:
        torch.ops.load_library(candidates[0])
    except (OSError, RuntimeError) as error:  # a library built for another torch fails to link
        _reason = f"the C++ kernels in {candidates[0]} do not load with torch {torch.__version__}: {error}"
        return False
    built_for = str(torch.ops.openmm_ani.build_info())  # a library without the marker (an older build)
    if _torch_minor(built_for) != _torch_minor(torch.__version__):
        _reason = _other_torch(candidates[0], built_for)
        return False
    _loaded = True
    return True


def available() -> bool:
    """Whether the C++ kernels are loaded and usable (loads them on first call)."""
    return load()


def unavailable_reason() -> Optional[str]:
    """Why the kernels are not available (``None`` when they are)."""
    load()
    return _reason


def instruction_set() -> str:
    """The SIMD instruction set the kernels use on this CPU, or ``"unavailable"``."""
    return str(torch.ops.openmm_ani.instruction_set()) if available() else "unavailable"


def warn_unavailable() -> None:
    """Warn once per process that the TorchScript path replaces the unavailable kernels."""
    global _warned
    if available() or _warned or os.environ.get(DISABLE_VARIABLE, "1").strip() == "0":
        return
    _warned = True
    warnings.warn(f"openmm-ani: {_reason}; using the TorchScript path (same results, {SLOWDOWN})",
                  KernelUnavailableWarning, stacklevel=3)
