"""Training throughput of openmm-ani's trainer against TorchANI 2.9.0's training step.

Both train one ANI-1x-architecture network (AEV length 384, H 160-128-96, ...) in float32
on the *same* padded batches of CHNO conformations, with the same loss (MSE/sqrt(atoms),
plus 0.1 x the force term for "energy+force") and the same optimisers (AdamW on weights
with per-layer decay 0/1e-5/1e-6/0, SGD on biases). A step is zero_grad + forward +
loss + backward + optimiser steps. Throughput is conformations per second, best of the
alternating rounds (each engine runs all batches once per round), with one torch thread and
with torch's default thread count, on CPU and (when present) CUDA.

openmm-ani's energy-only steps take their AEVs from the C++ kernel when it is built (constants
with respect to the weights); steps with the force term use autograd for the second
derivatives. TorchANI 2.9 (``benchmarks/setup_torchani29.py``: member 0 of the published ANI-1x
folder) is a benchmark-only peer, never a dependency.

Usage::

    python benchmarks/bench_training.py [--conformations 1024] [--batch-size 128] [--repeats 3] [--json out.json]
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List

import numpy as np
import torch

from openmm_ani.model.species import atomic_number_of
from openmm_ani.training.build import build_random_model
from openmm_ani.training.config import ani1x_config
from openmm_ani.training.data import Batch, Dataset
from openmm_ani.training.optim import DEFAULT_WEIGHT_DECAY, OptimizerConfig
from openmm_ani.training.trainer import TrainConfig, Trainer


def conformations(count: int, seed: int = 0) -> Dataset:
    """Displaced conformers of the label generator's built-in CHNO molecules (labels are placeholders)."""
    from openmm_ani.training.sampling import MOLECULES

    rng = np.random.default_rng(seed)
    mols = [(np.array([atomic_number_of(a[0]) for a in atoms]), np.array([a[1:] for a in atoms], dtype=float))
            for _, atoms in MOLECULES.values()]
    width = max(len(z) for z, _ in mols)
    zs, xs, es, fs = [], [], [], []
    for i in range(count):
        z, x0 = mols[i % len(mols)]
        pad = width - len(z)
        zs.append(np.concatenate([z, np.zeros(pad, dtype=np.int64)]))
        xs.append(np.concatenate([x0 + rng.normal(0, 0.05, x0.shape), np.zeros((pad, 3))]))
        es.append(-40.0 * len(z) ** 0.5 + rng.normal(0, 0.01))
        fs.append(rng.normal(0, 0.01, (width, 3)) * (np.arange(width) < len(z))[:, None])
    return Dataset(np.array(zs), np.array(xs), np.array(es), np.array(fs))


def ours(device: str, force: float) -> Callable[[Batch], None]:
    model = build_random_model(ani1x_config(), seed=0)
    data = conformations(8)
    config = TrainConfig(batch_size=8, force_coefficient=force, device=device, dtype="float32", progress=False,
                         optimizer=OptimizerConfig(lr=1e-4, bias_lr=1e-4))
    trainer = Trainer(model, data, data, config)
    return lambda batch: trainer.step(batch)


def torchani_step(device: str, force: float) -> Callable[[Batch], None]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import setup_torchani29

    torchani29 = setup_torchani29.load()
    info = os.path.join(os.environ["TORCHANI_DATA_DIR"], "Neurochem", "ani-1x_8x.info")
    model = torchani29.neurochem.load_model_from_info_file(info, model_index=0).to(device)
    weights, biases = [], []
    for network in model.potentials["nnp"].neural_networks.atomics.values():
        linears = list(network.layers) + [network.final_layer]
        for k, linear in enumerate(linears):
            weights.append({"params": [linear.weight], "weight_decay": DEFAULT_WEIGHT_DECAY[k]})
            biases.append({"params": [linear.bias]})
    adamw = torch.optim.AdamW(weights, lr=1e-4)
    sgd = torch.optim.SGD(biases, lr=1e-4)

    def step(batch: Batch) -> None:
        species = torch.where(batch.atomic_numbers > 0, batch.atomic_numbers, -1)
        coordinates = batch.coordinates.detach().requires_grad_(force > 0)
        adamw.zero_grad(set_to_none=True)
        sgd.zero_grad(set_to_none=True)
        energies = model((species, coordinates)).energies
        n = batch.num_atoms.to(energies.dtype)
        loss = ((energies - batch.energies.to(energies.dtype)) ** 2 / n.sqrt()).mean()
        if force > 0:
            predicted = -torch.autograd.grad(energies.sum(), coordinates, create_graph=True)[0]
            loss = loss + force * (((predicted - batch.forces) ** 2).sum(dim=(1, 2)) / n).mean()
        loss.backward()
        adamw.step()
        sgd.step()

    return step


def one_round(step: Callable[[Batch], None], batches: List[Batch], device: str) -> float:
    """Conformations/s of one pass over all batches."""
    total = sum(int(b.energies.shape[0]) for b in batches)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return total / (time.perf_counter() - start)


def throughputs(steps: Dict[str, Callable[[Batch], None]], batches: List[Batch], repeats: int,
                device: str) -> Dict[str, float]:
    """Best-of-``repeats`` conformations/s of each engine, the engines alternating (after two warm-up steps each)."""
    for step in steps.values():
        for batch in batches[:2]:
            step(batch)
    best = {name: 0.0 for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            best[name] = max(best[name], one_round(step, batches, device))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conformations", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    data = conformations(args.conformations)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    default_threads = torch.get_num_threads()
    results: List[Dict[str, Any]] = []
    print(f"{args.conformations} conformations ({float(data.num_atoms().mean()):.1f} atoms on average), "
          f"batch size {args.batch_size}, float32, ANI-1x architecture, one network")
    print(f"{'device':6} {'threads':>7} {'loss':14} {'openmm-ani':>12} {'TorchANI 2.9':>12} {'ratio':>7}")
    for device in devices:
        batches = list(data.batches(args.batch_size, shuffle=True, seed=0, dtype=torch.float32, device=device))
        for threads in ([1, default_threads] if device == "cpu" else [default_threads]):
            torch.set_num_threads(threads)
            for label, force in (("energy", 0.0), ("energy+force", 0.1)):
                best = throughputs({"ours": ours(device, force), "peer": torchani_step(device, force)}, batches,
                                   args.repeats, device)
                a, b = best["ours"], best["peer"]
                results.append({"device": device, "threads": threads, "loss": label, "openmm_ani": a, "torchani": b,
                                "ratio": a / b})
                print(f"{device:6} {threads:7d} {label:14} {a:10.0f}/s {b:10.0f}/s {a / b:7.2f}")
    torch.set_num_threads(default_threads)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"conformations": args.conformations, "batch_size": args.batch_size, "results": results},
                      handle, indent=1)


if __name__ == "__main__":
    main()
