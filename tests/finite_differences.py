"""Central finite differences of a Context's energy: the independent reference for forces."""

import numpy as np
from openmm import unit

NM = unit.nanometer
KJ = unit.kilojoule_per_mole


def numeric_force(context, positions: np.ndarray, atom: int, axis: int, h: float = 1e-5, groups: int = -1) -> float:
    """``-dE/dx`` (kJ/mol/nm) of ``positions[atom, axis]`` (nm) by central differences of step ``h`` nm; the
    context keeps the last displaced positions (callers reset them when they need to)."""
    energies = []
    for sign in (1, -1):
        moved = positions.copy()
        moved[atom, axis] += sign * h
        context.setPositions(moved * NM)
        energies.append(context.getState(getEnergy=True, groups=groups).getPotentialEnergy().value_in_unit(KJ))
    return -(energies[0] - energies[1]) / (2 * h)
