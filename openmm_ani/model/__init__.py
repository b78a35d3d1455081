"""The ANI model in pure PyTorch (lengths in Å, energies in hartree); never imports OpenMM.

One module per stage of the pipeline, composed by :class:`ANIModel`:

====================  ==========================================================
``species``           atomic numbers -> the model's element indices
``neighbors``         pairs within the cutoff (all pairs or cell list, open/periodic)
``aev_parameters``    the AEV hyper-parameters and their JSON form
``aev``               atomic environment vectors (radial + angular terms)
``networks``          per-element networks, all ensemble members stacked
``self_energies``     per-element self energies added back (float64)
``ani``               :class:`ANIModel`, the composition
====================  ==========================================================
"""

from .aev import AEVComputer
from .aev_parameters import AEVParameters
from .ani import ANIModel
from .networks import AtomicNetworks, ElementNetwork, StackedLinear
from .self_energies import SelfEnergies
from .species import SpeciesMapper

__all__ = [
    "AEVComputer", "AEVParameters", "ANIModel", "AtomicNetworks", "ElementNetwork", "SelfEnergies",
    "SpeciesMapper", "StackedLinear",
]
