#!/usr/bin/env python
"""Model path on a GPU: ANI-1ccx energy + forces, openmm-ani's TorchScript path vs TorchANI 2.9, one run.

For machines with CUDA but without OpenMM or network (the project's device machines: their image
has torch 2.11, which openmm-torch 1.5 does not support, so OpenMM's CUDA platform cannot run there;
this script times the model path, where openmm-ani's module spends its time). It imports only
openmm-ani's model and formats layers (no OpenMM) and TorchANI 2.9 from ``.torchani29/bundle``
(``benchmarks/setup_torchani29.py --bundle``, carried along).

Systems: p-xylene and alanine dipeptide (``tests/data/ani_reference.npz``) and periodic water boxes
of about 255, 1k, 3k and 10k atoms built here (TIP3P geometry on a lattice, random orientations,
1 g/cm^3). Engines, alternating in rounds, each energy + forces call synchronised:

* ``openmm-ani TS``: ``FusedANI`` (analytic energy + forces, TorchScript, no autograd) on the GPU;
* ``TorchANI 2.9``: ``to_infer_model()``, TorchScript, autograd forces, cell list for boxes.

Energies and forces of both are checked against openmm-ani on the CPU in float64 first. Output:
a markdown table (ms per call, range of round medians, ratio), also written to ``--out``.

    PYTHONPATH=.torchani29/bundle python3 benchmarks/gpu_model_benchmark.py --out $OUT/gpu_model.md
"""

import argparse
import os
import statistics
import sys
import time
import types
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "tests", "data", "ani_reference.npz")
BUNDLE = os.path.join(ROOT, ".torchani29", "bundle")
WATER_ATOMS = {"water-255": 255, "water-1k": 1053, "water-3k": 3180, "water-10k": 10467}


def import_model_layers():
    """openmm_ani's model and formats layers without the package's OpenMM-importing ``__init__``."""
    if "openmm_ani" not in sys.modules:
        package = types.ModuleType("openmm_ani")
        package.__path__ = [os.path.join(ROOT, "openmm_ani")]  # type: ignore[attr-defined]
        sys.modules["openmm_ani"] = package
    from openmm_ani.formats import registry
    from openmm_ani.model.fused import FusedANI

    return registry, FusedANI


def water_box(atoms: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(atomic numbers, positions Å, cell Å)`` of ``atoms // 3`` waters on a cubic lattice at 1 g/cm^3."""
    waters = atoms // 3
    edge = (waters * 18.015 / 0.6022) ** (1.0 / 3.0)  # Å for 1 g/cm^3
    per_side = int(np.ceil(waters ** (1.0 / 3.0)))
    spacing = edge / per_side
    rng = np.random.default_rng(seed)
    local = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
    positions = []
    for index in range(waters):
        i, j, k = index // per_side**2, (index // per_side) % per_side, index % per_side
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, z = q
        rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                             [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                             [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        positions.append(local @ rotation.T + (np.array([i, j, k]) + 0.5) * spacing)
    numbers = np.tile([8, 1, 1], waters)
    return numbers, np.concatenate(positions), np.eye(3) * edge


def systems(names: List[str]) -> Dict[str, Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]:
    out: Dict[str, Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = {}
    with np.load(REFERENCE) as data:
        for name in names:
            if name in WATER_ATOMS:
                out[name] = water_box(WATER_ATOMS[name])
            else:
                out[name] = (data[f"{name}__atomic_numbers"], data[f"{name}__positions"], None)
    return out


def synchronised(call: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000.0 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["pxylene", "alanine_dipeptide"] + list(WATER_ATOMS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    registry, FusedANI = import_model_layers()
    sys.path.insert(0, BUNDLE)
    os.environ["TORCHANI_DATA_DIR"] = os.path.join(BUNDLE, "data")
    import torchani29

    info = os.path.join(os.environ["TORCHANI_DATA_DIR"], "Neurochem", "ani-1ccx_8x.info")
    lines = [f"# ANI-1ccx energy + forces on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, "
             f"torch {torch.__version__}, float32; ms per call (range of {args.rounds} round medians); "
             "ratio = TorchANI 2.9 / openmm-ani", "",
             "| system | atoms | openmm-ani TS | TorchANI 2.9 | ratio |", "|---|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    bundled = os.path.join(ROOT, "openmm_ani", "data", "ani1ccx.npz")  # by path: no package metadata needed
    reference_model = registry.load(bundled, dtype=torch.float64)
    model = registry.load(bundled, dtype=torch.float32)
    ours = torch.jit.script(FusedANI(model.aev.parameters, list(model.networks.networks), use_kernel=False)).to(device)
    reference = FusedANI(reference_model.aev.parameters, list(reference_model.networks.networks), use_kernel=False)
    for name, (z, x, cell) in systems(args.systems).items():
        zt = torch.tensor(z).unsqueeze(0)
        species = model.species(zt)[0]
        self_energy = float(model.self_energies(model.species(zt)))
        e_ref, g_ref = reference(torch.tensor(x), species, None if cell is None else torch.tensor(cell), True)
        xd = torch.tensor(x, dtype=torch.float32, device=device)
        cd = None if cell is None else torch.tensor(cell, dtype=torch.float32, device=device)
        sd = species.to(device)
        peer = torchani29.neurochem.load_model_from_info_file(info).to_infer_model()
        if cell is not None:
            peer.neighborlist = torchani29.neighbors.CellList()
        peer = torch.jit.script(peer.to(device))
        pbc = None if cell is None else torch.tensor([True, True, True], device=device)
        zd = zt.to(device)

        def ours_call() -> Tuple[torch.Tensor, torch.Tensor]:
            members, gradient = ours(xd, sd, cd, True)
            return members.mean() + self_energy, -gradient

        def peer_call() -> Tuple[torch.Tensor, torch.Tensor]:
            xr = xd.unsqueeze(0).clone().requires_grad_(True)
            energy = peer((zd, xr), cell=cd, pbc=pbc).energies
            (grad,) = torch.autograd.grad(energy.sum(), xr)
            return energy.detach(), -grad[0]

        expected_e = float(e_ref.mean()) + self_energy
        for label, call in (("openmm-ani TS", ours_call), ("TorchANI 2.9", peer_call)):
            energy, forces = call()
            de = abs(float(energy.sum()) - expected_e)
            df = float((forces.double().cpu() + g_ref).abs().max())
            # float32 vs float64: TorchANI 2.9 also rounds self energies to float32 (a few 1e-6 Ha per atom)
            assert de < 1e-5 * abs(expected_e) and df < 1e-3, (name, label, de, df)
        figures: Dict[str, List[float]] = {"ours": [], "peer": []}
        for call in (ours_call, peer_call):
            for _ in range(3):
                synchronised(call, device)
        for _ in range(args.rounds):
            for key, call in (("ours", ours_call), ("peer", peer_call)):
                figures[key].append(statistics.median(synchronised(call, device) for _ in range(args.repeats)))
        ratio = statistics.median(figures["peer"]) / statistics.median(figures["ours"])
        row = (f"| {name} | {len(z)} | {min(figures['ours']):.2f}–{max(figures['ours']):.2f} | "
               f"{min(figures['peer']):.2f}–{max(figures['peer']):.2f} | {ratio:.1f}x |")
        lines.append(row)
        print(row, flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
