"""The net MM charge of an ML region: ANI-1ccx and ANI-1x were trained on neutral molecules only.

A mixed System whose ML region carries a net charge (a charged residue, a protonated amine, a
carboxylate) is outside what the models know: their energies for it are not those of the ion.
:func:`warn_if_charged` sums the ML atoms' charges in the MM ``NonbondedForce`` and warns
(:class:`NetChargeWarning`) naming the charge and the atoms; :func:`ml_net_charge` gives the
number, for callers that refuse instead (``openmm-ani fe-correct`` without ``--allow-charged``).

An ML region cut through covalent bonds (link atoms) has MM partial charges that need not sum to
an integer; there the check looks at the nearest integer (the formal charge of the capped
fragment) instead of the ±0.01 e tolerance of a whole molecule.
"""

import warnings
from typing import List, Optional, Sequence

import openmm

from ..topology import check_atom_indices

#: Largest |net charge| (e) of a whole-molecule ML region that counts as neutral.
NEUTRAL_TOLERANCE_E = 0.01
#: Largest |net charge| (e) of a region cut through bonds (link atoms) that counts as neutral: below half an
#: elementary charge the capped fragment's formal charge rounds to zero.
CUT_REGION_TOLERANCE_E = 0.5


class NetChargeWarning(UserWarning):
    """The ML region carries a net MM charge; the ANI models were trained on neutral molecules."""


def ml_net_charge(system: openmm.System, atoms: Sequence[int]) -> Optional[float]:
    """Sum of the ML atoms' charges (e) in ``system``'s ``NonbondedForce``; ``None`` without one.

    Raises ``ValueError`` naming the indices when ``atoms`` are not valid particle indices of ``system``.
    """
    atoms = check_atom_indices(atoms, system.getNumParticles(), "ML atom")
    forces = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if not forces:
        return None
    charge = 0.0
    for i in atoms:
        q, _, _ = forces[0].getParticleParameters(int(i))
        charge += q.value_in_unit(openmm.unit.elementary_charge)
    return charge


def charge_message(charge: float, atoms: Sequence[int]) -> str:
    """One line naming the net charge and the atoms (the first 10 indices)."""
    shown: List[int] = sorted(int(i) for i in atoms)
    listed = ", ".join(str(i) for i in shown[:10]) + (f", ... ({len(shown)} atoms)" if len(shown) > 10 else "")
    return (f"the ML region (atoms {listed}) has a net MM charge of {charge:+.3f} e; ANI-1ccx and ANI-1x were "
            "trained on neutral molecules only, so its ANI energy is not that of the charged species")


def is_charged(charge: Optional[float], cut: bool = False) -> bool:
    """Whether ``charge`` (e) counts as a net charge (``cut``: the region has link atoms)."""
    return charge is not None and abs(charge) > (CUT_REGION_TOLERANCE_E if cut else NEUTRAL_TOLERANCE_E)


def warn_if_charged(system: openmm.System, atoms: Sequence[int], cut: bool = False, stacklevel: int = 3) -> Optional[float]:
    """Warn (:class:`NetChargeWarning`) when the ML region is charged; return its net charge (e) or ``None``."""
    charge = ml_net_charge(system, atoms)
    if is_charged(charge, cut):
        warnings.warn(charge_message(charge, atoms), NetChargeWarning, stacklevel=stacklevel)
    return charge
