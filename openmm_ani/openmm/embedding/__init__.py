"""Mechanical embedding: an ML region described by ANI inside an MM System.

==================  ===============================================================================
``surgery``         removing the MM terms among ML atoms (bonded terms, ML-ML pairs)
``interpolation``   ``lambda_interpolate``: the ML-internal MM energy switched off as
                    lambda goes 0 -> 1, exact at lambda = 0
``linkatoms``       hydrogen caps on bonds cut by the ML region, openmm-ml 1.8's boundary rules
``charge``          the net MM charge of the ML region (the models know neutral molecules only)
``system``          :func:`create_mixed_system`, the composition
==================  ===============================================================================

The checks of the ML selection live in :mod:`openmm_ani.openmm.topology`.
"""

from .charge import NetChargeWarning, ml_net_charge
from .interpolation import LAMBDA_PARAMETER
from .system import create_mixed_system

__all__ = ["LAMBDA_PARAMETER", "NetChargeWarning", "create_mixed_system", "ml_net_charge"]
