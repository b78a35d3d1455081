"""openmm-ani: ANI neural-network potentials (ANI-1ccx, ANI-1x) for OpenMM.

Layers, each importing only the ones before it (``tests/test_layers.py`` enforces this;
``docs/architecture.md`` explains it):

``units``, ``files`` -> ``model`` (PyTorch, Å and Ha) -> ``formats`` (model files, bundled
models) -> ``openmm`` (the OpenMM boundary: nm and kJ/mol, TorchForce) -> ``simulation``
(MM systems from files, MD jobs) -> ``freeenergy``, ``benchmark`` -> ``cli``.
``openmm_ani.training`` uses ``model`` and ``formats`` only and is never imported here.

The public names below are loaded on first use (PEP 562): ``import openmm_ani`` itself imports
neither torch nor OpenMM, so the command line starts (and answers ``--version`` or Ctrl-C) at
once, and ``openmm_ani.ANIPotential`` is the same class as ever.
"""

import importlib
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
