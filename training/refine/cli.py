"""``openmm-ani train refine LIGAND``: ligand-specific active learning (thin over :func:`.loop.refine`)."""

import argparse
import os
import sys
from typing import Any, Dict, List, Optional

from openmm_ani.argtypes import non_negative_float, positive_float, positive_int


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ligand", help="PDB or XYZ file of the ligand (its first frame starts the MD)")
    parser.add_argument("--model", default="ani1x", help="starting ensemble: ani1x, ani1ccx or a model file")
    parser.add_argument("--rounds", type=positive_int, default=3, help="maximum rounds (more extend a finished run)")
    parser.add_argument("--output", required=True, help="output directory; a rerun with the same settings resumes")
    parser.add_argument("--samples", type=positive_int, default=48, help="MD frames sampled per round")
    parser.add_argument("--temperatures", type=positive_float, nargs="+", default=[300.0, 600.0], help="MD K")
    parser.add_argument("--budget", type=positive_int, default=16, help="frames labelled per round at most")
    parser.add_argument("--threshold", type=float, default=0.23,
                        help="kcal/mol/sqrt(atoms): select above it, stop when no sample exceeds it; negative: none")
    parser.add_argument("--rmsd", type=non_negative_float, default=0.1, help="de-duplication RMSD threshold, Å")
    parser.add_argument("--replay", nargs="+", default=None, help="built-in replay molecules (default: "
                        "methane ammonia water formaldehyde methanol)")
    parser.add_argument("--replay-conformations", type=positive_int, default=4, help="replay conformations per molecule")
    parser.add_argument("--epochs", type=positive_int, default=100, help="maximum fine-tuning epochs per member")
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="fine-tuning learning rate")
    parser.add_argument("--force-coefficient", type=non_negative_float, default=0.1, help="force loss weight")
    parser.add_argument("--seed", type=int, default=0, help="seed of MD, splits and shuffles")
    parser.add_argument("--device", default=None, help="training device (default: CUDA when present)")


def _fmt(metrics: Dict[str, Any], part: str, key: str) -> str:
    before, after = metrics.get(f"{part}_before"), metrics.get(f"{part}_after")
    if not before or not after:
        return "-"
    return f"{before[key]:.2f}->{after[key]:.2f}"


def table(results: List[Dict[str, Any]]) -> str:
    """The per-round table (kcal/mol; forces kcal/mol/Å; disagreement kcal/mol/sqrt(atoms))."""
    head = ("round", "selected", "labels ok/failed", "held-out E MAE", "held-out F RMSE", "disagr. median/p95",
            "replay E MAE")
    rows = [head]
    for m in results:
        d = m["disagreement_kcal_per_mol_per_sqrt_atom"]
        rows.append((str(m["round"]), str(m["selected"]), f"{m['labels_ok']}/{m['labels_failed']}",
                     _fmt(m, "held_out", "energy_mae_kcal_per_mol"),
                     _fmt(m, "held_out", "force_rmse_kcal_per_mol_per_angstrom"),
                     f"{d['median']:.3f}/{d['p95']:.3f}", _fmt(m, "replay_held_out", "energy_mae_kcal_per_mol")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def run_refine(args: argparse.Namespace) -> int:
    """Run ``train refine``; prints the per-round table and the final model's path.

    Errors (missing file, bad or changed setting) propagate as ``FileNotFoundError``/``ValueError``
    for the ``openmm-ani`` entry point's one-line error convention.
    """
    from .loop import RefineSettings, final_model, refine

    if not os.path.isfile(args.ligand):
        raise FileNotFoundError(f"ligand file not found: {args.ligand}")
    extra: Dict[str, Any] = {}
    if args.replay is not None:
        extra["replay_molecules"] = tuple(args.replay)
    threshold: Optional[float] = None if args.threshold < 0 else args.threshold
    settings = RefineSettings(rounds=args.rounds, samples_per_round=args.samples, temperatures=tuple(args.temperatures),
                              budget=args.budget, threshold_kcal=threshold, rmsd_threshold_angstrom=args.rmsd,
                              replay_conformations=args.replay_conformations, epochs=args.epochs, lr=args.lr,
                              force_coefficient=args.force_coefficient, seed=args.seed, device=args.device, **extra)
    results = refine(args.ligand, args.model, args.output, settings)
    if results:
        sys.stdout.write(table(results) + "\n")
    sys.stdout.write(f"model: {final_model(results, args.model)}\n")
    stopped = len(results) < args.rounds and not (results and results[-1].get("converged"))
    return 130 if stopped else 0  # 130: stopped by Ctrl-C (rerun to resume), as the other training commands


def register(train_subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``refine`` subcommand to ``openmm-ani train``."""
    parser = train_subparsers.add_parser(
        "refine", help="refine an ensemble for one ligand by active learning (MD, selection, PySCF labels, fine-tuning)",
        description="Rounds of: MD of the ligand with the current ensemble, selection of the most disputed frames, "
        "ωB97X/6-31G* labels with PySCF, fine-tuning of every member with a replay set, export. Writes "
        "<output>/round-<k>/ (samples, selected frames, labels, metrics.json, model.npz).")
    _add_arguments(parser)
    parser.set_defaults(func=run_refine)
    return parser
