"""``openmm-ani train ...``: pretrain, transfer, evaluate and select from the command line.

:func:`register` adds the ``train`` command to an ``argparse`` sub-parser collection; each
sub-command sets ``func`` (``func(args) -> int``, the exit status). Heavy imports (h5py,
the trainer) happen only when a sub-command runs.

``pretrain`` and ``transfer`` resume from their work directory only when the settings that
shaped its members are the same (:mod:`.resume`); ``--overwrite`` starts afresh. Ctrl-C leaves
the last completed epoch's checkpoint (written atomically), from which a rerun continues.
"""

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence

from openmm_ani.argtypes import non_negative_float, non_negative_int, output_file, positive_float, positive_int
from openmm_ani.files import write_text

logger = logging.getLogger(__name__)


def emit(text: str) -> None:
    """Write one line of command output to standard output."""
    sys.stdout.write(text + "\n")


def _shipped_data() -> str:
    from .data import shipped_dataset_path

    return shipped_dataset_path()


def _layers(text: str) -> List[int]:
    try:
        layers = [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices such as 0,2, got {text!r}") from error
    if any(k < 0 for k in layers):
        raise argparse.ArgumentTypeError(f"layer indices must be >= 0, got {text!r}")
    return layers


def _add_training_options(parser: argparse.ArgumentParser, epochs: int, lr: float, batch_size: int) -> None:
    parser.add_argument("--data", default=None, help="HDF5 training data (default: the shipped CHNO set)")
    parser.add_argument("--output", required=True, type=output_file, help="output model file (.npz, openmm-ani format)")
    parser.add_argument("--work-dir", default=None, help="checkpoints, member files and learning curves "
                        "(default: <output>.work); an interrupted run with the same settings resumes from here")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard an earlier run in the work directory instead of continuing it")
    parser.add_argument("--epochs", type=positive_int, default=epochs,
                        help="maximum epochs per member (a larger value extends a finished run)")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help="conformations per step")
    parser.add_argument("--lr", type=positive_float, default=lr, help="AdamW learning rate of the weights")
    parser.add_argument("--bias-lr", type=positive_float, default=None, help="SGD learning rate of the biases (default: --lr)")
    parser.add_argument("--patience", type=non_negative_int, default=10, help="ReduceLROnPlateau patience (epochs)")
    parser.add_argument("--early-stopping", type=positive_int, default=50,
                        help="stop after this many epochs without improvement")
    parser.add_argument("--member-index", type=non_negative_int, action="append", default=None,
                        help="train only this member (repeatable): K independent jobs, then --combine")
    parser.add_argument("--combine", action="store_true", help="only stack finished member files into --output")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, splits and shuffles")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--distributed", action="store_true", help="data-parallel run launched by torchrun")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` command and its sub-commands to ``subparsers`` (from ``add_subparsers``)."""
    train = subparsers.add_parser("train", help="train ANI models: pretrain, transfer, evaluate, select")
    commands = train.add_subparsers(dest="train_command", metavar="{pretrain,transfer,evaluate,select,...}")
    commands.required = True

    p = commands.add_parser("pretrain", help="train an ensemble from random weights (e.g. on DFT labels)")
    _add_training_options(p, epochs=200, lr=1e-3, batch_size=64)
    p.add_argument("--energy-key", default="wb97x_dz.energy", help="energy label (Ha)")
    p.add_argument("--force-key", default=None, help="force label (Ha/Å), e.g. wb97x_dz.forces")
    p.add_argument("--force-coefficient", type=non_negative_float, default=0.1, help="weight of the force loss")
    p.add_argument("--config", default="ani1x", help="architecture: ani1x, small, tiny or a JSON file")
    p.add_argument("--members", type=positive_int, default=8, help="ensemble size K (K-fold splits)")
    p.set_defaults(func=run_pretrain)

    t = commands.add_parser("transfer", help="transfer-learn a pretrained ensemble to new labels (ANI-1ccx recipe)")
    _add_training_options(t, epochs=200, lr=1e-4, batch_size=64)
    t.add_argument("--source", default="ani1x", help="pretrained ensemble: registered name, model file or NeuroChem folder")
    t.add_argument("--energy-key", default="ccsd(t)_cbs.energy", help="energy label of the new level (Ha)")
    t.add_argument("--freeze", type=_layers, default=[0, 2], help="frozen layers, 0 = input (default 0,2 as ANI-1ccx)")
    t.add_argument("--layer-lr-factor", type=float, default=None,
                   help="discriminative fine-tuning: layer k of L learns at lr * factor**(L-1-k)")
    t.add_argument("--members", type=positive_int, default=None, help="use the first K source members (default all)")
    t.set_defaults(func=run_transfer)

    e = commands.add_parser("evaluate", help="energy RMSE/MAE (kcal/mol) of a model on labelled data")
    e.add_argument("--model", required=True, help="model file or registered name")
    e.add_argument("--data", default=None, help="HDF5 data (default: the shipped CHNO set)")
    e.add_argument("--energy-key", default="ccsd(t)_cbs.energy", help="energy label (Ha)")
    e.add_argument("--json", default=None, type=output_file, help="also write the metrics to this JSON file")
    e.set_defaults(func=run_evaluate)

    s = commands.add_parser("select", help="active learning: conformations with the largest ensemble disagreement")
    s.add_argument("--model", required=True, help="ensemble model file or registered name")
    s.add_argument("--data", required=True, help="HDF5 candidates (release layout; labels not needed)")
    s.add_argument("--energy-key", default=None, help="read through this label (default: unlabelled)")
    s.add_argument("--number", type=positive_int, default=None, help="select at most this many")
    s.add_argument("--threshold", type=float, default=0.23, help="kcal/mol per sqrt(atoms); negative: none")
    s.add_argument("--output", default=None, type=output_file, help="JSON file listing the selected conformations")
    s.set_defaults(func=run_select)

    from . import labels
    from .refine import cli as refine_cli

    labels.register(commands)
    refine_cli.register(commands)
    return train


def _train_config(args: argparse.Namespace, force_coefficient: float, layer_lr_factor: Optional[float] = None) -> Any:
    from .optim import OptimizerConfig
    from .trainer import TrainConfig

    optimizer = OptimizerConfig(lr=args.lr, bias_lr=args.bias_lr if args.bias_lr is not None else args.lr,
                                layer_lr_factor=layer_lr_factor, plateau_patience=args.patience,
                                early_stopping_patience=args.early_stopping)
    return TrainConfig(max_epochs=args.epochs, batch_size=args.batch_size, force_coefficient=force_coefficient,
                       seed=args.seed, device=args.device, dtype=args.dtype, optimizer=optimizer,
                       progress=not args.no_progress)


def _finish(args: argparse.Namespace, num_members: int, models: Sequence[Any], histories: Sequence[Any],
            name: str, provenance: Dict[str, Any], distributed: Any) -> int:
    from .ensemble import combine_member_files, member_model_file
    from .export import export_models
    from openmm_ani.formats import save

    work_dir = args.work_dir
    if distributed is not None and not distributed.is_main:
        return 0
    for k, history in zip(args.member_index or range(num_members), histories):
        write_text(os.path.join(work_dir, f"history_{k}.json"), json.dumps([asdict(r) for r in history], indent=1))
    if args.member_index and not args.combine:
        emit(f"trained members {args.member_index}; member files in {work_dir}; run again with --combine")
        return 0
    if args.combine:
        spec = combine_member_files([member_model_file(work_dir, k) for k in range(num_members)], name)
        spec.provenance.update(provenance)
        save(spec, args.output)
    else:
        export_models(models, args.output, name, provenance)
    emit(f"wrote {num_members}-member ensemble {args.output}")
    return 0


def _setup(args: argparse.Namespace) -> Any:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.work_dir is None:
        args.work_dir = os.fspath(args.output) + ".work"
    if os.path.exists(args.work_dir) and not os.path.isdir(args.work_dir):
        raise ValueError(f"work directory {args.work_dir} is a file")
    os.makedirs(args.work_dir, exist_ok=True)
    if args.data is None:
        args.data = _shipped_data()
    elif not os.path.isfile(args.data):
        raise FileNotFoundError(f"training data file not found: {args.data}")
    if args.distributed:
        from .distributed import init_from_env

        return init_from_env()
    return None


def _run_settings(args: argparse.Namespace, **specific: Any) -> Dict[str, Any]:
    """What shapes the members of a run (the work directory's record; see :mod:`.resume`)."""
    from openmm_ani.files import sha256_of

    return {
        "command": args.train_command, "data": "sha256:" + sha256_of(args.data), "energy_key": args.energy_key,
        "seed": args.seed, "batch_size": args.batch_size, "lr": args.lr,
        "bias_lr": args.bias_lr if args.bias_lr is not None else args.lr, "patience": args.patience,
        "early_stopping": args.early_stopping, "dtype": args.dtype, **specific,
    }


def _prepare(args: argparse.Namespace, settings: Dict[str, Any], distributed: Any) -> None:
    from .resume import prepare_work_dir

    prepare_work_dir(args.work_dir, settings, args.overwrite, distributed is None or distributed.is_main)


def run_pretrain(args: argparse.Namespace) -> int:
    """``train pretrain``: fit self energies, then train K members from random weights on K folds."""
    from .build import build_random_model
    from .config import get_config
    from .data import read_h5
    from .ensemble import train_ensemble
    from .selfenergy import fit_self_energies
    from .trainer import DTYPES

    distributed = _setup(args)
    config = get_config(args.config)
    force_key = args.force_key
    _prepare(args, _run_settings(args, force_key=force_key, force_coefficient=args.force_coefficient if force_key else 0.0,
                                 config=config.to_dict(), members=args.members), distributed)
    dataset = read_h5(args.data, args.energy_key, force_key, elements=config.elements)
    fitted = fit_self_energies(dataset, config.elements)
    energies = [fitted[e] for e in config.elements]
    train_config = _train_config(args, args.force_coefficient if force_key else 0.0)
    members = None if args.combine else args.member_index
    models: List[Any] = []
    histories: List[Any] = []
    if not args.combine:
        models, histories = train_ensemble(
            # built in the training dtype: a float32 module converted to float64 would keep AEV constants
            # rounded to float32 (0.9 -> 0.899999976), unlike the exported model and the kernel's AEVs
            lambda k: build_random_model(config, seed=args.seed * 1000 + k, self_energies=energies,
                                         dtype=DTYPES[train_config.dtype]), dataset,
            args.members, train_config, split_seed=args.seed, members=members, work_dir=args.work_dir,
            distributed=distributed)
    provenance = {"stage": "pretrain", "data": os.path.basename(args.data), "energy_key": args.energy_key,
                  "force_key": force_key, "config": config.to_dict(), "train": train_config.to_dict()}
    return _finish(args, args.members, models, histories, "pretrained", provenance, distributed)


def run_transfer(args: argparse.Namespace) -> int:
    """``train transfer``: refit self energies, freeze layers, retrain each source member on the new labels."""
    import torch

    from .data import read_h5
    from .ensemble import train_ensemble
    from .transfer import pretrained_spec, refit_self_energies, transfer_member

    from openmm_ani.formats.registry import model_fingerprint

    distributed = _setup(args)
    spec = pretrained_spec(args.source)
    num_members = spec.num_models if args.members is None else args.members
    if not 1 <= num_members <= spec.num_models:
        raise ValueError(f"--members must be in 1..{spec.num_models} for {args.source}, got {num_members}")
    _prepare(args, _run_settings(args, source=model_fingerprint(args.source), freeze=list(args.freeze),
                                 layer_lr_factor=args.layer_lr_factor, members=num_members), distributed)
    dataset = read_h5(args.data, args.energy_key, elements=spec.elements)
    energies = refit_self_energies(spec.elements, dataset)
    train_config = _train_config(args, 0.0, args.layer_lr_factor)
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    models: List[Any] = []
    histories: List[Any] = []
    if not args.combine:
        models, histories = train_ensemble(
            lambda k: transfer_member(spec, k, dataset, args.freeze, energies, dtype), dataset, num_members,
            train_config, split_seed=args.seed, members=None if args.combine else args.member_index,
            work_dir=args.work_dir, distributed=distributed)
    provenance = {"stage": "transfer", "source": os.fspath(args.source), "data": os.path.basename(args.data),
                  "energy_key": args.energy_key, "frozen_layers": list(args.freeze),
                  "layer_lr_factor": args.layer_lr_factor, "train": train_config.to_dict()}
    return _finish(args, num_members, models, histories, "transferred", provenance, distributed)


def run_evaluate(args: argparse.Namespace) -> int:
    """``train evaluate``: RMSE and MAE of the ensemble mean energy, kcal/mol."""
    from openmm_ani.models import load

    from .data import read_h5
    from .evaluate import error_metrics, predict

    model = load(args.model)
    data = args.data or _shipped_data()
    dataset = read_h5(data, args.energy_key, elements=model.elements)
    mean, _ = predict(model, dataset)
    metrics = error_metrics(mean, dataset.energies)
    emit(f"{args.model} on {args.energy_key} ({metrics['count']} conformations): "
         f"RMSE {metrics['rmse']:.3f} kcal/mol, MAE {metrics['mae']:.3f} kcal/mol")
    if args.json:
        write_text(args.json, json.dumps({"model": os.fspath(args.model), "data": data, "energy_key": args.energy_key,
                                          **metrics}, indent=1))
    return 0


def run_select(args: argparse.Namespace) -> int:
    """``train select``: rank candidates by ensemble disagreement and list the ones to label."""
    from openmm_ani.models import load

    from .select import read_candidates, select_conformations

    model = load(args.model)
    candidates = read_candidates(args.data, args.energy_key)
    threshold = None if args.threshold is not None and args.threshold < 0 else args.threshold
    indices, scores = select_conformations(model, candidates, args.number, threshold)
    rows = [{"group": str(candidates.group[i]) if candidates.group is not None else "",
             "index": int(candidates.index[i]) if candidates.index is not None else int(i),
             "disagreement_kcal_per_mol_sqrt_atom": float(s)} for i, s in zip(indices, scores)]
    emit(f"selected {len(rows)} of {len(candidates)} conformations (threshold {threshold} kcal/mol/sqrt(atoms))")
    for row in rows[:20]:
        emit(f"  {row['group']}[{row['index']}]: {row['disagreement_kcal_per_mol_sqrt_atom']:.3f}")
    if args.output:
        write_text(args.output, json.dumps({"model": os.fspath(args.model), "data": args.data, "selected": rows},
                                           indent=1))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Stand-alone entry point (``python -m openmm_ani.training.cli train ...``)."""
    parser = argparse.ArgumentParser(prog="openmm-ani")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
