"""A plain OpenMM script: ANI-1ccx MD of p-xylene in vacuum (any small H/C/N/O molecule works)."""

import sys

import openmm
from openmm import app, unit

import openmm_ani
from openmm_ani.benchmark import openmmtools_data

path = sys.argv[1] if len(sys.argv) > 1 else openmmtools_data("T4-lysozyme-L99A-implicit", "ligand.pdb")
pdb = app.PDBFile(path)
system = openmm_ani.ANIPotential("ani1ccx").createSystem(pdb.topology)
integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
simulation = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("CPU"))
simulation.context.setPositions(pdb.positions)
simulation.minimizeEnergy()
simulation.reporters.append(app.StateDataReporter(sys.stdout, 100, step=True, potentialEnergy=True, temperature=True))
simulation.step(1000)
