"""ANI-1ccx molecular dynamics of p-xylene bound to T4 lysozyme L99A (the `make demo` job).

The ligand (p-xylene, residue TMP) is treated with the ANI-1ccx ensemble, the protein with
Amber + GB-OBC2 implicit solvent (1.5 nm cutoff) from openmmtools' prmtop (mechanical embedding). If
mixed ML/MM systems are not available, p-xylene alone runs in vacuum. Writes
out/t4_pxylene.dcd, out/t4_pxylene.csv and out/t4_pxylene.disagreement.csv.

    python examples/t4_lysozyme_md.py [--steps 500] [--platform CPU]
"""

import argparse
import os
import sys
import time

import openmm
import torch
from openmm import app, unit

import openmm_ani
from openmm_ani.benchmark.systems import openmmtools_data
from openmm_ani.reporter import EnsembleDisagreementReporter

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=500)
parser.add_argument("--platform", default="CPU")
parser.add_argument("--output", default=os.path.join("out", "t4_pxylene"))
args = parser.parse_args()
os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)

# an 18-atom ML region gains nothing from several torch threads, and torch's threads would compete
# with OpenMM's CPU threads for the same cores: one torch thread, OpenMM's default thread count
torch.set_num_threads(1)
potential = openmm_ani.ANIPotential("ani1ccx")
prmtop = app.AmberPrmtopFile(openmmtools_data("T4-lysozyme-L99A-implicit", "complex.prmtop"))
positions = app.AmberInpcrdFile(openmmtools_data("T4-lysozyme-L99A-implicit", "complex.crd")).positions
topology = prmtop.topology
mm_system = prmtop.createSystem(nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=1.5 * unit.nanometer,
                                constraints=app.HBonds, implicitSolvent=app.OBC2)
ligand = [atom.index for atom in topology.atoms() if atom.residue.name == "TMP"]
system = potential.createMixedSystem(topology, mm_system, ligand)
print(f"T4 lysozyme L99A + p-xylene: {topology.getNumAtoms()} atoms, {len(ligand)} ML (ANI-1ccx), "
      "rest Amber/GB-OBC2")

integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1.0 * unit.femtosecond)
platform = openmm.Platform.getPlatformByName(args.platform)
simulation = app.Simulation(topology, system, integrator, platform)
simulation.context.setPositions(positions)
print("minimising ...")
simulation.minimizeEnergy(maxIterations=100)
simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
interval = max(1, args.steps // 10)
simulation.reporters += [
    app.DCDReporter(args.output + ".dcd", interval),
    app.StateDataReporter(args.output + ".csv", interval, step=True, potentialEnergy=True, temperature=True),
    app.StateDataReporter(sys.stdout, interval, step=True, time=True, potentialEnergy=True, kineticEnergy=True,
                          temperature=True, speed=True, separator="  "),
    EnsembleDisagreementReporter(args.output + ".disagreement.csv", interval, topology, potential, ml_atoms=ligand,
                                 threshold=20.0, forces=False),
]
start = time.perf_counter()
simulation.step(args.steps)
elapsed = time.perf_counter() - start
ms = 1000 * elapsed / args.steps
print(f"{args.steps} steps of 1 fs in {elapsed:.1f} s: {ms:.2f} ms/step, {86400 / elapsed * args.steps * 1e-6:.3f} ns/day "
      f"({args.platform} platform)")
print(f"trajectory: {args.output}.dcd")
