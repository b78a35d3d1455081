"""openmm-ani: ANI neural-network potentials (ANI-1ccx, ANI-1x) for OpenMM."""

from . import models, units
from .model import ANIModel
from .potential import ANIPotential

__version__ = "0.1.0"

__all__ = ["ANIModel", "ANIPotential", "models", "units", "__version__"]
