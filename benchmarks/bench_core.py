#!/usr/bin/env python
"""Model path benchmark: ms per energy + forces call of the ANI-1ccx ensemble, openmm-ani vs TorchANI 2.9.

For the project's benchmark cases (:mod:`openmm_ani.benchmark.systems`) ``pxylene`` (18 atoms),
``alanine`` (22) and the periodic water boxes ``water-255``, ``water-1k``, ``water-3k`` and
``water-10k`` it times one energy + forces evaluation of the 8-member ensemble on CPU, one thread
(``torch.set_num_threads(1)``) and torch's default threads, for

* ``openmm-ani``: ``openmm_ani.models.load("ani1ccx").energies_and_forces(...)`` — the fused C++
  kernel (:mod:`openmm_ani.kernels`);
* ``openmm-ani TS``: the analytic TorchScript path (``FusedANI(use_kernel=False)``, scripted) that
  runs where the kernel is not built, on GPUs and in exported files;
* ``TorchANI 2.9``: TorchANI 2.9.0 (``benchmarks/setup_torchani29.py``), the published NeuroChem
  weights, ``to_infer_model()``, TorchScript, energy + forces by autograd; cell list for boxes.

``--autograd`` times instead what training and any user who differentiates the model runs: the
scripted ``ANIModel`` ``forward`` and ``torch.autograd.grad`` of its energy, with the AEVs from the C++
kernel's autograd operator (``openmm-ani``) and from the pure PyTorch AEV path (``openmm-ani TS``,
``model.aev.use_kernel = False``).

The engines run alternately, in ``--rounds`` rounds; each round's figure is the median of
``--repeats`` calls after warm-up. Printed: the range of round medians per engine and the ratio
TorchANI 2.9 / openmm-ani of their medians. Energies of every engine are checked against
openmm-ani's before timing. Then the cost per atom from 1k to 10k atoms (flat = linear).

    python benchmarks/bench_core.py [--quick] [--double] [--rounds 2] [--autograd] [--systems pxylene water-1k]
"""

import argparse
import copy
import os
import platform
import statistics
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

import openmm_ani
from openmm_ani import kernels
from openmm_ani.benchmark.systems import build_case
from openmm_ani.model.fused import FusedANI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import setup_torchani29  # noqa: E402  (benchmark helper next to this file)

#: The cases timed (names of :data:`openmm_ani.benchmark.systems.CASES`); ``--quick`` leaves out the last.
SYSTEMS = ["pxylene", "alanine", "water-255", "water-1k", "water-3k", "water-10k"]

System = Tuple[str, np.ndarray, np.ndarray, Optional[np.ndarray]]
Call = Callable[[], Tuple[torch.Tensor, torch.Tensor]]


def model_system(name: str) -> System:
    """``(name, atomic numbers, positions Å, cell Å or None)`` of a benchmark case."""
    return (name, *build_case(name, with_peer=False).model_inputs())


def engines(system: System, dtype: torch.dtype, peer_model) -> Dict[str, Call]:
    """Energy + forces callables of each engine for one system (Ha, Ha/Å)."""
    _, z, positions, cell = system
    zt = torch.tensor(z).unsqueeze(0)
    x = torch.tensor(positions, dtype=dtype).unsqueeze(0)
    c = None if cell is None else torch.tensor(cell, dtype=dtype)
    model = openmm_ani.models.load("ani1ccx", dtype=dtype)
    calls: Dict[str, Call] = {}
    if kernels.available():
        calls["openmm-ani"] = lambda: model.energies_and_forces(zt, x, c)
    species = model.species(zt)[0]
    portable = torch.jit.script(FusedANI(model.aev.parameters, list(model.networks.networks), use_kernel=False))
    self_energy = model.self_energies(model.species(zt)).to(torch.float64)

    def script_call() -> Tuple[torch.Tensor, torch.Tensor]:
        members, gradient = portable(x[0], species, c, True)
        return members.mean() + self_energy, -gradient

    calls["openmm-ani TS"] = script_call
    if peer_model is not None:
        pbc = None if c is None else torch.tensor([True, True, True])

        def peer_call() -> Tuple[torch.Tensor, torch.Tensor]:
            xr = x.clone().requires_grad_(True)
            energy = peer_model((zt, xr), cell=c, pbc=pbc).energies
            (grad,) = torch.autograd.grad(energy.sum(), xr)
            return energy.detach(), -grad

        calls["TorchANI 2.9"] = peer_call
    return calls


def autograd_engines(system: System, dtype: torch.dtype, peer_model) -> Dict[str, Call]:
    """``--autograd``: energy by the scripted ``ANIModel.forward``, forces by ``torch.autograd.grad``
    (what training and any user who differentiates the model run), with the AEVs from the C++
    kernel (``openmm-ani``) and from the pure PyTorch path (``openmm-ani TS``, ``use_kernel=False``)."""
    _, z, positions, cell = system
    zt = torch.tensor(z).unsqueeze(0)
    x = torch.tensor(positions, dtype=dtype).unsqueeze(0)
    c = None if cell is None else torch.tensor(cell, dtype=dtype)
    model = openmm_ani.models.load("ani1ccx", dtype=dtype)
    portable = copy.deepcopy(model)
    portable.aev.use_kernel = False

    def differentiate(scripted) -> Call:
        def call() -> Tuple[torch.Tensor, torch.Tensor]:
            xr = x.clone().requires_grad_(True)
            energy = scripted(zt, xr, c)
            (grad,) = torch.autograd.grad(energy.sum(), xr)
            return energy.detach(), -grad

        return call

    calls: Dict[str, Call] = {}
    if kernels.available():
        calls["openmm-ani"] = differentiate(torch.jit.script(model))
    calls["openmm-ani TS"] = differentiate(torch.jit.script(portable))
    if peer_model is not None:
        calls["TorchANI 2.9"] = engines(system, dtype, peer_model)["TorchANI 2.9"]
    return calls


def median_ms(call: Call, repeats: int) -> float:
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no 10k-atom box")
    parser.add_argument("--double", action="store_true", help="float64 instead of float32")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per engine (default 2)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=None)
    parser.add_argument("--autograd", action="store_true",
                        help="forward + torch.autograd.grad of the scripted model instead of energies_and_forces")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    dtype = torch.float64 if args.double else torch.float32
    default_threads = torch.get_num_threads()
    try:
        torchani29 = setup_torchani29.load()
        peer = setup_torchani29.load_model("ani1ccx", dtype)
        scripted_open = torch.jit.script(peer)
        peer_periodic = setup_torchani29.load_model("ani1ccx", dtype)
        peer_periodic.neighborlist = torchani29.neighbors.CellList()  # what the model's PBC branch calls
        scripted_periodic = torch.jit.script(peer_periodic)
        peer_version = "2.9.0"
    except ImportError as error:
        print(f"# TorchANI 2.9 not available ({error}); timing openmm-ani only")
        torchani29, scripted_open, scripted_periodic, peer_version = None, None, None, "not set up"
    chosen = args.systems or [s for s in SYSTEMS if not (args.quick and s == "water-10k")]
    path = "forward + autograd.grad (scripted)" if args.autograd else "energies_and_forces"
    print(f"# openmm-ani {openmm_ani.__version__} model path: ANI-1ccx 8-member ensemble, energy + forces by {path}, "
          f"{'float64' if args.double else 'float32'}, CPU")
    print(f"# torch {torch.__version__}, TorchANI {peer_version} (TorchScript, to_infer_model, cell list for boxes), "
          f"kernels {kernels.instruction_set()}, python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"# ms per call: range of {args.rounds} alternating round medians; ratio = TorchANI 2.9 / openmm-ani")
    print()
    print("| system | atoms | threads | openmm-ani | openmm-ani TS | TorchANI 2.9 | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    per_atom: Dict[int, Dict[int, float]] = {}
    for name in chosen:
        system = model_system(name)
        n = len(system[1])
        peer = scripted_open if system[3] is None else scripted_periodic
        calls = (autograd_engines if args.autograd else engines)(system, dtype, peer)
        reference = calls["openmm-ani TS"]()
        for engine, call in calls.items():  # same energies and forces before any timing
            energy, forces = call()
            de = abs(float(energy.sum()) - float(reference[0].sum()))
            ulp = float(np.spacing(np.float32(abs(float(reference[0].sum())))))  # float32 peers sum in float32
            assert de <= (4 * ulp + 1e-4 if dtype == torch.float32 else 1e-8), (name, engine, de)
            df = float((forces.reshape(-1, 3).double() - reference[1].reshape(-1, 3).double()).abs().max())
            assert df <= (1e-3 if dtype == torch.float32 else 1e-8), (name, engine, df)
        repeats = max(3, min(30, int(3000 / n))) // (3 if args.quick else 1) + 1
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            for call in calls.values():
                call()
                call()
            figures: Dict[str, List[float]] = {engine: [] for engine in calls}
            for _ in range(args.rounds):
                for engine, call in calls.items():
                    figures[engine].append(median_ms(call, repeats))
            cells = []
            for engine in ("openmm-ani", "openmm-ani TS", "TorchANI 2.9"):
                values = figures.get(engine)
                cells.append("—" if not values else f"{min(values):.2f}–{max(values):.2f}")
            ratio = ""
            if figures.get("TorchANI 2.9") and figures.get("openmm-ani"):
                ratio = f"{statistics.median(figures['TorchANI 2.9']) / statistics.median(figures['openmm-ani']):.1f}x"
            print(f"| {name} | {n} | {threads} | " + " | ".join(cells) + f" | {ratio} |")
            sys.stdout.flush()
            if n >= 900 and figures.get("openmm-ani"):
                per_atom.setdefault(threads, {})[n] = 1000.0 * min(figures["openmm-ani"]) / n
        torch.set_num_threads(default_threads)
    if per_atom:
        print()
        print("# openmm-ani cost per atom (µs/atom, best round) from 1k to 10k atoms: flat = linear")
        for threads, values in sorted(per_atom.items()):
            print(f"# threads {threads}: " + ", ".join(f"{n} atoms {v:.1f}" for n, v in sorted(values.items())))


if __name__ == "__main__":
    main()
