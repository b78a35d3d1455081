"""openmm-ani: ANI neural-network potentials (ANI-1ccx, ANI-1x) for OpenMM.

Layers, each importing only the ones before it (``tests/test_layers.py`` enforces this;
``docs/architecture.md`` explains it):

``units``, ``files`` -> ``model`` (PyTorch, Å and Ha) -> ``formats`` (model files, bundled
models) -> ``openmm`` (the OpenMM boundary: nm and kJ/mol, TorchForce) -> ``simulation``
(MM systems from files, MD jobs) -> ``freeenergy``, ``benchmark`` -> ``cli``.
``openmm_ani.training`` uses ``model`` and ``formats`` only and is never imported here.
"""

from . import models, units
from .model import ANIModel
from .openmm import ANIPotential, EnsembleDisagreementReporter

__version__ = "0.1.0"

__all__ = ["ANIModel", "ANIPotential", "EnsembleDisagreementReporter", "models", "units", "__version__"]
