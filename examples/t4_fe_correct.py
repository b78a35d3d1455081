"""MM -> ML/MM (ANI-1ccx) binding free-energy correction of p-xylene in T4 lysozyme L99A.

Complex and solvent legs in implicit solvent (AMBER ff96/GAFF prmtops shipped with openmmtools,
OBC2 GB). The complex's GB and nonbonded terms use a 1.0 nm cutoff (``CutoffNonPeriodic``): on
the 2-core development CPU the complex's MM costs 4-5x less than with NoCutoff (measured
60-90 vs 290-350 ms/step on the loaded machine, about 110 ms/step NoCutoff when idle); the
cutoff changes the MM model of the environment, which both end states share.

The windows come from a pilot run, each leg runs until the ddG uncertainty target or the
time budget, and the run resumes from ``output`` (run it again to extend). The summary
(per leg MBAR, BAR, uncertainty, smallest overlap, wall time, verdict) is printed and written to
``<output>/summary.json``. The same run from the command line (NoCutoff GB):

    openmm-ani fe-correct --complex-prmtop complex.prmtop --complex-coords complex-minimized.crd \\
        --solvent-prmtop ligand.prmtop --solvent-coords ligand-minimized.crd --ligand-resname TMP \\
        --implicit-solvent OBC2 --output t4_fe --target-error 0.3 --max-time 2h

Usage: python examples/t4_fe_correct.py [--output DIR] [--seed N] [--max-time-min M] [--target-error E] [--equilibrium-fraction F] [--platform P] [--quick]

``--quick`` runs the smallest protocol that still goes through every step (pilot, 2-3 windows,
replica exchange and switching in both legs, analysis, ``results.json`` and ``summary.json``) in
about a minute; its numbers are not converged.
"""

import argparse
import dataclasses
import json
import os
import sys
import openmmtools
import torch
from openmm import app, unit

from openmm_ani.freeenergy.results import summary_table, write_json
from openmm_ani.freeenergy.settings import ProtocolSettings
from openmm_ani.freeenergy.workflow import LegInput, run_correction

DATA = os.path.join(os.path.dirname(openmmtools.__file__), "data", "T4-lysozyme-L99A-implicit")
#: MM binding free energy to correct (kcal/mol): here the experimental value for p-xylene in
#: T4 L99A (Morton & Matthews 1995, -4.60 kcal/mol) stands in for an MM FEP result.
MM_BINDING_KCAL_PER_MOL = -4.60
#: GB/nonbonded cutoff of the complex.
GB_CUTOFF = 1.0 * unit.nanometer
#: ``--quick``: a few steps of every part of the protocol (a smoke test, not a result).
QUICK_SETTINGS = dict(
    n_iterations=4, steps_per_iteration=5, check_interval=2, n_switches=2, switching_steps=10, equilibration_steps=10,
    steps_between_switches=5, pilot_lambdas=[0.0, 0.5, 1.0], pilot_samples=3, pilot_steps_per_sample=2,
    pilot_equilibration_steps=2, max_states=3, n_bootstrap=20,
)


def leg(name: str, prmtop_file: str, crd_file: str, cutoff: bool) -> LegInput:
    prmtop = app.AmberPrmtopFile(os.path.join(DATA, prmtop_file))
    crd = app.AmberInpcrdFile(os.path.join(DATA, crd_file))
    method = app.CutoffNonPeriodic if cutoff else app.NoCutoff
    system = prmtop.createSystem(nonbondedMethod=method, nonbondedCutoff=GB_CUTOFF, constraints=app.HBonds, implicitSolvent=app.OBC2)
    ligand = [a.index for a in prmtop.topology.atoms() if a.residue.name == "TMP"]
    files = {"prmtop": os.path.join(DATA, prmtop_file), "coords": os.path.join(DATA, crd_file)}
    return LegInput(name, prmtop.topology, system, crd.getPositions(asNumpy=True), ligand, files=files)


def main() -> None:
    parser = argparse.ArgumentParser(description="T4 L99A + p-xylene MM -> ML/MM correction")
    parser.add_argument("--output", default="t4_fe_correct_output")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--max-time-min", type=float, default=60.0, help="wall-clock budget per leg and call, minutes")
    parser.add_argument("--target-error", type=float, default=0.3, help="ddG uncertainty target, kcal/mol")
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--n-iterations", type=int, default=2000)
    parser.add_argument("--equilibrium-fraction", type=float, default=0.6,
                        help="share of each leg's sampling time for replica exchange, the rest for switching "
                             "(a rerun whose replica exchange has enough samples gives switching more)")
    parser.add_argument("--quick", action="store_true",
                        help="smallest protocol through every step (pilot, 2-3 windows, both legs, analysis): about a minute")
    args = parser.parse_args()
    settings = ProtocolSettings(
        n_iterations=args.n_iterations,
        steps_per_iteration=100,
        check_interval=10,
        timestep_fs=2.0 * unit.femtosecond,  # bonds to H stay constrained at every lambda (remove_constraints=False)
        temperature_k=300 * unit.kelvin,
        n_switches=200,
        # 0.5 ps switches (1 ps before): the pilot's thermodynamic length is ~1.1 kT per leg, and
        # 1 ps switches gave a complex BAR error of 0.03 kcal/mol from 9 switches per direction, so
        # the work is far from dissipative; halving it halves the cost of the 50 switches the verdict needs
        switching_steps=250,
        equilibration_steps=500,
        steps_between_switches=100,
        pilot_lambdas=[0.0, 0.02, 0.08, 0.25, 0.55, 1.0],
        pilot_samples=20,
        pilot_steps_per_sample=10,
        pilot_equilibration_steps=100,
        target_error_kcal_per_mol=args.target_error * unit.kilocalorie_per_mole,
        max_time_s=args.max_time_min * unit.minute,
        equilibrium_time_fraction=args.equilibrium_fraction,
        minimize=False,  # the shipped coordinates are minimised
        platform=args.platform,
        seed=args.seed,
    )
    if args.quick:
        settings = dataclasses.replace(settings, **QUICK_SETTINGS)
    torch.set_num_threads(1)  # the ligand's TorchForce runs inside OpenMM's threads
    results = run_correction(
        leg("complex", "complex.prmtop", "complex-minimized.crd", cutoff=True),
        leg("solvent", "ligand.prmtop", "ligand-minimized.crd", cutoff=False),
        settings,
        args.output,
        MM_BINDING_KCAL_PER_MOL,
    )
    if results is None:  # an MPI rank other than 0
        return
    table = summary_table(results)
    write_json(table, os.path.join(args.output, "summary.json"))
    json.dump(table, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
