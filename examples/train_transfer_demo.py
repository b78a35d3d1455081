"""End-to-end demonstration: DFT pretraining, CCSD(T) transfer learning, and the baselines.

On the data set shipped with openmm-ani (``training/resources/chno_labels.h5``: small CHNO
molecules with ωB97X/6-31G* energies and forces and CCSD(T) energies), this script

1. holds out a test set of CCSD(T)-labelled conformations (``--holdout conformation``: a
   random 20 % of the conformations; ``molecule``: whole molecules), and removes those
   conformations from every training set, the DFT one included;
2. pretrains a K-member ensemble on the DFT energies and forces (``small`` architecture);
3. transfers it to the CCSD(T) training labels (self energies refitted, layers 0 and 2 frozen,
   energies only, learning rate 1e-4);
4. trains the baselines on the same CCSD(T) training labels: (a) the same architecture from
   random weights ("CC only"), (b) Δ-learning (a model of CC − DFT-ensemble residuals),
   (c) transfer starting from the published ANI-1x (first K members);
5. evaluates everything, plus (d) the published ANI-1ccx and ANI-1x as reference lines, on
   the held-out CCSD(T) conformations and writes a table (kcal/mol), a JSON file and
   learning-curve plots.

Published models were fitted to other levels of theory (ANI-1ccx: CCSD(T)*/CBS), so for the
reference lines a per-element energy offset is refitted by least squares on the CCSD(T)
training set (what step 1 of transfer learning does) before their errors are measured;
"conformational" errors subtract each molecule's mean error over its test conformations and
need no refit. Run ``python examples/train_transfer_demo.py --help`` for the options;
``--quick`` (2 members, 2 epochs per stage) runs every step in well under a minute.

Writes, in ``--out-dir``: ``pretrained_dft.npz``, ``transfer_dft_to_cc.npz``,
``delta_residual.npz``, ``transfer_ani1x_to_cc.npz`` (model files ``ANIPotential`` runs),
``results.json`` (the table's rows, the held-out conformations as ``group/index`` keys, learning
curves, timings) and ``learning_curves.png``.
"""

import argparse
import json
import logging
import os
import time
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

import openmm_ani
from openmm_ani.model import ANIModel
from openmm_ani.model.species import atomic_number_of
from openmm_ani.formats import build_model
from openmm_ani.training.build import build_random_model
from openmm_ani.training.config import small_config
from openmm_ani.training.data import Dataset, read_h5, shipped_dataset_path
from openmm_ani.training.delta import DeltaModel, residual_dataset
from openmm_ani.training.ensemble import train_ensemble
from openmm_ani.training.evaluate import error_metrics, predict
from openmm_ani.training.export import export_models
from openmm_ani.training.optim import OptimizerConfig
from openmm_ani.training.selfenergy import fit_self_energies
from openmm_ani.training.trainer import EpochRecord, TrainConfig
from openmm_ani.training.transfer import refit_self_energies, transfer_member, transfer_train_config
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL

logger = logging.getLogger("train_transfer_demo")


def pick_cc_key(path: str, requested: str) -> str:
    """``ccsd(t)_cbs.energy`` when it labels at least 200 conformations (or as requested), else ``ccsd(t)_dz.energy``."""
    if requested != "auto":
        return requested
    try:
        if len(read_h5(path, "ccsd(t)_cbs.energy")) >= 200:
            return "ccsd(t)_cbs.energy"
    except ValueError:
        pass
    return "ccsd(t)_dz.energy"


def keys_of(data: Dataset) -> np.ndarray:
    """``group/index`` identifiers of conformations (to match them across levels of theory)."""
    if data.group is None or data.index is None:
        raise ValueError("the demonstration needs data read from a file (group and index of each conformation)")
    return np.array([f"{g}/{i}" for g, i in zip(data.group, data.index)])


def holdout(cc: Dataset, mode: str, fraction: float, seed: int) -> Tuple[Dataset, Dataset]:
    """Training and held-out test CCSD(T) data, by conformation or by molecule."""
    if mode == "conformation":
        test, train = cc.split([fraction, 1 - fraction], seed=seed)
        return train, test
    groups = np.unique(cc.group)
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    chosen, count = [], 0
    for g in groups:
        if count >= fraction * len(cc):
            break
        chosen.append(g)
        count += int((cc.group == g).sum())
    mask = np.isin(cc.group, chosen)
    return cc.subset(np.nonzero(~mask)[0]), cc.subset(np.nonzero(mask)[0])


def offset_fit(model_energies: np.ndarray, data: Dataset, elements: Sequence[str]) -> np.ndarray:
    """Per-element offsets (Ha) minimising the squared error of ``model + counts @ offsets`` on ``data``."""
    numbers = [atomic_number_of(e) for e in elements]
    counts = np.stack([(data.atomic_numbers == z).sum(axis=1) for z in numbers], axis=1).astype(float)
    return np.linalg.lstsq(counts, data.energies - model_energies, rcond=None)[0]


def conformational_rmse(predicted: np.ndarray, data: Dataset) -> float:
    """RMSE (kcal/mol) after removing each molecule's mean error: errors of relative conformer energies."""
    error = predicted - data.energies
    for g in np.unique(data.group):
        mask = data.group == g
        error[mask] -= error[mask].mean()
    return float(np.sqrt(np.mean(error**2)) * HARTREE_TO_KCAL_PER_MOL)


def curve(histories: Sequence[Sequence[EpochRecord]]) -> List[float]:
    """Validation RMSE (kcal/mol) per epoch, averaged over members (up to the shortest run)."""
    length = min(len(h) for h in histories)
    return [float(np.mean([h[e].valid_rmse for h in histories]) * HARTREE_TO_KCAL_PER_MOL) for e in range(length)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=shipped_dataset_path(), help="release-layout HDF5 (default: shipped set)")
    parser.add_argument("--cc-key", default="auto", help="CCSD(T) label (auto: cbs if >=200 labels, else dz)")
    parser.add_argument("--holdout", choices=["conformation", "molecule"], default="conformation")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--cc-fraction", type=float, default=1.0,
                        help="use only this fraction of the CCSD(T) training labels (scarce high-level data)")
    parser.add_argument("--members", type=int, default=4, help="ensemble size K")
    parser.add_argument("--pretrain-epochs", type=int, default=200)
    parser.add_argument("--cc-epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="train_transfer_demo_output")
    parser.add_argument("--plot", default=None, help="learning-curve PNG (default: <out-dir>/learning_curves.png)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="2 members, 2 epochs per stage: every step in well under a minute (not a result)")
    args = parser.parse_args()
    if args.quick:
        args.members, args.pretrain_epochs, args.cc_epochs = 2, 2, 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    torch.manual_seed(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    start = time.perf_counter()
    timings: Dict[str, float] = {}
    elements = ["H", "C", "N", "O"]
    K = args.members

    cc_key = pick_cc_key(args.data, args.cc_key)
    dft = read_h5(args.data, "wb97x_dz.energy", "wb97x_dz.forces", elements=elements)
    cc = read_h5(args.data, cc_key, elements=elements)
    cc_train, cc_test = holdout(cc, args.holdout, args.test_fraction, args.seed)
    if args.cc_fraction < 1.0:
        cc_train = cc_train.split([args.cc_fraction, 1 - args.cc_fraction], seed=args.seed + 1)[0]
    test_keys = set(keys_of(cc_test))
    if args.holdout == "molecule":
        dft_train = dft.subset(np.nonzero(~np.isin(dft.group, np.unique(cc_test.group)))[0])
    else:
        dft_train = dft.subset(np.nonzero([k not in test_keys for k in keys_of(dft)])[0])
    logger.info("%s: %d DFT training conformations; %s: %d training, %d held out (by %s)", args.data, len(dft_train),
                cc_key, len(cc_train), len(cc_test), args.holdout)

    progress = not args.no_progress
    config = small_config(elements)

    # 1. pretraining on DFT energies + forces
    t = time.perf_counter()
    sae_dft = fit_self_energies(dft_train, elements)
    pre_config = TrainConfig(max_epochs=args.pretrain_epochs, batch_size=args.batch_size, force_coefficient=0.1,
                             seed=args.seed, optimizer=OptimizerConfig(lr=1e-3, bias_lr=1e-3), progress=progress)
    pretrained, pre_hist = train_ensemble(
        lambda k: build_random_model(config, seed=100 + k, self_energies=[sae_dft[e] for e in elements]),
        dft_train, K, pre_config, split_seed=args.seed)
    pretrained_path = os.path.join(args.out_dir, "pretrained_dft.npz")
    pre_spec = export_models(pretrained, pretrained_path, "pretrained-dft")
    timings["pretrain"] = time.perf_counter() - t

    # 2. transfer to CCSD(T): refit self energies, freeze layers 0 and 2, lr 1e-4, energies only
    t = time.perf_counter()
    cc_sae = refit_self_energies(elements, cc_train)
    cc_config = transfer_train_config(max_epochs=args.cc_epochs, batch_size=args.batch_size, lr=1e-4,
                                      seed=args.seed, progress=progress)
    transferred, tr_hist = train_ensemble(lambda k: transfer_member(pre_spec, k, cc_train, (0, 2), cc_sae), cc_train, K,
                                          cc_config, split_seed=args.seed)
    export_models(transferred, os.path.join(args.out_dir, "transfer_dft_to_cc.npz"), "transfer-dft-cc")
    timings["transfer"] = time.perf_counter() - t

    # (a) CC only: same architecture from random weights, same CC data
    t = time.perf_counter()
    scratch_config = TrainConfig(max_epochs=args.pretrain_epochs, batch_size=args.batch_size, seed=args.seed,
                                 optimizer=OptimizerConfig(lr=1e-3, bias_lr=1e-3), progress=progress)
    cc_only, cc_hist = train_ensemble(lambda k: build_random_model(config, seed=200 + k, self_energies=cc_sae),
                                      cc_train, K, scratch_config, split_seed=args.seed)
    timings["cc_only"] = time.perf_counter() - t

    # (b) Δ-learning: CC - (DFT ensemble) residuals
    t = time.perf_counter()
    base = build_model(pre_spec)
    residual = residual_dataset(base, cc_train)
    sae_delta = fit_self_energies(residual, elements)
    delta_models, delta_hist = train_ensemble(
        lambda k: build_random_model(config, seed=300 + k, self_energies=[sae_delta[e] for e in elements]),
        residual, K, scratch_config, split_seed=args.seed)
    delta_spec_path = os.path.join(args.out_dir, "delta_residual.npz")
    delta_spec = export_models(delta_models, delta_spec_path, "delta-residual")
    timings["delta"] = time.perf_counter() - t

    # (c) transfer from the published ANI-1x (first K members)
    t = time.perf_counter()
    ani1x_spec = openmm_ani.models.load_model_spec("ani1x")
    from_ani1x, x_hist = train_ensemble(lambda k: transfer_member(ani1x_spec, k, cc_train, (0, 2), cc_sae), cc_train,
                                        K, cc_config, split_seed=args.seed)
    export_models(from_ani1x, os.path.join(args.out_dir, "transfer_ani1x_to_cc.npz"), "transfer-ani1x-cc")
    timings["transfer_ani1x"] = time.perf_counter() - t

    # evaluation on the held-out CCSD(T) conformations
    def stacked(models: Sequence[ANIModel]) -> ANIModel:
        from openmm_ani.formats import spec_from_model
        from openmm_ani.training.export import stack_specs

        return build_model(stack_specs([spec_from_model(m) for m in models], "eval"))

    rows: List[Dict[str, Any]] = []

    def add(name: str, model: torch.nn.Module, refit: bool = False) -> None:
        predicted, _ = predict(model, cc_test)
        note = ""
        if refit:
            train_pred, _ = predict(model, cc_train)
            offsets = offset_fit(train_pred, cc_train, elements)
            numbers = [atomic_number_of(e) for e in elements]
            counts = np.stack([(cc_test.atomic_numbers == z).sum(axis=1) for z in numbers], axis=1)
            predicted = predicted + counts @ offsets
            note = "per-element offsets refitted on the CC training set"
        metrics = error_metrics(predicted, cc_test.energies)
        rows.append({"model": name, "rmse": metrics["rmse"], "mae": metrics["mae"],
                     "conformational_rmse": conformational_rmse(predicted, cc_test), "note": note})

    add("DFT-pretrained ensemble (no CC data)", build_model(pre_spec), refit=True)
    add("transfer DFT -> CC (freeze 0,2)", stacked(transferred))
    add("(a) CC only, same architecture", stacked(cc_only))
    add("(b) delta-learning: DFT ensemble + CC residual model", DeltaModel(build_model(pre_spec), build_model(delta_spec)))
    add("(c) transfer published ANI-1x -> CC (freeze 0,2)", stacked(from_ani1x))
    add("(d) published ANI-1ccx (8 members)", openmm_ani.models.load("ani1ccx"), refit=True)
    add("    published ANI-1x (8 members)", openmm_ani.models.load("ani1x"), refit=True)

    total = time.perf_counter() - start
    summary = {
        "data": os.path.basename(args.data), "cc_key": cc_key, "holdout": args.holdout,
        "dft_train": len(dft_train), "cc_train": len(cc_train), "cc_test": len(cc_test),
        "test_molecules": int(len(np.unique(cc_test.group))),
        "cc_test_keys": [str(k) for k in keys_of(cc_test)], "members": K, "architecture": "small (AEV 192, 64-48-32)",
        "pretrain_epochs": args.pretrain_epochs, "cc_epochs": args.cc_epochs, "rows": rows, "timings_s": timings,
        "total_s": total, "torch_threads": torch.get_num_threads(),
        "curves_kcal": {"pretrain (DFT)": curve(pre_hist), "transfer DFT->CC": curve(tr_hist),
                        "(a) CC only": curve(cc_hist), "(b) delta residual": curve(delta_hist),
                        "(c) transfer ANI-1x->CC": curve(x_hist)},
    }
    with open(os.path.join(args.out_dir, "results.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    print(f"\nheld-out {cc_key} ({len(cc_test)} conformations of {summary['test_molecules']} molecules, "
          f"held out by {args.holdout}); training: {len(dft_train)} DFT, {len(cc_train)} CC; K = {K}; {total:.0f} s")
    print("| model | RMSE (kcal/mol) | MAE (kcal/mol) | conformational RMSE (kcal/mol) |")
    print("|---|---:|---:|---:|")
    for row in rows:
        mark = " *" if row["note"] else ""
        print(f"| {row['model']}{mark} | {row['rmse']:.2f} | {row['mae']:.2f} | {row['conformational_rmse']:.2f} |")
    print("* per-element energy offsets refitted on the CCSD(T) training set (different level of theory)")
    plot(summary, args.plot or os.path.join(args.out_dir, "learning_curves.png"))


def plot(summary: Dict[str, Any], path: str) -> None:
    """Learning curves (validation RMSE per epoch) of every training stage, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    curves = summary["curves_kcal"]
    axes[0].semilogy(range(1, len(curves["pretrain (DFT)"]) + 1), curves["pretrain (DFT)"], label="pretrain (DFT)")
    axes[0].set_title("DFT pretraining (wB97X/6-31G*), energies + forces")
    for name, values in curves.items():
        if name != "pretrain (DFT)":
            axes[1].semilogy(range(1, len(values) + 1), values, label=name)
    axes[1].set_title(f"CCSD(T) stage ({summary['cc_key']})")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation energy RMSE (kcal/mol)")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    logger.info("wrote %s", path)


if __name__ == "__main__":
    main()
