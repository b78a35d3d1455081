"""What openmmtools' System handling costs with the ANI TorchForce (issue 12's serialization figures).

openmmtools serialises a System to hash it (``ThermodynamicState``), deep-copies it (serialise +
parse, which re-reads the hex-encoded TorchScript file), stores it in the reporter file as
PyYAML text, and every ``Context`` of an interpolating System clones the ``CustomCVForce``'s
collective variables (the TorchForce included). This script prints

1. for the T4 lysozyme L99A + p-xylene interpolating System (single and double precision):
   the serialised size, and the time of one serialisation, deserialisation, deep copy and
   Context creation;
2. for the p-xylene solvent leg, a replica-exchange start (3 windows, 2 iterations, Reference
   platform) under cProfile: how many System copies, Contexts, serialisations and YAML
   dumps/loads it makes and what they cost, plus the wall time.

Part 2 runs under the current code and under an older checkout (``run_replica_exchange`` with
``settings.n_states``), so the same file measures before and after:
``(cd old-worktree && PYTHONPATH=. python /path/to/benchmarks/measure_fe_serialization.py --part 2)``.

Usage: python benchmarks/measure_fe_serialization.py [--part 1|2|all]
"""

import argparse
import copy
import cProfile
import os
import pstats
import tempfile
import time

import torch  # noqa: F401  (before openmmtorch)
import openmm
import openmmtools
from openmm import app, unit

DATA = os.path.join(os.path.dirname(openmmtools.__file__), "data", "T4-lysozyme-L99A-implicit")
#: cProfile entries reported in part 2: label -> substring of the function's description.
COUNTED = {
    "System copies": "System___copy__",
    "Contexts created": "new_Context",
    "System serialisations": "XmlSerializer_serializeSystem",
    "System deserialisations": "XmlSerializer__deserialize",
    "YAML dumps": "yaml/__init__.py:248(dump)",
    "YAML loads": "yaml/__init__.py:74(load)",
}


def timed(function, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def interpolating(prmtop_file: str, precision: str):  # type: ignore[no-untyped-def]
    from openmm_ani.openmm import ANIPotential

    prmtop = app.AmberPrmtopFile(os.path.join(DATA, prmtop_file))
    system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds, implicitSolvent=app.OBC2)
    ligand = [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
    return prmtop, system, ANIPotential("ani1ccx", precision=precision).createMixedSystem(prmtop.topology, system, ligand, interpolate=True)


def part1() -> None:
    _, mm, _ = interpolating("complex.prmtop", "single")
    mm_xml = openmm.XmlSerializer.serialize(mm)
    print(f"T4 complex MM System alone: {len(mm_xml) / 1e6:.2f} MB, serialise {timed(lambda: openmm.XmlSerializer.serialize(mm)) * 1e3:.0f} ms")
    for precision in ("single", "double"):
        _, _, system = interpolating("complex.prmtop", precision)
        xml = openmm.XmlSerializer.serialize(system)
        platform = openmm.Platform.getPlatformByName("Reference")
        line = f"{precision:6s}: {len(xml) / 1e6:6.2f} MB (TorchForce {(len(xml) - len(mm_xml)) / 1e6:.2f} MB)"
        line += f"; serialise {timed(lambda: openmm.XmlSerializer.serialize(system)) * 1e3:.0f} ms"
        line += f"; deserialise {timed(lambda: openmm.XmlSerializer.deserialize(xml)) * 1e3:.0f} ms"
        line += f"; deepcopy {timed(lambda: copy.deepcopy(system)) * 1e3:.0f} ms"
        line += f"; Context {timed(lambda: openmm.Context(system, openmm.VerletIntegrator(0.001), platform), 1) * 1e3:.0f} ms"
        print(line, flush=True)


def part2() -> None:
    from openmm_ani.freeenergy.equilibrium import run_replica_exchange
    from openmm_ani.freeenergy.settings import ProtocolSettings

    prmtop, _, system = interpolating("ligand.prmtop", "single")
    positions = app.AmberInpcrdFile(os.path.join(DATA, "ligand-minimized.crd")).getPositions(asNumpy=True)
    values = dict(n_states=3, n_iterations=2, steps_per_iteration=10, n_switches=0, platform="Reference", minimize=False)
    try:
        settings = ProtocolSettings(schedule="equal", check_interval=2, **values)
    except TypeError:  # an older ProtocolSettings (no pilot schedule)
        settings = ProtocolSettings(checkpoint_interval=2, **values)
    with tempfile.TemporaryDirectory() as directory:
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        run_replica_exchange(system, positions, settings, os.path.join(directory, "re.nc"), progress=False)
        profile.disable()
        wall = time.perf_counter() - start
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    print(f"replica exchange start, p-xylene solvent leg (3 windows, 2 iterations): {wall:.1f} s")
    for label, key in COUNTED.items():
        calls = [(v[1], v[3]) for k, v in stats.items() if key in f"{k[0]}:{k[1]}({k[2]})" or key in k[2]]
        n = sum(c for c, _ in calls)
        seconds = sum(t for _, t in calls)
        print(f"  {label:24s} {n:3d} calls, {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("1", "2", "all"), default="all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part in ("1", "all"):
        part1()
    if args.part in ("2", "all"):
        part2()


if __name__ == "__main__":
    main()
