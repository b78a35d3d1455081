"""openmmtools thermodynamic states along ``lambda_interpolate``."""

import copy
from typing import List, Optional, Sequence

import openmm
from openmm import unit
from openmmtools import states

from ..openmm.embedding import LAMBDA_PARAMETER


class InterpolationState(states.GlobalParameterState):
    """The ``lambda_interpolate`` global parameter as an openmmtools composable state.

    0 is the MM system and 1 the mixed ML/MM system built by
    :func:`openmm_ani.mixed.create_mixed_system` with ``interpolate=True``.
    """

    lambda_interpolate = states.GlobalParameterState.GlobalParameter(LAMBDA_PARAMETER, standard_value=1.0)


def create_states(
    system: openmm.System,
    lambdas: Sequence[float],
    temperature_k: float,
    pressure_atm: Optional[float] = None,
) -> List[states.CompoundThermodynamicState]:
    """One compound thermodynamic state per ``lambda_interpolate`` value.

    The System is standardised and hashed once: the states are copies sharing it.

    Parameters
    ----------
    system
        An interpolating System (has the ``lambda_interpolate`` parameter).
    lambdas
        Window values.
    temperature_k
        Temperature, K.
    pressure_atm
        Pressure, atm (a barostat is added to a periodic System that has none), or ``None``.

    Returns
    -------
    list of CompoundThermodynamicState
    """
    system = copy.deepcopy(system)
    pressure = None
    if pressure_atm is not None:
        pressure = pressure_atm * unit.atmosphere
        if not any(isinstance(f, openmm.MonteCarloBarostat) for f in system.getForces()):
            system.addForce(openmm.MonteCarloBarostat(pressure, temperature_k * unit.kelvin))
    thermodynamic_state = states.ThermodynamicState(system, temperature=temperature_k * unit.kelvin, pressure=pressure)
    reference = states.CompoundThermodynamicState(thermodynamic_state, [InterpolationState.from_system(system)])
    result = []
    for value in lambdas:
        state = copy.deepcopy(reference)
        state.lambda_interpolate = float(value)
        result.append(state)
    return result
