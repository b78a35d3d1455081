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

    openmmtools copies the System into its own standardised System (each copy serialises the
    ANI TorchForce with its TorchScript file); the states are shallow copies sharing it, so
    the cost does not grow with the number of windows.

    Parameters
    ----------
    system
        An interpolating System (has the ``lambda_interpolate`` parameter); not modified.
    lambdas
        Window values.
    temperature_k
        Temperature, K.
    pressure_atm
        Pressure, atm, or ``None``. A periodic System must then hold a ``MonteCarloBarostat``
        (:func:`add_barostat`).

    Returns
    -------
    list of CompoundThermodynamicState

    Raises
    ------
    ValueError
        A pressure without a barostat in the System.
    """
    pressure = None
    if pressure_atm is not None:
        pressure = pressure_atm * unit.atmosphere
        if not any(isinstance(f, openmm.MonteCarloBarostat) for f in system.getForces()):
            raise ValueError("a pressure needs a MonteCarloBarostat in the System (see openmm_ani.freeenergy.states.add_barostat)")
    thermodynamic_state = states.ThermodynamicState(system, temperature=temperature_k * unit.kelvin, pressure=pressure)
    reference = states.CompoundThermodynamicState(thermodynamic_state, [InterpolationState.from_system(system)])
    result = []
    for value in lambdas:
        state = copy.deepcopy(reference)  # openmmtools shares the standard System between copies
        state.lambda_interpolate = float(value)
        result.append(state)
    return result


def add_barostat(system: openmm.System, pressure_atm: float, temperature_k: float) -> None:
    """Add a ``MonteCarloBarostat`` (in place) unless the System has one."""
    if not any(isinstance(f, openmm.MonteCarloBarostat) for f in system.getForces()):
        system.addForce(openmm.MonteCarloBarostat(pressure_atm * unit.atmosphere, temperature_k * unit.kelvin))
