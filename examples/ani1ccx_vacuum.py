"""A plain OpenMM script: ANI-1ccx MD of p-xylene in vacuum (any small H/C/N/O molecule works).

    python examples/ani1ccx_vacuum.py [molecule.pdb] [--steps 1000]
"""

import argparse
import sys

import openmm
from openmm import app, unit

import openmm_ani
from openmm_ani.benchmark.systems import openmmtools_data

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("pdb", nargs="?", default=None, help="input PDB (default: openmmtools' p-xylene, ligand.pdb)")
parser.add_argument("--steps", type=int, default=1000, help="MD steps of 0.5 fs (default 1000)")
args = parser.parse_args()

path = args.pdb or openmmtools_data("T4-lysozyme-L99A-implicit", "ligand.pdb")
pdb = app.PDBFile(path)
system = openmm_ani.ANIPotential("ani1ccx").createSystem(pdb.topology)
integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
simulation = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("CPU"))
simulation.context.setPositions(pdb.positions)
energy = simulation.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
print(f"starting structure: {energy!r} kJ/mol")
simulation.minimizeEnergy()
interval = max(1, min(100, args.steps // 10))
simulation.reporters.append(app.StateDataReporter(sys.stdout, interval, step=True, potentialEnergy=True, temperature=True))
simulation.step(args.steps)
