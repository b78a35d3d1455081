"""``openmm-ani fe-correct``: the MM -> ML/MM binding free-energy correction of one ligand.

Module-level imports are kept light (argparse only): :func:`register` is called every time
``openmm-ani`` builds its parser.
"""

import argparse
import os
import sys
from typing import Any, Dict, List, Optional

from ..simulation.inputs import IMPLICIT_SOLVENTS
from .common import CommandError


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
    p.add_argument("--lambdas", help="explicit comma-separated lambda windows from 0 to 1 (default: chosen by a pilot run)")
    p.add_argument("--n-states", type=int, help="equally spaced lambda windows instead of the pilot's schedule")
    p.add_argument("--length-per-window", type=float, default=1.0,
                   help="pilot schedule: thermodynamic length between windows, kT (default 1: neighbour overlap ~0.3)")
    p.add_argument("--pilot-samples", type=int, default=40, help="pilot: samples of dU/dlambda per pilot lambda (default 40)")
    p.add_argument("--target-error", type=float,
                   help="stop each leg when ddG's uncertainty would reach this, kcal/mol (each leg: target/sqrt(2))")
    p.add_argument("--max-time", type=duration_s, help="wall-clock budget per leg and call, set-up, pilot and analysis included, e.g. 90m, 2h, 3600s (default: none)")
    p.add_argument("--equilibrium-fraction", type=fraction, default=0.5,
                   help="share of --max-time for replica exchange when switching runs too, between 0 and 1 (default 0.5)")
    p.add_argument("--check-interval", type=int, default=10,
                   help="iterations / switches between convergence checks and checkpoints (default 10)")
    p.add_argument("--overwrite", action="store_true", help="discard an earlier run in --output instead of continuing it")
    p.add_argument("--n-iterations", type=int, default=1000, help="most replica-exchange iterations (0: skip; default 1000)")
    p.add_argument("--steps-per-iteration", type=int, default=500, help="MD steps per iteration (default 500)")
    p.add_argument("--n-switches", type=int, default=100, help="most switches per direction (0: skip; default 100)")
    p.add_argument("--switching-steps", type=int, default=5000, help="steps per switch (default 5000)")
    p.add_argument("--equilibration-steps", type=int, default=5000, help="end-state MD before switching (default 5000)")
    p.add_argument("--steps-between-switches", type=int, default=1000, help="end-state MD between switch starts (default 1000)")
    p.add_argument("--timestep", type=float, default=1.0, help="time step, fs (default 1)")
    p.add_argument("--temperature", type=float, default=298.15, help="K (default 298.15)")
    p.add_argument("--pressure", type=float, help="atm, periodic inputs only (default: NVT)")
    p.add_argument("--minimize-iterations", type=int, default=500, help="MM minimiser iterations first (0: to convergence)")
    p.add_argument("--no-minimize", action="store_true", help="start from the input coordinates as they are")
    p.add_argument("--allow-charged", action="store_true",
                   help="run a ligand whose MM charges sum to a net charge (refused otherwise: ANI-1ccx and ANI-1x "
                        "were trained on neutral molecules only)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def duration_s(text: str) -> float:
    """argparse type: a duration with an optional unit (s, m, h), in seconds."""
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    factor = scale.get(value[-1:], None)
    try:
        seconds = float(value[:-1] if factor else value) * (factor or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a duration such as 90m, 2h or 3600s, got {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return seconds


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text!r}")
    return value


def load_leg(args: argparse.Namespace, leg: str) -> Any:
    """The :class:`~openmm_ani.freeenergy.workflow.LegInput` of ``leg`` from the arguments."""
    from ..freeenergy.inputs import load_leg as load_leg_files

    return load_leg_files(
        leg, prmtop=getattr(args, f"{leg}_prmtop"), coords=getattr(args, f"{leg}_coords"),
        pdb=getattr(args, f"{leg}_pdb"), forcefield=args.forcefield, ligand_atoms=getattr(args, f"{leg}_ligand_atoms"),
        ligand_resname=args.ligand_resname,
        implicit_solvent=None if args.implicit_solvent == "none" else args.implicit_solvent,
    )


def refuse_charged_ligand(leg: Any) -> None:
    """``CommandError`` naming the charge and atoms when the leg's ligand carries a net MM charge."""
    from ..openmm.embedding.charge import charge_message, is_charged, ml_net_charge

    charge = ml_net_charge(leg.system, leg.ml_atoms)
    if is_charged(charge):
        raise CommandError(f"{leg.name} leg: {charge_message(charge, leg.ml_atoms)}; pass --allow-charged to run it anyway")


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
        lambdas=lambdas,
        schedule="equal" if args.n_states is not None else "auto",
        n_states=args.n_states if args.n_states is not None else 11,
        length_per_window=args.length_per_window,
        pilot_samples=args.pilot_samples,
        target_error_kcal_per_mol=args.target_error,
        max_time_s=args.max_time,
        equilibrium_time_fraction=args.equilibrium_fraction,
        check_interval=args.check_interval,
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
    """Run ``fe-correct``; returns the exit status (errors raise ValueError/OSError for one-line reports).

    Ctrl-C stops after the chunk of MD steps under way (a second Ctrl-C at once) with the files saved; the
    ``KeyboardInterrupt`` reaches :func:`openmm_ani.cli.main`, which exits with status 130.
    """
    settings = settings_from_args(args)
    import torch

    # The ligand's TorchForce runs inside OpenMM's CPU threads: one torch thread avoids
    # oversubscription on small ML regions.
    torch.set_num_threads(1)
    complex_leg = load_leg(args, "complex")
    solvent_leg = load_leg(args, "solvent")
    if not args.allow_charged:
        for leg in (complex_leg, solvent_leg):
            refuse_charged_ligand(leg)
    from ..freeenergy.convergence import verdict_lines
    from ..freeenergy.workflow import run_correction

    results = run_correction(complex_leg, solvent_leg, settings, args.output, args.mm_binding, progress=not args.no_progress,
                             overwrite=args.overwrite)
    if results is not None:
        lines = result_lines(results)
        lines.extend(verdict_lines(results["verdict"]))
        lines.append(f"results: {os.path.join(args.output, 'results.json')}")
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def result_lines(results: Dict[str, Any]) -> List[str]:
    """The legs (the leg's estimator first, then TI and BAR beside it) and the correction, kcal/mol.

    An estimate without an error estimate (too few samples) reads ``"MBAR -1.234 (not enough samples)"``.
    """
    lines = []
    for name in ("complex", "solvent"):
        leg = results["legs"][name]
        s = leg["summary"]
        key = {"MBAR": "mbar", "BAR": "bar"}.get(s["estimator"], "mbar")
        parts = [_estimate(s["estimator"], s["delta_g_kcal_per_mol"], s["d_delta_g_kcal_per_mol"], s.get("error_reason"))]
        for other, label in (("ti", "TI"), ("bar", "BAR")):
            if f"{other}_kcal_per_mol" in s and other != key:
                text = _estimate(label, s[f"{other}_kcal_per_mol"], s[f"{other}_error_kcal_per_mol"], s.get(f"{other}_error_reason"))
                if other == "ti" and _finite(s.get("ti_discretisation_kcal_per_mol")):
                    text += f" (discretisation {_number(s['ti_discretisation_kcal_per_mol'])})"
                parts.append(text)
        lines.append(f"dG {name} (MM->ML/MM): {', '.join(parts)} kcal/mol ({len(leg['lambdas'])} windows, "
                     f"{leg['wall_time_s']:.0f} s)")
    c = results["correction"]
    model = c.get("ddg_model_spread_kcal_per_mol")
    if _finite(c["d_ddg_kcal_per_mol"]) and _finite(model):  # statistical, then the spread over ensemble members
        lines.append(f"ddG correction: {_number(c['ddg_kcal_per_mol'])} +- {_number(c['d_ddg_kcal_per_mol'])} +- {_number(model)} "
                     "kcal/mol (+- stat +- model)")
    elif _finite(c["d_ddg_kcal_per_mol"]):
        lines.append(f"ddG correction: {_number(c['ddg_kcal_per_mol'])} +- {_number(c['d_ddg_kcal_per_mol'])} kcal/mol")
    else:  # error_reason: "complex: not enough samples: 1 switch(es) ...; solvent: ..."
        parts = [part.split(": ") for part in (c.get("error_reason") or "").split("; ") if ": " in part]
        why = "; ".join(f"{fields[1]} in the {fields[0]} leg" for fields in parts) or "no error estimate"
        lines.append(f"ddG correction: {_number(c['ddg_kcal_per_mol'])} kcal/mol ({why})")
    if "corrected_binding_kcal_per_mol" in c:
        lines.append(f"corrected binding free energy: {_number(c['corrected_binding_kcal_per_mol'])} kcal/mol")
    from ..freeenergy.model_uncertainty import disagreement_line

    lines.extend(f"model {disagreement_line(name, results['legs'][name].get('model_uncertainty') or {'reason': 'not computed'})}"
                 for name in ("complex", "solvent"))
    return lines


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == value and abs(value) != float("inf")


def _estimate(label: str, value: Any, error: Any, reason: Optional[str]) -> str:
    """``"MBAR 1.234 +- 0.100"``, or ``"MBAR 1.234 (not enough samples)"`` without an error estimate."""
    if _finite(error):
        return f"{label} {_number(value)} +- {_number(error)}"
    return f"{label} {_number(value)} ({(reason or 'no error estimate').split(':')[0]})"


def _number(value: Any) -> str:
    return "nan" if value is None or value != value else f"{value:.3f}"
