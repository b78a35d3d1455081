"""The model's uncertainty of a leg: each ensemble member's dG by reweighting, and the disagreement.

The samples are drawn with the ensemble-mean ANI energy ``E = mean_k E_k`` of the ligand. The
lambda = 1 end state with member ``k`` instead differs from the sampled end state by
``E_k - E`` on the ligand only (the MM terms are the same), so with ``beta = 1 / k_B T``

    dG_k(leg) = dG(leg) + df_k,   df_k = -kT ln < exp(-beta (E_k - E)) >_(lambda = 1)

exactly (free-energy perturbation from the mean end state to the member's; the lambda = 0 MM end
state does not involve ANI). It is evaluated over lambda = 1 samples: the replica in the
lambda = 1 state at each decorrelated iteration MBAR uses, or, without replica exchange, the
start configurations of the reverse switches (equilibrium samples of the lambda = 1 MD chain).
The switching work itself is not recomputed per member: the trajectories were driven by the
mean, and a member's work along them is not the work of a member-driven protocol. The
reweighting is well behaved when ``E_k - E`` varies little over the samples (its spread small
against kT); its Kish effective sample size is reported and a member whose reweighting rests on
few samples is flagged. The spread over members ("+- model") is the sample standard deviation
(``M - 1``) of ``dG_k`` (per leg) and of ``ddG_k = dG_k(complex) - dG_k(solvent)``.

The ensemble disagreement over the same samples: the standard deviation of the member energies
(kcal/mol), the same per sqrt(ligand atoms) ``rho`` (the query-by-committee measure of ANI-1x,
:data:`~openmm_ani.model.ani.QBC_THRESHOLD_KCAL_PER_SQRT_ATOM`), and the largest per-atom
force spread (:class:`~openmm_ani.openmm.reporter.DisagreementEvaluator`).

The ligand's positions alone give its ANI energy: the ANI force of a mechanically embedded
ligand sees only ML atoms (made whole by the minimum image in a periodic system, with the box
stored per sample). A ligand bonded to MM atoms (link atoms) is not covered.
"""

import logging
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..model.ani import QBC_THRESHOLD_KCAL_PER_SQRT_ATOM
from ..units import KCAL_TO_KJ, NM_TO_ANGSTROM

logger = logging.getLogger(__name__)

#: A member's reweighting is flagged below this Kish effective sample size ...
MIN_REWEIGHTING_SAMPLES = 10.0
#: ... or below this fraction of the samples (a Gaussian spread sigma of ``E_k - E`` gives
#: ``exp(-sigma^2)``: 0.1 at about 1.5 kT).
MIN_REWEIGHTING_FRACTION = 0.1
#: (kcal/mol/Å) per (kJ/mol/nm).
KJ_PER_NM_TO_KCAL_PER_ANGSTROM = 1.0 / (KCAL_TO_KJ * NM_TO_ANGSTROM)


class Unavailable(Exception):
    """The leg has no lambda = 1 samples with ligand positions (the message says why)."""


def exponential_reweighting(delta_u_kt: Sequence[float]) -> Dict[str, float]:
    """``-ln < exp(-du) >`` over samples of ``du`` (kT), its error and the Kish effective sample size.

    Parameters
    ----------
    delta_u_kt
        ``[N]`` reduced energy differences ``beta (E_k - E)`` of the target state (member ``k``)
        relative to the sampled state, at each sample, kT.

    Returns
    -------
    dict
        ``delta_f_kt`` (kT), ``d_delta_f_kt`` (kT: delta-method standard error
        ``sqrt(g var(w) / N) / mean(w)`` of ``w = exp(-du)``, with ``g`` the statistical inefficiency
        of ``w``; NaN below 2 samples), ``n_effective`` (Kish ``(sum w)^2 / sum w^2``),
        ``n_samples`` and ``statistical_inefficiency``.
    """
    du = np.asarray(delta_u_kt, dtype=float)
    n = du.size
    if n == 0:
        raise ValueError("no samples to reweight")
    shift = float(np.min(du))
    w = np.exp(-(du - shift))  # in (0, 1], the largest weight is 1
    delta_f = shift - math.log(float(np.mean(w)))
    g = 1.0
    if n >= 4 and float(np.std(w)) > 0.0:
        from pymbar import timeseries

        g = max(1.0, float(timeseries.statistical_inefficiency(w)))
    error = float(math.sqrt(g * float(np.var(w, ddof=1)) / n) / float(np.mean(w))) if n > 1 else float("nan")
    return {"delta_f_kt": float(delta_f), "d_delta_f_kt": error, "n_effective": float(w.sum() ** 2 / np.sum(w * w)),
            "n_samples": int(n), "statistical_inefficiency": g}


def disagreement_statistics(members_kj: np.ndarray, force_spread_kj_nm: np.ndarray, n_atoms: int) -> Dict[str, Any]:
    """Ensemble disagreement over samples.

    Parameters
    ----------
    members_kj
        ``[N, M]`` member energies, kJ/mol.
    force_spread_kj_nm
        ``[N]`` largest per-atom force spread of each sample, kJ/mol/nm.
    n_atoms
        Atoms of the ML region.

    Returns
    -------
    dict
        Energy standard deviation (``M - 1``) mean/max in kcal/mol, ``rho`` = std / sqrt(atoms)
        mean/median/max in kcal/mol/sqrt(atom), the fraction of samples whose ``rho`` exceeds
        :data:`QBC_THRESHOLD_KCAL_PER_SQRT_ATOM`, and the largest force spread in kcal/mol/Å.
    """
    std = np.std(np.asarray(members_kj, dtype=float), axis=1, ddof=1) / KCAL_TO_KJ
    rho = std / math.sqrt(n_atoms)
    spread = np.asarray(force_spread_kj_nm, dtype=float) * KJ_PER_NM_TO_KCAL_PER_ANGSTROM
    return {
        "n_samples": int(std.size), "n_atoms": int(n_atoms),
        "energy_std_mean_kcal_per_mol": float(std.mean()), "energy_std_max_kcal_per_mol": float(std.max()),
        "rho_mean_kcal_per_mol_per_sqrt_atom": float(rho.mean()), "rho_median_kcal_per_mol_per_sqrt_atom": float(np.median(rho)),
        "rho_max_kcal_per_mol_per_sqrt_atom": float(rho.max()),
        "qbc_threshold_kcal_per_mol_per_sqrt_atom": QBC_THRESHOLD_KCAL_PER_SQRT_ATOM,
        "fraction_above_threshold": float(np.mean(rho > QBC_THRESHOLD_KCAL_PER_SQRT_ATOM)),
        "max_force_spread_kcal_per_mol_per_angstrom": float(spread.max()),
    }


def member_free_energies(members_kj: np.ndarray, kt_kcal: float, delta_g_kcal: float) -> Dict[str, Any]:
    """Each member's dG of the leg from the mean's, by reweighting the lambda = 1 samples.

    Parameters
    ----------
    members_kj
        ``[N, M]`` member energies of the ligand at each lambda = 1 sample, kJ/mol (the sampled
        energy is their mean over members).
    kt_kcal
        k_B T, kcal/mol.
    delta_g_kcal
        The leg's dG (MM -> ML/MM with the ensemble mean), kcal/mol.

    Returns
    -------
    dict
        ``members`` (per member: ``delta_g_kcal_per_mol``, ``reweighting_kcal_per_mol`` (``df_k``),
        its error, ``n_effective``, ``flagged``), ``delta_g_members_kcal_per_mol``,
        ``spread_kcal_per_mol`` (standard deviation over members), ``min_reweighting_effective``
        and ``flagged_members``.
    """
    members_kj = np.asarray(members_kj, dtype=float)
    du = (members_kj - members_kj.mean(axis=1, keepdims=True)) / (kt_kcal * KCAL_TO_KJ)
    n = members_kj.shape[0]
    rows: List[Dict[str, Any]] = []
    for k in range(members_kj.shape[1]):
        fep = exponential_reweighting(du[:, k])
        flagged = fep["n_effective"] < max(MIN_REWEIGHTING_SAMPLES, MIN_REWEIGHTING_FRACTION * n)
        rows.append({"delta_g_kcal_per_mol": delta_g_kcal + fep["delta_f_kt"] * kt_kcal,
                     "reweighting_kcal_per_mol": fep["delta_f_kt"] * kt_kcal, "d_reweighting_kcal_per_mol": fep["d_delta_f_kt"] * kt_kcal,
                     "n_effective": fep["n_effective"], "statistical_inefficiency": fep["statistical_inefficiency"], "flagged": bool(flagged)})
    values = [r["delta_g_kcal_per_mol"] for r in rows]
    return {"members": rows, "delta_g_members_kcal_per_mol": values,
            "spread_kcal_per_mol": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "min_reweighting_effective": float(min(r["n_effective"] for r in rows)),
            "flagged_members": [k for k, r in enumerate(rows) if r["flagged"]]}


def replica_exchange_samples(storage: str) -> Tuple[np.ndarray, np.ndarray]:
    """Ligand positions and boxes (nm) of the lambda = 1 replica at MBAR's decorrelated iterations.

    Returns
    -------
    (positions ``[N, n_ligand, 3]``, boxes ``[N, 3, 3]``)

    Raises
    ------
    Unavailable
        The file stores no per-iteration ligand positions (started before they were recorded).
    """
    from openmm import unit
    from openmmtools import multistate

    from .analysis import _decorrelated_iterations, read_samples

    reporter = multistate.MultiStateReporter(storage, open_mode="r")
    try:
        if not reporter.analysis_particle_indices:
            raise Unavailable(f"{os.path.basename(storage)} was started without per-iteration ligand positions "
                              "(an older run: rerun with --overwrite for the model uncertainty)")
        energies, states = read_samples(reporter)
        indices = _decorrelated_iterations(energies, states)[0]
        last = energies.shape[2] - 1
        positions, boxes = [], []
        for i in indices:
            replica = int(np.flatnonzero(states[i] == last)[0])
            sampler_state = reporter.read_sampler_states(int(i), analysis_particles_only=True)[replica]
            positions.append(np.asarray(sampler_state.positions.value_in_unit(unit.nanometer), dtype=float))
            box = sampler_state.box_vectors
            boxes.append(np.zeros((3, 3)) if box is None else np.asarray(box.value_in_unit(unit.nanometer), dtype=float))
    finally:
        reporter.close()
    return np.array(positions), np.array(boxes)


def switching_samples(store: str) -> Tuple[np.ndarray, np.ndarray]:
    """Ligand positions and boxes (nm) at the starts of the reverse switches in ``store``.

    Raises
    ------
    Unavailable
        The store records no start configurations (written by an older version).
    """
    import json

    with open(store) as stream:
        starts = [s for s in json.load(stream).get("reverse_starts", []) if s is not None]
    if not starts:
        raise Unavailable(f"{os.path.basename(store)} records no reverse-switch start configurations (an older run: "
                          "rerun with --overwrite for the model uncertainty)")
    return np.array([s["positions_nm"] for s in starts], dtype=float), np.array([s["box_nm"] for s in starts], dtype=float)


def evaluate_members(evaluator: Any, positions: np.ndarray, boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Member energies ``[N, M]`` (kJ/mol) and force spreads ``[N]`` (kJ/mol/nm) of ligand samples.

    ``evaluator`` is a :class:`~openmm_ani.openmm.reporter.DisagreementEvaluator` of the ligand
    alone (its atoms in the order of ``positions``).
    """
    members, spreads = [], []
    for x, box in zip(positions, boxes):
        result = evaluator(x, box if evaluator.needs_box else None, forces=True)
        members.append(result.members)
        spreads.append(result.force_spread)
    return np.array(members, dtype=float), np.array(spreads, dtype=float)


def ligand_evaluator(leg: Any, model: str) -> Any:
    """A double-precision :class:`~openmm_ani.openmm.reporter.DisagreementEvaluator` of ``leg``'s ligand alone.

    Raises
    ------
    Unavailable
        The ligand is bonded to MM atoms (its ANI input then needs those atoms).
    """
    from ..openmm import ANIPotential
    from ..openmm.embedding.linkatoms import find_link_bonds
    from ..openmm.reporter import DisagreementEvaluator
    from ..openmm.topology import topology_atomic_numbers

    atoms = [int(i) for i in leg.ml_atoms]
    if find_link_bonds(leg.topology, atoms):
        raise Unavailable("the ML region is bonded to MM atoms (link atoms): its ANI energy needs more than the ligand's positions")
    numbers = topology_atomic_numbers(leg.topology, atoms)
    potential = ANIPotential(model, precision="double")
    return DisagreementEvaluator(potential.model, numbers, make_whole=leg.system.usesPeriodicBoundaryConditions())


def leg_model_uncertainty(leg: Any, model: str, directory: str, equilibrium: Optional[Dict[str, Any]],
                          delta_g_kcal: float, kt_kcal: float) -> Dict[str, Any]:
    """The model uncertainty of one leg from the samples in ``directory``.

    Parameters
    ----------
    leg
        The :class:`~openmm_ani.freeenergy.workflow.LegInput`.
    model
        The ANI model name or file of the run.
    directory
        The leg's output directory (``replica_exchange.nc``, ``switching.json``).
    equilibrium
        ``MBARResult.to_dict()`` or ``None``: replica-exchange samples are used when MBAR gave
        the leg's estimate, else the reverse-switch starts.
    delta_g_kcal
        The leg's dG, kcal/mol.
    kt_kcal
        k_B T, kcal/mol.

    Returns
    -------
    dict
        ``available`` true with ``source``, :func:`member_free_energies` and ``disagreement``
        (:func:`disagreement_statistics`); or ``available`` false with a ``reason``.
    """
    storage, store = os.path.join(directory, "replica_exchange.nc"), os.path.join(directory, "switching.json")
    try:
        if not math.isfinite(delta_g_kcal):
            raise Unavailable("the leg has no finite dG")
        if equilibrium is not None and equilibrium.get("status") == "ok" and os.path.exists(storage):
            source = "replica exchange: the lambda = 1 replica at each decorrelated iteration"
            positions, boxes = replica_exchange_samples(storage)
        elif os.path.exists(store):
            source = "switching: the start configurations of the reverse switches"
            positions, boxes = switching_samples(store)
        else:
            raise Unavailable("no lambda = 1 samples")
        members, spreads = evaluate_members(ligand_evaluator(leg, model), positions, boxes)
    except Unavailable as why:
        logger.warning("%s leg: model uncertainty unavailable: %s", leg.name, why)
        return {"available": False, "reason": str(why)}
    if members.shape[1] < 2:
        return {"available": False, "reason": f"model {model!r} has one member: no ensemble to compare"}
    return {"available": True, "source": source, **member_free_energies(members, kt_kcal, delta_g_kcal),
            "disagreement": disagreement_statistics(members, spreads, positions.shape[1])}


def correction_model_uncertainty(complex_leg: Dict[str, Any], solvent_leg: Dict[str, Any]) -> Dict[str, Any]:
    """``ddG_k`` of each member and their spread (kcal/mol) from two legs' :func:`leg_model_uncertainty`.

    Returns
    -------
    dict
        ``ddg_members_kcal_per_mol`` and ``ddg_model_spread_kcal_per_mol`` (standard deviation over
        members), or ``ddg_model_spread_kcal_per_mol`` ``None`` with ``model_uncertainty_reason``.
    """
    missing = [f"{name}: {leg.get('reason')}" for name, leg in (("complex", complex_leg), ("solvent", solvent_leg))
               if not leg.get("available")]
    if missing:
        return {"ddg_model_spread_kcal_per_mol": None, "model_uncertainty_reason": "; ".join(missing)}
    ddg = [c - s for c, s in zip(complex_leg["delta_g_members_kcal_per_mol"], solvent_leg["delta_g_members_kcal_per_mol"])]
    return {"ddg_members_kcal_per_mol": ddg, "ddg_model_spread_kcal_per_mol": float(np.std(ddg, ddof=1))}


def disagreement_line(name: str, uncertainty: Dict[str, Any]) -> str:
    """One screen line: the leg's model spread and the ensemble disagreement on its lambda = 1 samples."""
    if not uncertainty.get("available"):
        return f"{name}: model uncertainty unavailable ({uncertainty.get('reason')})"
    d = uncertainty["disagreement"]
    return (f"{name}: +- model {uncertainty['spread_kcal_per_mol']:.3f} kcal/mol; ensemble disagreement on {d['n_samples']} "
            f"lambda=1 samples: sigma(E) {d['energy_std_mean_kcal_per_mol']:.2f} kcal/mol (max {d['energy_std_max_kcal_per_mol']:.2f}), "
            f"rho {d['rho_median_kcal_per_mol_per_sqrt_atom']:.3f} median, {d['rho_max_kcal_per_mol_per_sqrt_atom']:.3f} max "
            f"kcal/mol/sqrt(atom), {100 * d['fraction_above_threshold']:.0f} % above {d['qbc_threshold_kcal_per_mol_per_sqrt_atom']}; "
            f"max force spread {d['max_force_spread_kcal_per_mol_per_angstrom']:.1f} kcal/mol/A")
