"""openmm-ani: ANI neural-network potentials (ANI-1ccx, ANI-1x) for OpenMM.

Layers, each importing only the ones before it (``tests/test_layers.py`` enforces this;
``docs/architecture.md`` explains it):

``units``, ``files`` -> ``model`` (PyTorch, Å and Ha) -> ``formats`` (model files, bundled
models) -> ``openmm`` (the OpenMM boundary: nm and kJ/mol, TorchForce) -> ``simulation``
(MM systems from files, MD jobs) -> ``freeenergy``, ``benchmark`` -> ``cli``.
``openmm_ani.training`` uses ``model`` and ``formats`` only and is never imported here.

``import openmm_ani`` in a script or notebook imports torch, openmm-torch (torch first, as
openmm-torch needs) and registers the C++ kernels (``torch.ops.openmm_ani``), which a serialized
System or a ``portable=False`` file made by openmm-ani needs in the process that loads it. In the
``openmm-ani`` command (its console script, or ``python -m openmm_ani``) the public names are
loaded on first use instead (PEP 562) and each subcommand imports what it needs, so the command
answers ``--version`` and Ctrl-C during start-up at once.
"""

import importlib
import os
import sys
from typing import Any, Dict, List

__version__ = "0.1.0"

#: Public name -> (module, attribute); the module is imported when the name is first used.
_LAZY: Dict[str, tuple] = {
    "ANIModel": ("openmm_ani.model", "ANIModel"),
    "ANIPotential": ("openmm_ani.openmm", "ANIPotential"),
    "EnsembleDisagreementReporter": ("openmm_ani.openmm", "EnsembleDisagreementReporter"),
    "models": ("openmm_ani.models", None),
    "units": ("openmm_ani.units", None),
}

__all__ = ["ANIModel", "ANIPotential", "EnsembleDisagreementReporter", "models", "units", "__version__"]


def _started_as_command() -> bool:
    """Whether this import is the start of the ``openmm-ani`` command (console script or ``python -m openmm_ani``)."""
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    if script in ("openmm-ani", "openmm-ani.exe"):
        return True
    original = list(getattr(sys, "orig_argv", []))
    # `python [options] -m openmm_ani ...`: while the module is located sys.argv[0] is "-m"
    return script == "-m" and "-m" in original and original[original.index("-m") + 1:][:1] == ["openmm_ani"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'openmm_ani' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))


if not _started_as_command():
    for _name in _LAZY:
        __getattr__(_name)
