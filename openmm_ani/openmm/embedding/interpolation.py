"""MM <-> ML/MM interpolation: the ML-internal MM energy that is switched off as lambda goes to 1.

With ``interpolate=True`` the mixed System's energy is
``lambda * U_mixed + (1 - lambda) * U_MM`` with ``lambda = lambda_interpolate``. U_mixed and U_MM
differ only by the ML-internal terms: the ANI energy (in U_mixed) and the MM terms among ML
atoms (in U_MM). :func:`interpolation_force` puts both in one ``CustomCVForce``,
``lambda * ani + (1 - lambda) * (mm0 + mm1 + ...)``, whose collective variables are the ANI
``TorchForce`` and copies of the ML-internal MM terms: bonded terms among ML atoms and the ML-ML
nonbonded pairs, written so that at ``lambda = 0`` the MM System is reproduced exactly for
NoCutoff, reaction-field and Ewald/PME electrostatics.

The global parameter lives on the ``CustomCVForce`` only, a force type every OpenMM tool
knows: openmmtools' thermodynamic states set its default value and read it back, which they
cannot do for a plugin force such as ``TorchForce`` (OpenMM's Python layer returns it as a
plain ``Force``). The same layout is what openmm-ml builds.
"""

import copy
import itertools
import math
from typing import Dict, List, Sequence, Tuple

import openmm

from ...units import COULOMB_CONSTANT_KJ_NM_PER_MOL_E2

#: Name of the global parameter that interpolates MM (0) -> mixed ML/MM (1).
LAMBDA_PARAMETER = "lambda_interpolate"


def _format(value: float) -> str:
    return repr(float(value))


def nonbonded_internal_forces(force: openmm.NonbondedForce, ml_atoms: Sequence[int]) -> List[openmm.Force]:
    """CustomBondForces giving the MM nonbonded energy of the ML-ML pairs of ``force``.

    The energy is ``U(NonbondedForce) - U(NonbondedForce with ML-ML exceptions zeroed)``,
    exactly, for the supported nonbonded methods: normal pairs use the method's cutoff,
    reaction field or Ewald form (direct + reciprocal = plain Coulomb within the cutoff,
    ``erf(alpha r)/r`` beyond it) and the LJ switching function; exceptions are plain
    Coulomb + LJ, as OpenMM computes them.
    """
    method = force.getNonbondedMethod()
    if method == openmm.NonbondedForce.LJPME:
        raise NotImplementedError("interpolate=True does not support LJPME; use PME for the MM system")
    for k in range(force.getNumParticleParameterOffsets()):
        if force.getParticleParameterOffset(k)[1] in set(ml_atoms):
            raise NotImplementedError("interpolate=True does not support particle parameter offsets on ML atoms")
    ml = set(ml_atoms)
    for k in range(force.getNumExceptionParameterOffsets()):
        i, j = force.getExceptionParameters(force.getExceptionParameterOffset(k)[1])[:2]
        if i in ml and j in ml:
            raise NotImplementedError("interpolate=True does not support exception parameter offsets between ML atoms")
    coulomb = _format(COULOMB_CONSTANT_KJ_NM_PER_MOL_E2)
    cutoff = force.getCutoffDistance().value_in_unit(openmm.unit.nanometer)
    lj = "4*eps*((sig/r)^12-(sig/r)^6)"
    if method == openmm.NonbondedForce.NoCutoff:
        pair = f"{coulomb}*qq/r + {lj}"
    else:
        switch = "1"
        if force.getUseSwitchingFunction():
            r_switch = force.getSwitchingDistance().value_in_unit(openmm.unit.nanometer)
            x = f"max(0, (r-{_format(r_switch)})/{_format(cutoff - r_switch)})"
            switch = f"(1 - 10*({x})^3 + 15*({x})^4 - 6*({x})^5)"
        lj_cut = f"step({_format(cutoff)}-r)*{switch}*{lj}"
        if method in (openmm.NonbondedForce.CutoffNonPeriodic, openmm.NonbondedForce.CutoffPeriodic):
            dielectric = force.getReactionFieldDielectric()
            k_rf = (dielectric - 1.0) / ((2.0 * dielectric + 1.0) * cutoff**3)
            c_rf = 3.0 * dielectric / ((2.0 * dielectric + 1.0) * cutoff)
            pair = f"step({_format(cutoff)}-r)*{coulomb}*qq*(1/r + {_format(k_rf)}*r^2 - {_format(c_rf)}) + {lj_cut}"
        else:  # Ewald, PME: the pair's direct (erfc, cut) plus reciprocal (erf) parts
            alpha = 0.0
            if method == openmm.NonbondedForce.PME:
                alpha = force.getPMEParameters()[0].value_in_unit(openmm.unit.nanometer**-1)
            if alpha == 0.0:
                alpha = math.sqrt(-math.log(2.0 * force.getEwaldErrorTolerance())) / cutoff
            a = _format(alpha)
            pair = f"{coulomb}*qq*(step({_format(cutoff)}-r)*erfc({a}*r) + erf({a}*r))/r + {lj_cut}"
    exception_energy = f"{coulomb}*qq/r + {lj}"
    pairs = openmm.CustomBondForce(pair)
    exceptions = openmm.CustomBondForce(exception_energy)
    for custom in (pairs, exceptions):
        for name in ("qq", "sig", "eps"):
            custom.addPerBondParameter(name)
    pairs.setUsesPeriodicBoundaryConditions(force.usesPeriodicBoundaryConditions())
    exceptions.setUsesPeriodicBoundaryConditions(
        force.usesPeriodicBoundaryConditions() and force.getExceptionsUsePeriodicBoundaryConditions()
    )
    excepted: Dict[Tuple[int, int], int] = {}
    for k in range(force.getNumExceptions()):
        i, j = force.getExceptionParameters(k)[:2]
        if i in ml and j in ml:
            excepted[(min(i, j), max(i, j))] = k
    for i, j in itertools.combinations(sorted(ml), 2):
        if (i, j) in excepted:
            _, _, qq, sig, eps = force.getExceptionParameters(excepted[(i, j)])
            qq_v = qq.value_in_unit(openmm.unit.elementary_charge**2)
            eps_v = eps.value_in_unit(openmm.unit.kilojoule_per_mole)
            if qq_v != 0.0 or eps_v != 0.0:
                exceptions.addBond(i, j, [qq_v, sig.value_in_unit(openmm.unit.nanometer), eps_v])
        else:
            qi, si, ei = force.getParticleParameters(i)
            qj, sj, ej = force.getParticleParameters(j)
            qq_v = (qi * qj).value_in_unit(openmm.unit.elementary_charge**2)
            eps_v = math.sqrt(ei.value_in_unit(openmm.unit.kilojoule_per_mole) * ej.value_in_unit(openmm.unit.kilojoule_per_mole))
            sig_v = 0.5 * (si + sj).value_in_unit(openmm.unit.nanometer)
            if qq_v != 0.0 or eps_v != 0.0:
                pairs.addBond(i, j, [qq_v, sig_v, eps_v])
    return [custom for custom in (pairs, exceptions) if custom.getNumBonds() > 0]


def custom_nonbonded_internal(force: openmm.CustomNonbondedForce, ml_atoms: Sequence[int]) -> openmm.Force:
    """A copy of ``force`` restricted to ML-ML pairs (no long-range correction)."""
    internal = copy.deepcopy(force)
    ml = set(ml_atoms)
    groups = [force.getInteractionGroupParameters(k) for k in range(force.getNumInteractionGroups())]
    if not groups:
        groups = [(list(ml), list(ml))]
    for k in range(internal.getNumInteractionGroups()):
        internal.setInteractionGroupParameters(k, [], [])
    added = 0
    for set1, set2 in groups:
        a = sorted(ml.intersection(set1))
        b = sorted(ml.intersection(set2))
        if a and b:
            internal.addInteractionGroup(a, b)
            added += 1
    if added == 0:
        internal.addInteractionGroup([min(ml)], [min(ml)])  # a force with no pairs
    internal.setUseLongRangeCorrection(False)
    return internal


def interpolation_force(ani: openmm.Force, internal_forces: Sequence[openmm.Force]) -> openmm.CustomCVForce:
    """``lambda * ani + (1 - lambda) * sum(internal_forces)`` as one ``CustomCVForce``.

    Parameters
    ----------
    ani
        The ANI force of the ML atoms (a ``TorchForce``), kJ/mol.
    internal_forces
        The ML-internal MM terms (see :func:`nonbonded_internal_forces`), kJ/mol.

    Returns
    -------
    openmm.CustomCVForce
        Defines the global parameter ``lambda_interpolate`` (default 1) and its energy
        derivative ``ani - sum(internal_forces)``. The forces passed in become its collective
        variables (OpenMM copies them).
    """
    cv = openmm.CustomCVForce("")
    cv.addGlobalParameter(LAMBDA_PARAMETER, 1.0)
    cv.addEnergyParameterDerivative(LAMBDA_PARAMETER)
    ani.setForceGroup(0)
    cv.addCollectiveVariable("ani", ani)
    names = []
    for k, internal in enumerate(internal_forces):
        internal.setForceGroup(0)
        names.append(f"mm{k}")
        cv.addCollectiveVariable(names[-1], internal)
    mm = "+".join(names) if names else "0"
    cv.setEnergyFunction(f"{LAMBDA_PARAMETER}*ani + (1-{LAMBDA_PARAMETER})*({mm})")
    cv.setName(f"ANI <-> MM interpolation ({LAMBDA_PARAMETER})")
    return cv
