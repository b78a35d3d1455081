"""MM -> ML/MM (ANI-1ccx) binding free-energy correction of the guest B2 in cucurbit[7]uril (CB7), explicit water.

The complex is openmmtools' ``HostGuestExplicit`` system (``cb7-b2/complex-explicit.prmtop``:
GAFF/AM1-BCC host and guest, 1445 TIP3P waters, 4491 atoms), with PME (0.9 nm cutoff) at
1 atm (Monte Carlo barostat). The solvent leg is the same box with the host removed: its
System is the complex's with the host particles and their terms dropped
(:func:`remove_particles`), equilibrated with MM at 1 atm before the correction starts, so the
guest's force field and water model are identical in both legs. ANI-1ccx replaces the guest's
internal MM energy (30 atoms: C, H, N); guest-water and guest-host interactions stay MM.

Cost on the 2-core development CPU: the MM box alone runs at about 20 ms/step; the
lambda windows add the guest's ANI force. The windows come from a pilot run; each leg runs
until the target or the time budget and resumes from ``output``.

Usage: python examples/cb7_b2_fe_correct.py [--output DIR] [--seed N] [--max-time-min M] [--target-error E] [--platform P] [--quick]

``--quick`` runs the smallest protocol that still goes through every step (solvent-box
equilibration, pilot, windows, replica exchange and switching in both legs, analysis,
``results.json`` and ``summary.json``) in about a minute; its numbers are not converged.
"""

import argparse
import copy
import dataclasses
import json
import os
import sys
from typing import Any, List, Set, Tuple

import openmm
import openmmtools
import torch
from openmm import app, unit

from openmm_ani.files import write_text
from openmm_ani.freeenergy.results import summary_table, write_json
from openmm_ani.freeenergy.settings import ProtocolSettings
from openmm_ani.freeenergy.workflow import LegInput, run_correction

DATA = os.path.join(os.path.dirname(openmmtools.__file__), "data", "cb7-b2")
PRMTOP = os.path.join(DATA, "complex-explicit.prmtop")
INPCRD = os.path.join(DATA, "complex-explicit.inpcrd")
CUTOFF = 0.9 * unit.nanometer
#: MM NPT steps (2 fs) that equilibrate the host-free solvent box: 10 ps.
SOLVENT_NPT_STEPS = 5000
#: ``--quick``: a few steps of every part of the protocol (a smoke test, not a result).
QUICK_SETTINGS = dict(
    n_iterations=4, steps_per_iteration=5, check_interval=2, n_switches=2, switching_steps=10, equilibration_steps=10,
    steps_between_switches=5, pilot_lambdas=[0.0, 0.5, 1.0], pilot_samples=3, pilot_steps_per_sample=2,
    pilot_equilibration_steps=2, max_states=2, n_bootstrap=20, minimize_iterations=20,
)
QUICK_SOLVENT_NPT_STEPS = 20


def remove_particles(system: openmm.System, drop: Set[int]) -> openmm.System:
    """A copy of an AMBER-prmtop System without the particles ``drop`` and every term touching them."""
    keep = [i for i in range(system.getNumParticles()) if i not in drop]
    index = {old: new for new, old in enumerate(keep)}
    new = openmm.System()
    new.setDefaultPeriodicBoxVectors(*system.getDefaultPeriodicBoxVectors())
    for i in keep:
        new.addParticle(system.getParticleMass(i))
    for k in range(system.getNumConstraints()):
        i, j, d = system.getConstraintParameters(k)
        if i in index and j in index:
            new.addConstraint(index[i], index[j], d)
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            new_force = openmm.NonbondedForce()
            for name in ("NonbondedMethod", "CutoffDistance", "EwaldErrorTolerance", "UseDispersionCorrection",
                         "UseSwitchingFunction", "SwitchingDistance", "ReactionFieldDielectric"):
                getattr(new_force, "set" + name)(getattr(force, "get" + name)())
            new_force.setPMEParameters(*force.getPMEParameters())
            for i in keep:
                new_force.addParticle(*force.getParticleParameters(i))
            for k in range(force.getNumExceptions()):
                i, j, *parameters = force.getExceptionParameters(k)
                if i in index and j in index:
                    new_force.addException(index[i], index[j], *parameters)
        elif isinstance(force, (openmm.HarmonicBondForce, openmm.HarmonicAngleForce, openmm.PeriodicTorsionForce)):
            new_force = type(force)()
            count, get, add = {
                openmm.HarmonicBondForce: ("getNumBonds", "getBondParameters", "addBond"),
                openmm.HarmonicAngleForce: ("getNumAngles", "getAngleParameters", "addAngle"),
                openmm.PeriodicTorsionForce: ("getNumTorsions", "getTorsionParameters", "addTorsion"),
            }[type(force)]
            atoms = {openmm.HarmonicBondForce: 2, openmm.HarmonicAngleForce: 3, openmm.PeriodicTorsionForce: 4}[type(force)]
            for k in range(getattr(force, count)()):
                values = getattr(force, get)(k)
                if all(p in index for p in values[:atoms]):
                    getattr(new_force, add)(*[index[p] for p in values[:atoms]], *values[atoms:])
        elif isinstance(force, openmm.CMMotionRemover):
            new_force = openmm.CMMotionRemover(force.getFrequency())
        else:
            raise ValueError(f"remove_particles does not handle {type(force).__name__}")
        new_force.setForceGroup(force.getForceGroup())
        new.addForce(new_force)
    return new


def legs(directory: str, seed: int, platform: str, npt_steps: int = SOLVENT_NPT_STEPS) -> Tuple[LegInput, LegInput]:
    prmtop = app.AmberPrmtopFile(PRMTOP)
    inpcrd = app.AmberInpcrdFile(INPCRD)
    box = inpcrd.boxVectors
    prmtop.topology.setPeriodicBoxVectors(box)
    system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=CUTOFF, constraints=app.HBonds)
    system.setDefaultPeriodicBoxVectors(*box)
    residues = {r.name: [a.index for a in r.atoms()] for r in prmtop.topology.residues() if r.name in ("CUC", "B2")}
    guest, host = residues["B2"], residues["CUC"]
    files = {"prmtop": PRMTOP, "coords": INPCRD}
    complex_leg = LegInput("complex", prmtop.topology, system, inpcrd.getPositions(asNumpy=True), guest, box, files=files)

    modeller = app.Modeller(prmtop.topology, inpcrd.getPositions())
    modeller.delete([a for a in prmtop.topology.atoms() if a.index in set(host)])
    solvent_system = remove_particles(system, set(host))
    guest_solvent = [a.index for a in modeller.topology.atoms() if a.residue.name == "B2"]
    positions, box = equilibrated_solvent(solvent_system, modeller.positions, box, os.path.join(directory, "solvent_npt.xml"), seed, platform,
                                          npt_steps)
    modeller.topology.setPeriodicBoxVectors(box)
    solvent_system.setDefaultPeriodicBoxVectors(*box)
    solvent_leg = LegInput("solvent", modeller.topology, solvent_system, positions, guest_solvent, box, files=files)
    return complex_leg, solvent_leg


def equilibrated_solvent(system: openmm.System, positions: Any, box: Any, path: str, seed: int, platform: str,
                         steps: int = SOLVENT_NPT_STEPS) -> Tuple[Any, List[Any]]:
    """MM NPT equilibration of the host-free box (fills the host's cavity); stored in ``path`` and reused."""
    if not os.path.exists(path):
        work = copy.deepcopy(system)
        work.addForce(openmm.MonteCarloBarostat(1 * unit.atmosphere, 300 * unit.kelvin))
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
        integrator.setRandomNumberSeed(seed)
        context = openmm.Context(work, integrator, openmm.Platform.getPlatformByName(platform))
        context.setPeriodicBoxVectors(*box)
        context.setPositions(positions)
        openmm.LocalEnergyMinimizer.minimize(context, maxIterations=500 if steps >= SOLVENT_NPT_STEPS else 20)
        context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
        integrator.step(steps)  # 10 ps by default (the barostat keeps relaxing the box during sampling)
        write_text(path, openmm.XmlSerializer.serialize(context.getState(getPositions=True, enforcePeriodicBox=False)))
    with open(path) as stream:
        state = openmm.XmlSerializer.deserialize(stream.read())
    return state.getPositions(asNumpy=True), list(state.getPeriodicBoxVectors())


def main() -> None:
    parser = argparse.ArgumentParser(description="CB7-B2 explicit-water MM -> ML/MM correction")
    parser.add_argument("--output", default="cb7_b2_fe_correct_output")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--max-time-min", type=float, default=60.0, help="wall-clock budget per leg and call, minutes")
    parser.add_argument("--target-error", type=float, default=0.3, help="ddG uncertainty target, kcal/mol")
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--n-iterations", type=int, default=2000)
    parser.add_argument("--n-switches", type=int, default=200)
    parser.add_argument("--quick", action="store_true",
                        help="smallest protocol through every step (solvent equilibration, pilot, both legs, analysis): about a minute")
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    settings = ProtocolSettings(
        n_iterations=args.n_iterations, steps_per_iteration=100, check_interval=10,
        timestep_fs=2.0 * unit.femtosecond, temperature_k=300 * unit.kelvin, pressure_atm=1.0 * unit.atmosphere,
        n_switches=args.n_switches, switching_steps=500, equilibration_steps=500, steps_between_switches=100,
        pilot_lambdas=[0.0, 0.02, 0.08, 0.25, 0.55, 1.0], pilot_samples=20, pilot_steps_per_sample=10,
        pilot_equilibration_steps=100, equilibrium_time_fraction=0.6,
        target_error_kcal_per_mol=args.target_error * unit.kilocalorie_per_mole, max_time_s=args.max_time_min * unit.minute,
        minimize=True, minimize_iterations=500, platform=args.platform, seed=args.seed,
    )
    if args.quick:
        settings = dataclasses.replace(settings, **QUICK_SETTINGS)
    torch.set_num_threads(1)
    complex_leg, solvent_leg = legs(args.output, args.seed, args.platform, QUICK_SOLVENT_NPT_STEPS if args.quick else SOLVENT_NPT_STEPS)
    results = run_correction(complex_leg, solvent_leg, settings, args.output)
    if results is None:
        return
    table = summary_table(results)
    write_json(table, os.path.join(args.output, "summary.json"))
    sys.stdout.write(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
