"""The OpenMM boundary: ANI in OpenMM units, as openmm-torch ``TorchForce`` objects.

====================  =============================================================
``openmmtorch``       importing openmm-torch in the right order (torch first)
``periodic``          the one decision on the periodic treatment of an ML region
``topology``          atom indices, elements and ML-selection checks
``module``            :class:`ANIForceModule`: nm, kJ/mol <-> Å, Ha (TorchScript)
``forces``            TorchScript compilation and ``TorchForce`` construction
``potential``         :class:`ANIPotential`, the user-facing API
``embedding/``        mechanical embedding (mixed ML/MM systems, lambda interpolation)
``reporter``          the ensemble-disagreement reporter
``serialization``     reading serialized Systems that hold TorchForces
``openmmml_plugin``   openmm-ml's ``MLPotential`` entry points
====================  =============================================================
"""

from .embedding import LAMBDA_PARAMETER, create_mixed_system
from .module import ANIForceModule
from .periodic import RegionTreatment, region_treatment
from .potential import PRECISIONS, ANIPotential
from .reporter import EnsembleDisagreementReporter, EnsembleDisagreementWarning

__all__ = [
    "ANIForceModule", "ANIPotential", "EnsembleDisagreementReporter", "EnsembleDisagreementWarning",
    "LAMBDA_PARAMETER", "PRECISIONS", "RegionTreatment", "create_mixed_system", "region_treatment",
]
