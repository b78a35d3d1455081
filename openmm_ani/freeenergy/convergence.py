"""The convergence verdict of a leg and of the correction, with what to extend and by how much.

A leg is converged when every required check passes:

* ``error``: its uncertainty (MBAR, or BAR without replica exchange) is at most the leg's
  target (the correction's target / sqrt(2); 0.5 kcal/mol per leg without a target);
* ``mbar_bar_agreement``: MBAR and BAR differ by at most twice their combined uncertainty;
* ``mbar_ti_agreement``: MBAR and TI (:mod:`.ti`, the same samples) differ by at most twice their
  combined uncertainty plus TI's discretisation estimate (``|slope-corrected - plain trapezoid|``,
  which covers the error of integrating over a finite set of windows);
* ``neighbour_overlap``: every neighbouring pair of windows has an MBAR overlap of at least
  :data:`~openmm_ani.freeenergy.analysis.MIN_NEIGHBOUR_OVERLAP`;
* ``effective_samples``: at least :data:`MIN_EFFECTIVE` decorrelated replica-exchange
  iterations and :data:`MIN_EFFECTIVE` switches per direction.

A check whose estimator has no error estimate (too few samples) fails with ``reason`` saying so
(``"not enough samples: ..."``) instead of comparing a meaningless 0.

The forward/reverse Jarzynski gap is reported as an advisory check (a large gap means
dissipative switches: BAR stays valid but needs more of them; longer switches help).

``model_disagreement`` (advisory, :func:`add_model_checks`) flags a leg whose typical lambda = 1
sample is one ANI-1x's active learning would have sent to be labelled: more than
:data:`MAX_FRACTION_ABOVE_QBC` of the samples have an ensemble disagreement
``rho = std(E_k) / sqrt(atoms)`` above the query-by-committee threshold (0.23 kcal/mol/sqrt(atom),
:mod:`.model_uncertainty`). It does not make the leg "not converged": sampling longer does not
change it; it says the converged number rests on configurations the model does not know.

Recommendations extrapolate with the 1/sqrt(N) law: a leg whose error is ``e`` after ``N``
samples needs about ``N (e / target)^2``.

Comparisons are printed with as many decimals as it takes to tell the two numbers apart
(:func:`compare`): ``ddG error 0.713 > 0.710``, not ``0.71 > 0.71``.
"""

import math
from typing import Any, Dict, List, Optional, Tuple

from .analysis import MIN_EFFECTIVE, MIN_NEIGHBOUR_OVERLAP, windows_to_add

#: Per-leg error (kcal/mol) when no target is given.
DEFAULT_LEG_TARGET = 0.5
#: Forward/reverse Jarzynski gap (kcal/mol) above which longer switches are advised.
JARZYNSKI_GAP = 1.0
#: Largest fraction of a leg's lambda = 1 samples above the query-by-committee threshold before
#: the advisory ``model_disagreement`` check fails (more than half: the median sample is above it).
MAX_FRACTION_ABOVE_QBC = 0.5
#: Allowed difference of two estimators in units of their combined uncertainty.
AGREEMENT_SIGMAS = 2.0
#: Decimals a comparison starts with, and the most it shows to tell two numbers apart.
DECIMALS, MAX_DECIMALS = 2, 6


def readable(value: float, limit: float) -> Tuple[str, str]:
    """Both numbers with the fewest decimals (at least :data:`DECIMALS`, at most :data:`MAX_DECIMALS`) that tell them apart."""
    for decimals in range(DECIMALS, MAX_DECIMALS + 1):
        left, right = f"{value:.{decimals}f}", f"{limit:.{decimals}f}"
        if left != right:
            break
    return left, right


def compare(value: float, limit: float, relation: str = ">") -> str:
    """``"<value> <relation> <limit>"`` printed by :func:`readable` (``"0.713 > 0.710"``, not ``"0.71 > 0.71"``)."""
    left, right = readable(value, limit)
    return f"{left} {relation} {right}"


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def leg_target(target_error_kcal_per_mol: Optional[float]) -> float:
    """Per-leg error target (kcal/mol) for a target of the correction (independent legs add in quadrature)."""
    return DEFAULT_LEG_TARGET if target_error_kcal_per_mol is None else float(target_error_kcal_per_mol) / math.sqrt(2.0)


def _check(passed: bool, value: Any, limit: Any, required: bool = True, reason: Optional[str] = None) -> Dict[str, Any]:
    check = {"passed": bool(passed), "value": value, "limit": limit, "required": required}
    if reason:
        check["reason"] = reason
    return check


def _agreement(name: str, first: str, second: str, summary: Dict[str, Any], extra: float = 0.0,
               extra_text: str = "") -> Tuple[Dict[str, Any], Optional[str]]:
    """Check that estimators ``first`` and ``second`` (summary key prefixes) agree, and the advice if not."""
    a, b = summary[f"{first}_kcal_per_mol"], summary[f"{second}_kcal_per_mol"]
    errors = summary[f"{first}_error_kcal_per_mol"], summary[f"{second}_error_kcal_per_mol"]
    if not _finite(a, b, *errors, extra):
        reasons = [f"{key.upper()}: {summary[f'{key}_error_reason']}" for key in (first, second) if summary.get(f"{key}_error_reason")]
        return _check(False, None, None, reason="; ".join(reasons) or "an estimate is not finite"), None
    difference, limit = abs(a - b), AGREEMENT_SIGMAS * math.hypot(*errors) + extra
    if difference <= limit:
        return _check(True, difference, limit), None
    shown, bound = readable(difference, limit)
    return _check(False, difference, limit), (f"{name}: {first.upper()} and {second.upper()} differ by {shown} kcal/mol "
                                              f"(> 2 sigma{extra_text} = {bound}): extend both")


def leg_verdict(name: str, summary: Dict[str, Any], equilibrium: Optional[Dict[str, Any]], switching: Optional[Dict[str, Any]],
                kt: float, target: float, length_per_window: float, n_iterations: int) -> Dict[str, Any]:
    """Checks and recommendations of one leg.

    Parameters
    ----------
    name
        Leg name (for the messages).
    summary
        :func:`openmm_ani.freeenergy.results.leg_summary` of the leg (kcal/mol).
    equilibrium, switching
        ``MBARResult.to_dict()`` and ``SwitchingResult.to_dict()`` (kT), or ``None``.
    kt
        k_B T, kcal/mol.
    target
        The leg's error target, kcal/mol.
    length_per_window
        Thermodynamic length per window used to size inserted windows, kT.
    n_iterations
        Iterations of the replica exchange so far (for the extension).

    Returns
    -------
    dict
        ``converged``, ``checks`` (name -> passed/value/limit/required), ``advice`` (what to
        extend for a verdict of converged) and ``notes`` (advisory: a better second estimator).
    """
    checks: Dict[str, Dict[str, Any]] = {}
    advice: List[str] = []
    notes: List[str] = []
    error = summary.get("d_delta_g_kcal_per_mol")
    if _finite(error):
        checks["error"] = _check(error <= target, error, target)
    else:
        reason = summary.get("error_reason") or "no error estimate"
        checks["error"] = _check(False, None, target, reason=reason)
        advice.append(f"{name}: {summary.get('estimator', '')} error: {reason}")
    if equilibrium is not None:
        if equilibrium["status"] != "ok":
            checks["mbar"] = _check(False, equilibrium["status"], "ok")
            advice.append(f"{name}: {equilibrium['message']}")
        overlaps = equilibrium.get("neighbour_overlaps") or []
        spreads = equilibrium.get("neighbour_spread_kt") or []
        lambdas = equilibrium["lambdas"]
        if overlaps:
            bad = [i for i, o in enumerate(overlaps) if o < MIN_NEIGHBOUR_OVERLAP]
            checks["neighbour_overlap"] = _check(not bad, min(overlaps), MIN_NEIGHBOUR_OVERLAP)
        else:  # MBAR failed: judge the gaps by their spread
            bad = [i for i, s in enumerate(spreads) if not (math.isfinite(s) and s <= 2.0 * length_per_window)]
            checks["neighbour_overlap"] = _check(False, None, MIN_NEIGHBOUR_OVERLAP)
        for i, values in windows_to_add(lambdas, spreads, length_per_window, bad).items():
            spread = spreads[i] if i < len(spreads) else float("nan")
            advice.append(f"{name}: windows {lambdas[i]:g} and {lambdas[i + 1]:g} do not overlap (spread {spread:.1f} kT): "
                          f"add lambda {', '.join(f'{v:g}' for v in values)} (--lambdas), then rerun with --overwrite")
        n_eff = equilibrium.get("n_effective", 0.0)
        checks["effective_samples"] = _check(n_eff >= MIN_EFFECTIVE, n_eff, MIN_EFFECTIVE)
        mbar_error = summary.get("mbar_error_kcal_per_mol")
        factor = 1.0
        if mbar_error is not None and math.isfinite(mbar_error) and mbar_error > target:
            factor = (mbar_error / target) ** 2
        if n_eff < MIN_EFFECTIVE:
            factor = max(factor, MIN_EFFECTIVE / max(n_eff, 1.0))
        if factor > 1.0:
            reason = (f"MBAR error {compare(mbar_error, target)} kcal/mol" if _finite(mbar_error) and mbar_error > target
                      else f"only {n_eff:.0f} decorrelated iterations")
            advice.append(f"{name}: {reason}: extend replica exchange to about {int(math.ceil(max(n_iterations, 1) * factor))} "
                          f"iterations (--n-iterations; x{factor:.1f} the samples)")
    if switching is not None:
        n = min(len(switching["forward_work"]), len(switching["reverse_work"]))
        eff = checks.get("effective_samples")
        ok = n >= MIN_EFFECTIVE and (eff is None or eff["passed"])
        checks["effective_samples"] = _check(ok, {"iterations": None if eff is None else eff["value"], "switches": n}, MIN_EFFECTIVE)
        if n < MIN_EFFECTIVE:  # the verdict needs them whichever estimator gives the leg's result
            advice.append(f"{name}: only {n} switches per direction: run at least {MIN_EFFECTIVE} (--n-switches)")
        bar_error = summary.get("bar_error_kcal_per_mol")
        if bar_error is not None and math.isfinite(bar_error) and bar_error > target:
            factor = (bar_error / target) ** 2
            (advice if summary.get("estimator") == "BAR" else notes).append(f"{name}: BAR error {compare(bar_error, target)} kcal/mol: about {int(math.ceil(n * factor))} "
                          f"switches per direction (--n-switches)")
        gap = abs(switching["jarzynski_forward_kt"] - switching["jarzynski_reverse_kt"]) * kt
        checks["jarzynski_gap"] = _check(gap <= JARZYNSKI_GAP, gap, JARZYNSKI_GAP, required=False)
        if gap > JARZYNSKI_GAP:
            notes.append(f"{name}: forward/reverse Jarzynski estimates differ by {gap:.1f} kcal/mol: the switches dissipate; "
                          f"longer switches (--switching-steps x2) need fewer of them")
    if equilibrium is not None and switching is not None and "mbar_kcal_per_mol" in summary:
        checks["mbar_bar_agreement"], text = _agreement(name, "mbar", "bar", summary)
        if text:
            advice.append(text)
    if equilibrium is not None and equilibrium["status"] == "ok" and "ti_kcal_per_mol" in summary:
        discretisation = summary["ti_discretisation_kcal_per_mol"]
        checks["mbar_ti_agreement"], text = _agreement(name, "mbar", "ti", summary, discretisation, " + TI discretisation")
        if text:  # windows too far apart for TI show as a large discretisation estimate: more windows help
            advice.append(text + "; if TI's discretisation estimate dominates, add windows (smaller --length-per-window)")
    converged = all(c["passed"] for c in checks.values() if c["required"])
    return {"converged": converged, "checks": checks, "advice": advice, "notes": notes, "target_kcal_per_mol": target}


def add_model_checks(verdict: Dict[str, Any], name: str, uncertainty: Dict[str, Any]) -> None:
    """Add the advisory ``model_disagreement`` check and its notes to a leg's verdict (in place).

    Parameters
    ----------
    verdict
        :func:`leg_verdict`'s result.
    name
        Leg name.
    uncertainty
        :func:`openmm_ani.freeenergy.model_uncertainty.leg_model_uncertainty` of the leg.
    """
    if not uncertainty.get("available"):
        verdict["notes"].append(f"{name}: model uncertainty unavailable: {uncertainty.get('reason')}")
        return
    d = uncertainty["disagreement"]
    fraction, threshold = d["fraction_above_threshold"], d["qbc_threshold_kcal_per_mol_per_sqrt_atom"]
    verdict["checks"]["model_disagreement"] = _check(fraction <= MAX_FRACTION_ABOVE_QBC, fraction, MAX_FRACTION_ABOVE_QBC, required=False)
    if fraction > MAX_FRACTION_ABOVE_QBC:
        verdict["notes"].append(
            f"{name}: the ANI ensemble disagrees on {100 * fraction:.0f} % of the lambda = 1 samples beyond "
            f"{threshold} kcal/mol/sqrt(atom) (max {d['rho_max_kcal_per_mol_per_sqrt_atom']:.3f}): the ligand's sampled "
            "configurations lie outside what the model was trained on; treat the correction with care")
    flagged = uncertainty.get("flagged_members") or []
    if flagged:
        verdict["notes"].append(f"{name}: the reweighting to members {', '.join(map(str, flagged))} rests on few effective "
                                f"samples (least {uncertainty['min_reweighting_effective']:.1f}): their dG and the model spread "
                                "are rough; more lambda = 1 samples help")


def correction_verdict(legs: Dict[str, Dict[str, Any]], d_ddg: float, target: Optional[float]) -> Dict[str, Any]:
    """Verdict of the correction: both legs converged and ddG's error within the target."""
    limit = target if target is not None else DEFAULT_LEG_TARGET * math.sqrt(2.0)
    within = math.isfinite(d_ddg) and d_ddg <= limit
    converged = within and all(v["converged"] for v in legs.values())
    advice = [a for v in legs.values() for a in v["advice"]]
    result: Dict[str, Any] = {"converged": converged, "d_ddg_kcal_per_mol": d_ddg, "target_kcal_per_mol": limit, "legs": legs,
                              "advice": advice}
    if not within and math.isfinite(d_ddg):
        worst = max(legs, key=lambda k: legs[k]["checks"]["error"]["value"] or 0.0)
        advice.insert(0, f"ddG error {compare(d_ddg, limit)} kcal/mol: the {worst} leg contributes most")
    elif not math.isfinite(d_ddg):
        missing = [k for k, v in legs.items() if not v["checks"]["error"]["passed"] and v["checks"]["error"].get("reason")]
        result["error_reason"] = "; ".join(f"{k}: {legs[k]['checks']['error']['reason']}" for k in missing) or "no error estimate"
    return result


def verdict_lines(verdict: Dict[str, Any]) -> List[str]:
    """The verdict as lines for the screen."""
    state = "CONVERGED" if verdict["converged"] else "NOT CONVERGED"
    error, target = verdict["d_ddg_kcal_per_mol"], verdict["target_kcal_per_mol"]
    if not _finite(error):
        head = f"ddG error: {verdict.get('error_reason') or 'no error estimate'}; target {target:.2f}"
    else:
        head = f"ddG error vs target: {compare(error, target, '<=' if error <= target else '>')}"
    lines = [f"verdict: {state} ({head} kcal/mol)"]
    for name, leg in verdict["legs"].items():
        failed = [k + (f" [{c['reason']}]" if c.get("reason") else "") for k, c in leg["checks"].items() if not c["passed"]]
        lines.append(f"  {name}: {'converged' if leg['converged'] else 'not converged'}"
                     + (f" (failed: {', '.join(failed)})" if failed else ""))
    lines.extend(f"  - {a}" for a in verdict["advice"])
    lines.extend(f"  (note) {n}" for leg in verdict["legs"].values() for n in leg.get("notes", []))
    return lines
