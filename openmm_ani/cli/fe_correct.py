"""``openmm-ani fe-correct``: the MM -> ML/MM binding free-energy correction of one ligand.

Module-level imports are kept light (argparse only): :func:`register` is called every time
``openmm-ani`` builds its parser.
"""

import argparse
import os
import sys
from typing import Any

from ..simulation.inputs import IMPLICIT_SOLVENTS


def register(subparsers: Any) -> None:
    """Add the ``fe-correct`` subcommand to ``openmm-ani``'s subparsers."""
    p = subparsers.add_parser(
        "fe-correct",
        help="MM -> ML/MM (ANI) binding free-energy correction of one ligand",
        description=(
            "Computes dG(MM -> ML/MM) of the ligand in the complex and in solvent (replica exchange + MBAR "
            "and/or nonequilibrium switching + BAR) and the correction ddG = dG_complex - dG_solvent "
            "(kcal/mol), added to --mm-binding when given. One ligand per call; everything goes to --output. "
            "Run under mpirun to spread the replicas over MPI ranks."
        ),
    )
    for leg in ("complex", "solvent"):
        g = p.add_argument_group(f"{leg} input (prmtop + coordinates, or PDB + --forcefield)")
        g.add_argument(f"--{leg}-prmtop", help=f"AMBER prmtop of the {leg}")
        g.add_argument(f"--{leg}-coords", help=f"coordinates of the {leg} (inpcrd/rst7/crd with --{leg}-prmtop)")
        g.add_argument(f"--{leg}-pdb", help=f"PDB of the {leg} (with --forcefield)")
        g.add_argument(f"--{leg}-ligand-atoms", help="comma-separated 0-based ligand atom indices (instead of --ligand-resname)")
    p.add_argument("--forcefield", nargs="+", help="OpenMM force-field XML files for PDB inputs")
    p.add_argument("--ligand-resname", help="residue name of the ligand (both legs)")
    p.add_argument("--implicit-solvent", choices=("none",) + IMPLICIT_SOLVENTS, default="none", help="GB model for non-periodic prmtop inputs")
    p.add_argument("--output", required=True, help="output directory (resumes what it already holds)")
    p.add_argument("--mm-binding", type=float, help="MM binding free energy to correct, kcal/mol")
    p.add_argument("--model", default="ani1ccx", help="ANI model name or file (default ani1ccx)")
    p.add_argument("--precision", choices=("single", "double"), default="single")
    p.add_argument("--platform", help="OpenMM platform (default: fastest available)")
    p.add_argument("--n-states", type=int, default=11, help="equally spaced lambda windows (default 11)")
    p.add_argument("--lambdas", help="explicit comma-separated lambda windows from 0 to 1 (overrides --n-states)")
    p.add_argument("--n-iterations", type=int, default=1000, help="replica-exchange iterations (0: skip; default 1000)")
    p.add_argument("--steps-per-iteration", type=int, default=500, help="MD steps per iteration (default 500)")
    p.add_argument("--n-switches", type=int, default=100, help="switches per direction (0: skip; default 100)")
    p.add_argument("--switching-steps", type=int, default=5000, help="steps per switch (default 5000)")
    p.add_argument("--equilibration-steps", type=int, default=5000, help="end-state MD before switching (default 5000)")
    p.add_argument("--steps-between-switches", type=int, default=1000, help="end-state MD between switch starts (default 1000)")
    p.add_argument("--timestep", type=float, default=1.0, help="time step, fs (default 1)")
    p.add_argument("--temperature", type=float, default=298.15, help="K (default 298.15)")
    p.add_argument("--pressure", type=float, help="atm, periodic inputs only (default: NVT)")
    p.add_argument("--minimize-iterations", type=int, default=500, help="MM minimiser iterations first (0: to convergence)")
    p.add_argument("--no-minimize", action="store_true", help="start from the input coordinates as they are")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def load_leg(args: argparse.Namespace, leg: str) -> Any:
    """The :class:`~openmm_ani.freeenergy.workflow.LegInput` of ``leg`` from the arguments."""
    from ..freeenergy.inputs import load_leg as load_leg_files

    return load_leg_files(
        leg, prmtop=getattr(args, f"{leg}_prmtop"), coords=getattr(args, f"{leg}_coords"),
        pdb=getattr(args, f"{leg}_pdb"), forcefield=args.forcefield, ligand_atoms=getattr(args, f"{leg}_ligand_atoms"),
        ligand_resname=args.ligand_resname,
        implicit_solvent=None if args.implicit_solvent == "none" else args.implicit_solvent,
    )


def settings_from_args(args: argparse.Namespace) -> Any:
    """:class:`~openmm_ani.freeenergy.settings.ProtocolSettings` from the arguments (validated)."""
    from ..freeenergy.settings import ProtocolSettings

    lambdas = None
    if args.lambdas is not None:
        try:
            lambdas = [float(v) for v in args.lambdas.split(",")]
        except ValueError:
            raise ValueError(f"--lambdas must be comma-separated numbers, got {args.lambdas!r}") from None
    settings = ProtocolSettings(
        n_states=args.n_states,
        lambdas=lambdas,
        n_iterations=args.n_iterations,
        steps_per_iteration=args.steps_per_iteration,
        timestep_fs=args.timestep,
        temperature_k=args.temperature,
        pressure_atm=args.pressure,
        n_switches=args.n_switches,
        switching_steps=args.switching_steps,
        equilibration_steps=args.equilibration_steps,
        steps_between_switches=args.steps_between_switches,
        model=args.model,
        precision=args.precision,
        platform=args.platform,
        seed=args.seed,
        minimize=not args.no_minimize,
        minimize_iterations=args.minimize_iterations,
    )
    settings.validate()
    return settings


def run(args: argparse.Namespace) -> int:
    """Run ``fe-correct``; returns the exit status (errors raise ValueError/OSError for one-line reports)."""
    settings = settings_from_args(args)
    import torch

    # ANI runs in a Python callback between OpenMM's CPU threads: one torch thread avoids
    # oversubscription (measured: 200 ms -> 5 ms per ANI call for an 18-atom ligand).
    torch.set_num_threads(1)
    complex_leg = load_leg(args, "complex")
    solvent_leg = load_leg(args, "solvent")
    from ..freeenergy.workflow import run_correction

    results = run_correction(complex_leg, solvent_leg, settings, args.output, args.mm_binding, progress=not args.no_progress)
    if results is not None:
        c = results["correction"]
        lines = [
            f"dG complex (MM->ML/MM): {results['legs']['complex']['summary']['delta_g_kcal_per_mol']:.3f} kcal/mol",
            f"dG solvent (MM->ML/MM): {results['legs']['solvent']['summary']['delta_g_kcal_per_mol']:.3f} kcal/mol",
            f"ddG correction: {c['ddg_kcal_per_mol']:.3f} +- {c['d_ddg_kcal_per_mol']:.3f} kcal/mol",
        ]
        if "corrected_binding_kcal_per_mol" in c:
            lines.append(f"corrected binding free energy: {c['corrected_binding_kcal_per_mol']:.3f} kcal/mol")
        lines.append(f"results: {os.path.join(args.output, 'results.json')}")
        sys.stdout.write("\n".join(lines) + "\n")
    return 0
