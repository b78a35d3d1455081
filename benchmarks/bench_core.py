#!/usr/bin/env python
"""Benchmark of the openmm-ani core: ms per energy + forces call of the ANI-1ccx ensemble.

For p-xylene (18 atoms), alanine dipeptide (22) and periodic water boxes of ~255, 1k, 3k
and 10k atoms it prints the median time of one energy + forces evaluation (autograd) of the
8-model ANI-1ccx ensemble, in float32 and float64, single-threaded (``torch.set_num_threads(1)``)
and with the default thread count, for openmm-ani eager and TorchScript, next to TorchANI 2.2.4
(the peer) on the same inputs in the same run, with the ratio TorchANI / openmm-ani.
It then prints the cost per atom from 1k to 10k atoms, which is flat when the cost grows
linearly. TorchANI's periodic neighbour search is all-pairs over periodic shifts (memory
and time ~ N^2), so it is run only up to ``--torchani-max-atoms`` atoms.

    python benchmarks/bench_core.py [--quick] [--torchani-max-atoms 1100]

``--quick`` uses fewer repeats and skips the 10k-atom box. Molecules are the perturbed
openmmtools structures of ``tests/data/ani_reference.npz``; water boxes are
``openmmtools.testsystems.WaterBox`` (TIP3P geometry).
"""

import argparse
import contextlib
import io
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
from openmm_ani.units import NM_TO_ANGSTROM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "tests", "data", "ani_reference.npz")
#: Water box edges (nm) giving about 255, 1k, 3k and 10k atoms.
WATER_EDGES_NM = {"water_255": 1.4, "water_1k": 2.21, "water_3k": 3.18, "water_10k": 4.75}

System = Tuple[str, np.ndarray, np.ndarray, Optional[np.ndarray]]


def molecules() -> List[System]:
    with np.load(REFERENCE) as data:
        return [(name, data[f"{name}__atomic_numbers"], data[f"{name}__positions"], None)
                for name in ("pxylene", "alanine_dipeptide")]


def water_box(name: str, edge_nm: float) -> System:
    import openmm.unit as unit

    with contextlib.redirect_stdout(io.StringIO()):  # openmmtools/pymbar print notices on import
        from openmmtools import testsystems

    water = testsystems.WaterBox(box_edge=edge_nm * unit.nanometer)
    z = np.array([a.element.atomic_number for a in water.topology.atoms()], dtype=np.int64)
    x = np.asarray(water.positions.value_in_unit(unit.nanometer)) * NM_TO_ANGSTROM
    cell = np.array([[v.value_in_unit(unit.nanometer) for v in vec]
                     for vec in water.system.getDefaultPeriodicBoxVectors()]) * NM_TO_ANGSTROM
    frac = x @ np.linalg.inv(cell)
    return name, z, (frac - np.floor(frac)) @ cell, cell  # wrapped: TorchANI expects wrapped coordinates


def time_ms(call: Callable[[], None], repeats: int, warmup: int, budget_s: float = 6.0) -> Tuple[float, float]:
    """Median and minimum wall time (ms) of ``call`` after ``warmup`` calls.

    Stops early (after at least 3 timed calls) once ``budget_s`` seconds are spent, so that
    slow peers do not dominate the run time.
    """
    for _ in range(warmup):
        call()
    times: List[float] = []
    spent = 0.0
    while len(times) < repeats and (len(times) < 3 or spent < budget_s):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return 1000.0 * statistics.median(times), 1000.0 * min(times)


def energy_forces_call(energy_fn, x: torch.Tensor) -> Callable[[], None]:
    def call() -> None:
        energy = energy_fn(x)
        torch.autograd.grad(energy.sum(), x)
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no 10k-atom box")
    parser.add_argument("--torchani-max-atoms", type=int, default=1100,
                        help="largest periodic system given to TorchANI (its PBC neighbour list is O(N^2) memory)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    default_threads = torch.get_num_threads()
    try:
        import torchani
    except ImportError:
        torchani = None

    systems = molecules()
    for name, edge in WATER_EDGES_NM.items():
        if args.quick and name == "water_10k":
            continue
        systems.append(water_box(name, edge))

    print(f"# openmm-ani {openmm_ani.__version__} core benchmark: ANI-1ccx 8-model ensemble, energy + forces")
    print(f"# torch {torch.__version__}, torchani {getattr(torchani, '__version__', 'not installed')}, "
          f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"default threads {default_threads}")
    print("# ms per call: median (minimum) after warm-up; ratio = TorchANI / openmm-ani TorchScript "
          "(> 1: openmm-ani faster), of medians (of minima)")
    print()
    header = ("| system | atoms | dtype | threads | openmm-ani eager | openmm-ani script | TorchANI 2.2.4 | ratio |")
    print(header)
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    sys.stdout.flush()

    per_atom: Dict[Tuple[str, int], Dict[int, float]] = {}
    for dtype in (torch.float32, torch.float64):
        ours = openmm_ani.models.load("ani1ccx", dtype=dtype)
        scripted = torch.jit.script(openmm_ani.models.load("ani1ccx", dtype=dtype))
        peer = None
        if torchani is not None:
            with contextlib.redirect_stdout(io.StringIO()):  # TorchANI prints its resource path
                peer = torchani.models.ANI1ccx(periodic_table_index=True).to(dtype)
        for name, z, positions, cell in systems:
            n = len(z)
            zt = torch.tensor(z).unsqueeze(0)
            x = torch.tensor(positions, dtype=dtype).unsqueeze(0).requires_grad_(True)
            c = torch.tensor(cell, dtype=dtype) if cell is not None else None
            repeats = max(3, min(30, int(6000 / n))) // (3 if args.quick else 1) + 2
            warmup = 2 if n > 3000 else 3
            for threads in sorted({1, default_threads}):
                torch.set_num_threads(threads)
                eager = time_ms(energy_forces_call(lambda y: ours(zt, y, c), x), repeats, warmup)
                script = time_ms(energy_forces_call(lambda y: scripted(zt, y, c), x), repeats, warmup)
                peer_text, ratio_text = "skipped", ""
                if peer is not None and (cell is None or n <= args.torchani_max_atoms):
                    kwargs = {} if c is None else {"cell": c, "pbc": torch.tensor([True, True, True])}
                    peer_time = time_ms(
                        energy_forces_call(lambda y: peer((zt, y), **kwargs).energies, x), repeats, 1)
                    peer_text = f"{peer_time[0]:.2f} ({peer_time[1]:.2f})"
                    ratio_text = f"{peer_time[0] / script[0]:.2f} ({peer_time[1] / script[1]:.2f})"
                elif peer is not None:
                    peer_text = "not run (O(N^2))"
                dname = "float32" if dtype == torch.float32 else "float64"
                print(f"| {name} | {n} | {dname} | {threads} | {eager[0]:.2f} ({eager[1]:.2f}) | "
                      f"{script[0]:.2f} ({script[1]:.2f}) | {peer_text} | {ratio_text} |")
                sys.stdout.flush()
                script_ms = script[1]
                if n >= 900:
                    per_atom.setdefault((dname, threads), {})[n] = script_ms / n
        torch.set_num_threads(default_threads)

    print()
    print("# cost per atom (openmm-ani TorchScript, minimum time, µs/atom) from 1k to 10k atoms: flat = linear scaling")
    print("| dtype | threads | " + " | ".join(f"{n} atoms" for n in sorted(next(iter(per_atom.values())))) + " |")
    print("|---|---:|" + "---:|" * len(next(iter(per_atom.values()))))
    for (dname, threads), values in sorted(per_atom.items()):
        print(f"| {dname} | {threads} | " + " | ".join(f"{1000 * values[n]:.1f}" for n in sorted(values)) + " |")


if __name__ == "__main__":
    main()
