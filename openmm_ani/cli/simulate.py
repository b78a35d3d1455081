"""``openmm-ani simulate``: Langevin MD with ANI (pure ANI, or ML/MM with ``--ml-selection``).

Runs are resumable: ``<output>.chk`` holds the state at the last report with the settings and
input fingerprints it depends on; ``--resume`` continues it (``--steps`` is the total), and a
rerun into existing outputs without ``--resume`` or ``--overwrite`` stops with an error.
Ctrl-C saves the state reached and exits with status 130.
"""

import argparse
import os
import sys
from typing import Any, Dict, List, Optional

from ..simulation.inputs import IMPLICIT_SOLVENTS
from ..argtypes import non_negative_int, positive_int
from .common import EXIT_INTERRUPTED, PROG, CommandError, emit, model_arguments, potential_from_args


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand."""
    simulate = subparsers.add_parser("simulate", help="Langevin MD with ANI (pure ANI, or ML/MM with --ml-selection)")
    simulate.add_argument("input", help="PDB, mol2, or inpcrd/rst7 with --top")
    simulate.add_argument("--top", help="topology file (prmtop: also the MM force field for --ml-selection)")
    simulate.add_argument("--ml-selection", help="mdtraj selection of the ML atoms (rest MM; needs --top prmtop or --forcefield)")
    simulate.add_argument("--forcefield", nargs="+", help="OpenMM force field XML files for the MM part")
    simulate.add_argument("--implicit-solvent", choices=list(IMPLICIT_SOLVENTS), help="implicit solvent of the prmtop MM part")
    simulate.add_argument("--periodic", choices=["auto", "yes", "no"], default="auto")
    simulate.add_argument("--steps", type=non_negative_int, default=1000,
                          help="total MD steps of the run (with --resume: the total to reach; default 1000)")
    simulate.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    simulate.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    simulate.add_argument("--friction", type=float, default=1.0, help="1/ps (default 1)")
    simulate.add_argument("--minimize", type=non_negative_int, default=0, metavar="N", help="minimise first, at most N iterations")
    simulate.add_argument("--platform", default="CPU", help="OpenMM platform (default CPU)")
    simulate.add_argument("--threads", type=non_negative_int, default=0, help="CPU platform threads (default: OpenMM's choice)")
    simulate.add_argument("--torch-threads", type=positive_int, default=1,
                          help="torch intra-op threads (default 1: small ML regions gain nothing from more, "
                               "and they would compete with OpenMM's threads)")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--report-interval", type=positive_int, default=100)
    simulate.add_argument("--disagreement-threshold", type=float, default=None,
                          help="warn when the ensemble energy std exceeds this (kJ/mol)")
    simulate.add_argument("--output", default="openmm-ani-md",
                          help="output prefix (.dcd, .csv, .disagreement.csv, and the checkpoint .chk)")
    again = simulate.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --output from its checkpoint (same settings and inputs)")
    again.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --output")
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    model_arguments(simulate, "single")
    simulate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Langevin MD with progress bar, DCD and state data output; prints ns/day."""
    import torch

    from ..openmm import region_treatment
    from ..simulation import check_positions, create_mm_system, load_structure, run_md, select_atoms
    from ..simulation.md import MDSettings, prepare_job

    settings = MDSettings(
        steps=args.steps, timestep_fs=args.timestep, temperature_k=args.temperature, friction_per_ps=args.friction,
        minimize_iterations=args.minimize, platform=args.platform, threads=args.threads, seed=args.seed,
        report_interval=args.report_interval, output=args.output, disagreement_threshold=args.disagreement_threshold,
    )
    settings.validate()
    torch.set_num_threads(args.torch_threads)
    traj = load_structure(args.input, args.top)
    potential = potential_from_args(args)
    atoms = select_atoms(traj, args.ml_selection)
    if atoms is None:
        unused = [option for option, value in (("--implicit-solvent", args.implicit_solvent), ("--forcefield", args.forcefield))
                  if value]
        if unused:
            raise CommandError(f"{' and '.join(unused)} set the MM part of an ML/MM run (with --ml-selection); "
                               f"{args.input} runs with ANI alone")
    check_positions(traj.xyz[0], atoms, args.input)
    inputs = input_fingerprints(args, traj.n_atoms, atoms)
    prepare_job(settings, {**settings.determining(), **inputs}, args.resume, args.overwrite)  # fail before the slow part
    treatment = region_treatment(traj.unitcell_vectors is not None, atoms is not None, args.periodic)
    topology = traj.topology.to_openmm()
    topology.setPeriodicBoxVectors(traj.openmm_boxes(0) if treatment.uses_box else None)
    if atoms is None:
        system = potential.createSystem(topology)
    else:
        prmtop = args.top if args.top is not None and args.top.lower().endswith((".prmtop", ".parm7")) else None
        mm_system = create_mm_system(topology, prmtop=prmtop, forcefield=args.forcefield, implicit_solvent=args.implicit_solvent)
        system = potential.createMixedSystem(topology, mm_system, atoms)
    result = run_md(topology, system, traj.openmm_positions(0), settings, potential, ml_atoms=atoms,
                    progress=not args.quiet, inputs=inputs,
                    resume=args.resume, overwrite=args.overwrite)
    paths = settings.paths()
    if result.interrupted:
        emit(f"{PROG}: interrupted at step {result.last_step} of {settings.steps}; state saved in "
             f"{paths['checkpoint']}: continue with the same command and --resume", sys.stderr)
        return EXIT_INTERRUPTED
    if result.first_step:
        emit(f"resumed at step {result.first_step}")
    emit(f"initial potential energy: {result.initial_energy:.4f} kJ/mol")
    emit(f"final potential energy: {result.final_energy:.4f} kJ/mol")
    if result.steps:
        emit(f"{result.steps} steps in {result.seconds:.2f} s: {result.ms_per_step:.3f} ms/step, {result.ns_per_day:.3f} ns/day")
    emit(f"trajectory: {paths['trajectory']}  state data: {paths['state_data']}  disagreement: {paths['disagreement']}"
         f"  checkpoint: {paths['checkpoint']}")
    return 0


def input_fingerprints(args: argparse.Namespace, num_atoms: int, atoms: Optional[List[int]]) -> Dict[str, Any]:
    """What the trajectory depends on besides the MD settings: input files by hash, model, selection, MM options."""
    from ..files import sha256_of
    from ..formats.registry import model_fingerprint

    def by_content(path: str) -> str:
        return "sha256:" + sha256_of(path) if os.path.isfile(path) else path  # a force field shipped with OpenMM

    return {
        "input": by_content(args.input),
        "top": None if args.top is None else by_content(args.top),
        "atoms": num_atoms,
        "ml_selection": args.ml_selection,
        "ml_atoms": None if atoms is None else len(atoms),
        "forcefield": None if not args.forcefield else [by_content(f) for f in args.forcefield],
        "implicit_solvent": args.implicit_solvent,
        "periodic": args.periodic,
        "model": model_fingerprint(args.model),
        "model_index": args.model_index,
        "precision": args.precision,
    }
