"""Measure what openmmtools' System copying costs with the ANI TorchForce (issue 12's serialization figures).

openmmtools serialises a System to hash it (ThermodynamicState), deep-copies it (which is
serialise + deserialise) and stores it in the reporter. For the T4 lysozyme + p-xylene mixed
system (interpolating), prints the serialised size, serialisation and deep-copy times, and the
cost of building 11 openmmtools states, in single and double precision.

Usage: python scripts/measure_fe_serialization.py
"""

import copy
import time

import openmm
import torch  # noqa: F401  (before openmmtorch)
from openmm import app
from openmmtools import testsystems

from openmm_ani.freeenergy.states import create_states
from openmm_ani.openmm import ANIPotential


def timed(function, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ts = testsystems.LysozymeImplicit(implicitSolvent=app.OBC2)
    ligand = [a.index for a in ts.topology.atoms() if a.residue.name == "TMP"]
    mm_xml = openmm.XmlSerializer.serialize(ts.system)
    print(f"MM system alone: {len(mm_xml) / 1e6:.2f} MB, serialise {timed(lambda: openmm.XmlSerializer.serialize(ts.system)) * 1e3:.0f} ms")
    for precision in ("single", "double"):
        potential = ANIPotential("ani1ccx", precision=precision)
        system = potential.createMixedSystem(ts.topology, ts.system, ligand, interpolate=True)
        xml = openmm.XmlSerializer.serialize(system)
        line = f"{precision:6s}: serialised {len(xml) / 1e6:6.2f} MB in {timed(lambda: openmm.XmlSerializer.serialize(system)) * 1e3:6.0f} ms"
        line += f"; deepcopy {timed(lambda: copy.deepcopy(system)) * 1e3:.0f} ms"
        line += f"; 11 openmmtools states {timed(lambda: create_states(system, [i / 10 for i in range(11)], 300.0), 1) * 1e3:.0f} ms"
        print(line, flush=True)


if __name__ == "__main__":
    main()
