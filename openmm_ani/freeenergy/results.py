"""Results of the MM -> ML/MM correction: unit conversion, the binding correction, JSON."""

import json
import math
from typing import Any, Dict, Optional

from openmm import unit

from ..files import atomic_write
from ..units import KCAL_TO_KJ
from .ti import MIN_SAMPLES_PER_WINDOW, NOT_ENOUGH_SAMPLES

#: Least switches per direction for a BAR error estimate: a bootstrap of one work value per
#: direction resamples the same value (error 0) and pymbar's asymptotic variance is negative.
MIN_SWITCHES_FOR_ERROR = MIN_SAMPLES_PER_WINDOW


def kt_kcal_per_mol(temperature_k: float) -> float:
    """k_B T in kcal/mol at ``temperature_k`` (K)."""
    kt_kj = (unit.MOLAR_GAS_CONSTANT_R * temperature_k * unit.kelvin).value_in_unit(unit.kilojoule_per_mole)
    return kt_kj / KCAL_TO_KJ


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def leg_summary(equilibrium: Optional[Dict[str, Any]], switching: Optional[Dict[str, Any]], temperature_k: float) -> Dict[str, Any]:
    """Free energy of one leg in kcal/mol: MBAR, or BAR without replica exchange or when MBAR failed.

    TI (:mod:`.ti`, from the replica-exchange samples) is reported beside them as a check, with
    its discretisation estimate. An estimator without an error estimate (too few samples: fewer
    than 2 decorrelated iterations, or switches per direction) has a NaN error (``null`` in
    ``results.json``) and ``<estimator>_error_reason`` saying why; ``error_reason`` repeats the
    reason of the leg's estimator.

    Parameters
    ----------
    equilibrium
        ``MBARResult.to_dict()`` (:mod:`.analysis`) or ``None``.
    switching
        ``SwitchingResult.to_dict()`` or ``None``.
    temperature_k
        Temperature, K.

    Returns
    -------
    dict
        ``delta_g_kcal_per_mol``, ``d_delta_g_kcal_per_mol``, ``estimator`` and the estimates
        of each method in kcal/mol where available (``mbar_*``, ``ti_*``, ``bar_*``,
        ``jarzynski_*``).
    """
    kt = kt_kcal_per_mol(temperature_k)
    summary: Dict[str, Any] = {}
    mbar_ok = equilibrium is not None and equilibrium.get("status", "ok") == "ok"
    if equilibrium is not None:
        summary["mbar_kcal_per_mol"] = equilibrium["delta_f_kt"] * kt
        summary["mbar_error_kcal_per_mol"] = equilibrium["d_delta_f_kt"] * kt
        if not _finite(summary["mbar_error_kcal_per_mol"]):
            summary["mbar_error_reason"] = equilibrium.get("message") or NOT_ENOUGH_SAMPLES
        ti = equilibrium.get("ti")
        if ti:
            summary["ti_kcal_per_mol"] = ti["delta_f_kt"] * kt
            summary["ti_error_kcal_per_mol"] = ti["d_delta_f_kt"] * kt
            summary["ti_discretisation_kcal_per_mol"] = ti["discretisation_kt"] * kt
            if ti["status"] != "ok":
                summary["ti_error_reason"] = ti["message"]
    if switching is not None:
        summary["bar_kcal_per_mol"] = switching["bar_delta_f_kt"] * kt
        summary["bar_error_kcal_per_mol"] = switching["bar_d_delta_f_kt"] * kt
        works = [switching.get(key) for key in ("forward_work", "reverse_work")]
        n = min(len(w) for w in works) if all(w is not None for w in works) else None
        if n is not None and n < MIN_SWITCHES_FOR_ERROR:  # the bootstrap of one value per direction gives 0
            summary["bar_error_kcal_per_mol"] = float("nan")
            summary["bar_error_reason"] = (f"{NOT_ENOUGH_SAMPLES}: {n} switch(es) per direction, at least "
                                           f"{MIN_SWITCHES_FOR_ERROR} needed for an error estimate")
        elif not _finite(summary["bar_error_kcal_per_mol"]):
            summary["bar_error_reason"] = NOT_ENOUGH_SAMPLES
        summary["jarzynski_forward_kcal_per_mol"] = switching["jarzynski_forward_kt"] * kt
        summary["jarzynski_reverse_kcal_per_mol"] = switching["jarzynski_reverse_kt"] * kt
    if equilibrium is None and switching is None:
        raise ValueError("a leg needs an equilibrium or a switching result")
    if mbar_ok or switching is None:
        summary.update(estimator="MBAR" if mbar_ok else "none", delta_g_kcal_per_mol=summary["mbar_kcal_per_mol"],
                       d_delta_g_kcal_per_mol=summary["mbar_error_kcal_per_mol"])
    else:  # no replica exchange, or MBAR failed: BAR
        summary.update(estimator="BAR", delta_g_kcal_per_mol=summary["bar_kcal_per_mol"], d_delta_g_kcal_per_mol=summary["bar_error_kcal_per_mol"])
    reason = summary.get(f"{'bar' if summary['estimator'] == 'BAR' else 'mbar'}_error_reason")
    if reason:
        summary["error_reason"] = reason
    return summary


def binding_correction(complex_leg: Dict[str, Any], solvent_leg: Dict[str, Any], mm_binding_kcal_per_mol: Optional[float] = None) -> Dict[str, Any]:
    """ddG = dG_complex - dG_solvent (MM -> ML/MM), and the corrected binding free energy.

    Parameters
    ----------
    complex_leg, solvent_leg
        Outputs of :func:`leg_summary`.
    mm_binding_kcal_per_mol
        The MM binding free energy to correct (kcal/mol), if known.

    Returns
    -------
    dict
        ``ddg_kcal_per_mol``, ``d_ddg_kcal_per_mol`` (independent errors added in quadrature; NaN
        with ``error_reason`` naming the leg when a leg has no error estimate)
        and, with an MM value, ``mm_binding_kcal_per_mol`` and ``corrected_binding_kcal_per_mol``.
    """
    ddg = complex_leg["delta_g_kcal_per_mol"] - solvent_leg["delta_g_kcal_per_mol"]
    error = math.hypot(complex_leg["d_delta_g_kcal_per_mol"], solvent_leg["d_delta_g_kcal_per_mol"])
    result: Dict[str, Any] = {"ddg_kcal_per_mol": ddg, "d_ddg_kcal_per_mol": error}
    reasons = [f"{name}: {leg['error_reason']}" for name, leg in (("complex", complex_leg), ("solvent", solvent_leg))
               if leg.get("error_reason") and not _finite(leg["d_delta_g_kcal_per_mol"])]
    if reasons:
        result["error_reason"] = "; ".join(reasons)
    if mm_binding_kcal_per_mol is not None:
        result["mm_binding_kcal_per_mol"] = float(mm_binding_kcal_per_mol)
        result["corrected_binding_kcal_per_mol"] = float(mm_binding_kcal_per_mol) + ddg
        result["d_corrected_binding_kcal_per_mol"] = error
    return result


def summary_table(results: Dict[str, Any]) -> Dict[str, Any]:
    """The headline figures of :func:`~openmm_ani.freeenergy.workflow.run_correction`'s results.

    Per leg: MBAR, TI and BAR (kcal/mol) with uncertainties (TI's discretisation estimate too), the smallest neighbour overlap, windows,
    iterations, decorrelated iterations, switches, wall time and the leg's verdict; then the
    correction with the overall verdict and its advice.
    """
    table: Dict[str, Any] = {}
    for name, data in results["legs"].items():
        s, eq = data["summary"], data["equilibrium"] or {}
        overlaps = eq.get("neighbour_overlaps") or []
        table[name] = {
            "mbar_kcal_per_mol": s.get("mbar_kcal_per_mol"), "mbar_error_kcal_per_mol": s.get("mbar_error_kcal_per_mol"),
            "ti_kcal_per_mol": s.get("ti_kcal_per_mol"), "ti_error_kcal_per_mol": s.get("ti_error_kcal_per_mol"),
            "ti_discretisation_kcal_per_mol": s.get("ti_discretisation_kcal_per_mol"),
            "bar_kcal_per_mol": s.get("bar_kcal_per_mol"), "bar_error_kcal_per_mol": s.get("bar_error_kcal_per_mol"),
            "min_neighbour_overlap": min(overlaps) if overlaps else None, "n_windows": len(data["lambdas"]),
            "n_iterations": eq.get("n_iterations"), "n_effective": eq.get("n_effective"),
            "n_switches": None if data["switching"] is None else len(data["switching"]["forward_work"]),
            "wall_time_s": data["wall_time_s"], "converged": results["verdict"]["legs"][name]["converged"],
        }
    table["correction"] = {**results["correction"], "converged": results["verdict"]["converged"], "advice": results["verdict"]["advice"]}
    return table


def _strict(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_json(data: Dict[str, Any], path: str) -> None:
    """Write ``data`` as strict JSON (NaN -> null) atomically (:func:`openmm_ani.files.atomic_write`)."""
    with atomic_write(path, "w", encoding="utf-8") as stream:
        json.dump(_strict(data), stream, indent=2, sort_keys=True, allow_nan=False)
