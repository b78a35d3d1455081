"""The ``openmm-ani`` command line (also ``python -m openmm_ani``).

Subcommands: ``energy`` (single points / trajectory rescoring with ensemble disagreement),
``simulate`` (Langevin MD), ``export`` (TorchScript file for openmm-torch), ``benchmark``;
``fe-correct`` (:mod:`openmm_ani.freeenergy.cli`) and ``train`` (:mod:`openmm_ani.training.cli`)
register themselves when those subpackages are present.

Expected failures (missing or unreadable files, bad arguments, unsupported elements, NaN
coordinates) end with a one-line ``openmm-ani: error: ...`` on stderr and exit status 1.
Heavy imports happen inside the subcommands so ``--help`` stays fast.
"""

import argparse
import csv
import importlib
import os
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, TextIO, Tuple

#: Subpackages that add their own subcommands through ``register(subparsers)``.
PLUGIN_MODULES: Tuple[str, ...] = ("openmm_ani.freeenergy.cli", "openmm_ani.training.cli")

PROG = "openmm-ani"


class CommandError(Exception):
    """A user-facing error of a subcommand (reported as one line, exit status 1)."""


def emit(text: str = "", stream: Optional[TextIO] = None) -> None:
    """Write one line of command output (stdout unless ``stream`` is given)."""
    out = sys.stdout if stream is None else stream
    out.write(text + "\n")
    out.flush()


# ----------------------------------------------------------------------------- inputs


def require_file(path: str, what: str = "input file") -> str:
    """``path`` if it is an existing file, else ``FileNotFoundError`` naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def load_structure(path: str, topology: Optional[str] = None) -> Any:
    """Load a structure or trajectory with mdtraj.

    Parameters
    ----------
    path
        PDB, mol2, inpcrd/rst7 (with ``topology``), or any trajectory format mdtraj reads.
    topology
        Topology file (prmtop, PDB, ...) for formats without one.

    Returns
    -------
    mdtraj.Trajectory
        Positions in nm, unit cells in nm.

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        For missing or unreadable files.
    """
    require_file(path)
    if topology is not None:
        require_file(topology, "topology file")
    import mdtraj

    try:
        if topology is None:
            return mdtraj.load(path)
        if path.lower().endswith(".crd") and topology.lower().endswith((".prmtop", ".parm7")):
            # Amber's .crd is usually a restart/inpcrd file, which mdtraj reads as mdcrd by extension
            return mdtraj.load_restrt(path, top=topology)
        return mdtraj.load(path, top=topology)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise CommandError(f"cannot read {path}" + (f" with topology {topology}" if topology else "") + f": {error}")


def select_atoms(traj: Any, selection: Optional[str]) -> Optional[List[int]]:
    """Atom indices of an mdtraj selection (``None`` when ``selection`` is ``None``)."""
    if selection is None:
        return None
    try:
        atoms = [int(i) for i in traj.topology.select(selection)]
    except (ValueError, SyntaxError, KeyError, TypeError) as error:
        raise CommandError(f"bad atom selection {selection!r}: {error}")
    if not atoms:
        raise CommandError(f"atom selection {selection!r} matches no atoms")
    return atoms


def atomic_numbers_of(traj: Any, atoms: Optional[Sequence[int]]) -> List[int]:
    """Atomic numbers (0 for atoms without element) of ``atoms`` (all when ``None``)."""
    indices = range(traj.n_atoms) if atoms is None else atoms
    result = []
    for i in indices:
        element = traj.topology.atom(i).element
        result.append(0 if element is None else int(element.number))
    return result


def periodic_mode(traj: Any, atoms: Optional[Sequence[int]], option: str) -> Tuple[bool, bool]:
    """``(periodic, make_whole)`` for the ``--periodic`` option (auto: box present)."""
    has_box = traj.unitcell_vectors is not None
    if option == "yes" and not has_box:
        raise CommandError("--periodic yes but the input has no box vectors")
    use_box = has_box if option == "auto" else option == "yes"
    return (use_box and atoms is None, use_box and atoms is not None)


def model_arguments(parser: argparse.ArgumentParser, precision: str) -> None:
    """Add ``--model``, ``--model-index`` and ``--precision``."""
    parser.add_argument("--model", default="ani1ccx", help="model name (ani1ccx, ani1x) or model file (default ani1ccx)")
    parser.add_argument("--model-index", type=int, default=None, help="use one ensemble member (default: ensemble)")
    parser.add_argument("--precision", choices=["single", "double"], default=precision, help=f"(default {precision})")


# ----------------------------------------------------------------------------- energy


def cmd_energy(args: argparse.Namespace) -> int:
    """Per-frame ANI energy and ensemble disagreement."""
    import numpy as np

    from .potential import ANIPotential
    from .reporter import DisagreementEvaluator
    from .units import HARTREE_TO_KJ_PER_MOL

    traj = load_structure(args.input, args.top)
    atoms = select_atoms(traj, args.ml_selection)
    periodic, make_whole = periodic_mode(traj, atoms, args.periodic)
    potential = ANIPotential(args.model, model_index=args.model_index, precision=args.precision)
    evaluator = DisagreementEvaluator(
        potential.model, atomic_numbers_of(traj, atoms), atoms=atoms, periodic=periodic, make_whole=make_whole
    )
    header = ["frame", "energy_kJ/mol", "energy_Ha", "energy_std_kJ/mol", "force_spread_kJ/mol/nm"]
    rows = []
    for frame in range(traj.n_frames):
        xyz = np.asarray(traj.xyz[frame], dtype=np.float64)
        bad = np.nonzero(~np.isfinite(xyz).all(axis=1))[0]
        if bad.size:
            raise CommandError(f"frame {frame} of {args.input}: coordinates of atoms {bad.tolist()} are NaN or infinite")
        box = traj.unitcell_vectors[frame] if (periodic or make_whole) else None
        result = evaluator(xyz, box, forces=not args.no_forces)
        rows.append([frame, result.energy, result.energy / HARTREE_TO_KJ_PER_MOL, result.energy_std, result.force_spread])
    if args.csv is not None:
        tmp = args.csv + ".tmp"
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                writer.writerow([row[0]] + [repr(float(v)) for v in row[1:]])
        os.replace(tmp, args.csv)
    if args.csv is None or args.verbose:
        emit(f"{header[0]:>6} {header[1]:>18} {header[2]:>16} {header[3]:>18} {header[4]:>24}")
        for row in rows:
            emit(f"{row[0]:>6d} {row[1]:>18.4f} {row[2]:>16.8f} {row[3]:>18.4f} {row[4]:>24.4f}")
    else:
        emit(f"wrote {len(rows)} frame(s) to {args.csv}")
    return 0


# ----------------------------------------------------------------------------- simulate


def build_simulation_system(args: argparse.Namespace, traj: Any, potential: Any) -> Tuple[Any, Any, Optional[List[int]]]:
    """``(system, topology, ml_atoms)`` for ``simulate``: pure ANI or ML/MM when ``--ml-selection``."""
    topology = traj.topology.to_openmm()
    if traj.unitcell_vectors is not None and args.periodic != "no":
        topology.setPeriodicBoxVectors(traj.openmm_boxes(0))
    elif args.periodic == "yes":
        raise CommandError("--periodic yes but the input has no box vectors")
    else:
        topology.setPeriodicBoxVectors(None)
    atoms = select_atoms(traj, args.ml_selection)
    if atoms is None:
        return potential.createSystem(topology), topology, None
    try:
        importlib.import_module("openmm_ani.mixed")
    except ModuleNotFoundError as error:
        if error.name != "openmm_ani.mixed":
            raise
        raise CommandError("--ml-selection needs mixed ML/MM systems (openmm_ani.mixed), not available here")
    mm_system = create_mm_system(args, topology)
    return potential.createMixedSystem(topology, mm_system, atoms), topology, atoms


def create_mm_system(args: argparse.Namespace, topology: Any) -> Any:
    """The MM system of the input: from the prmtop (``--top``) or from ``--forcefield`` files."""
    from openmm import app

    periodic = topology.getPeriodicBoxVectors() is not None
    method = app.PME if periodic else app.NoCutoff
    if args.top is not None and args.top.lower().endswith((".prmtop", ".parm7")):
        prmtop = app.AmberPrmtopFile(args.top)
        solvent = None if args.implicit_solvent is None else getattr(app, args.implicit_solvent)
        return prmtop.createSystem(nonbondedMethod=method, constraints=app.HBonds, implicitSolvent=solvent)
    if not args.forcefield:
        raise CommandError("--ml-selection needs an MM force field: give --top FILE.prmtop or --forcefield XML ...")
    forcefield = app.ForceField(*args.forcefield)
    return forcefield.createSystem(topology, nonbondedMethod=method, constraints=app.HBonds)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Langevin MD with progress bar, DCD and state data output; prints ns/day."""
    import openmm
    from openmm import app, unit
    from tqdm import tqdm

    from .potential import ANIPotential
    from .reporter import EnsembleDisagreementReporter

    if args.steps < 0 or args.report_interval < 1:
        raise CommandError("--steps must be >= 0 and --report-interval >= 1")
    if args.torch_threads < 1:
        raise CommandError("--torch-threads must be >= 1")
    import torch

    torch.set_num_threads(args.torch_threads)
    traj = load_structure(args.input, args.top)
    potential = ANIPotential(args.model, model_index=args.model_index, precision=args.precision)
    system, topology, atoms = build_simulation_system(args, traj, potential)
    integrator = openmm.LangevinMiddleIntegrator(
        args.temperature * unit.kelvin, args.friction / unit.picosecond, args.timestep * unit.femtosecond
    )
    integrator.setRandomNumberSeed(args.seed)
    platform = openmm.Platform.getPlatformByName(args.platform)
    properties = {"Threads": str(args.threads)} if (args.platform == "CPU" and args.threads) else {}
    simulation = app.Simulation(topology, system, integrator, platform, properties)
    simulation.context.setPositions(traj.openmm_positions(0))
    if args.minimize:
        simulation.minimizeEnergy(maxIterations=args.minimize)
    simulation.context.setVelocitiesToTemperature(args.temperature * unit.kelvin, args.seed)
    prefix = args.output
    directory = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output directory does not exist: {directory}")
    simulation.reporters.append(app.DCDReporter(prefix + ".dcd", args.report_interval))
    simulation.reporters.append(
        app.StateDataReporter(
            prefix + ".csv", args.report_interval, step=True, time=True, potentialEnergy=True,
            kineticEnergy=True, totalEnergy=True, temperature=True, speed=True,
        )
    )
    disagreement = EnsembleDisagreementReporter(
        prefix + ".disagreement.csv", args.report_interval, topology, potential, ml_atoms=atoms,
        threshold=args.disagreement_threshold, forces=False,
    )
    simulation.reporters.append(disagreement)
    state = simulation.context.getState(getEnergy=True)
    emit(f"initial potential energy: {state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole):.4f} kJ/mol")
    chunk = max(1, min(args.report_interval, args.steps or 1))
    done = 0
    start = time.perf_counter()
    with tqdm(total=args.steps, unit="step", disable=args.quiet, file=sys.stderr) as bar:
        while done < args.steps:
            n = min(chunk, args.steps - done)
            simulation.step(n)
            done += n
            bar.update(n)
    elapsed = time.perf_counter() - start
    disagreement.close()
    state = simulation.context.getState(getEnergy=True)
    emit(f"final potential energy: {state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole):.4f} kJ/mol")
    if done:
        ms_per_step = 1000.0 * elapsed / done
        ns_per_day = done * args.timestep * 1e-6 / (elapsed / 86400.0)
        emit(f"{done} steps in {elapsed:.2f} s: {ms_per_step:.3f} ms/step, {ns_per_day:.3f} ns/day")
    emit(f"trajectory: {prefix}.dcd  state data: {prefix}.csv  disagreement: {prefix}.disagreement.csv")
    return 0


# ----------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    """Write the TorchScript file of the ANI force."""
    from .potential import ANIPotential

    if (args.input is None) == (args.elements is None):
        raise CommandError("give exactly one of --input STRUCTURE and --elements SYMBOLS")
    potential = ANIPotential(args.model, model_index=args.model_index, precision=args.precision)
    atoms: Optional[List[int]] = None
    make_whole = False
    if args.input is not None:
        traj = load_structure(args.input, args.top)
        atoms = select_atoms(traj, args.ml_selection)
        numbers = atomic_numbers_of(traj, atoms)
        periodic, make_whole = periodic_mode(traj, atoms, args.periodic)
    else:
        from .species import atomic_number_of

        numbers = [atomic_number_of(symbol.strip()) for symbol in args.elements.split(",") if symbol.strip()]
        periodic = args.periodic == "yes"
    path = potential.export(args.output, atomic_numbers=numbers, periodic=periodic, atoms=atoms, make_whole=make_whole)
    emit(f"wrote {path}: {len(numbers)} ML atoms, {potential.name} ({potential.precision} precision)")
    if periodic or make_whole:
        emit("periodic force: call setUsesPeriodicBoundaryConditions(True) on the TorchForce")
    return 0


# ----------------------------------------------------------------------------- benchmark


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Run :mod:`openmm_ani.benchmark`."""
    from .benchmark import run_benchmarks

    return run_benchmarks(
        cases=args.cases, steps=args.steps, threads=args.threads, openmmml=not args.no_openmmml,
        precision=args.precision, out=sys.stdout,
    )


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands (including registered plugins)."""
    parser = argparse.ArgumentParser(prog=PROG, description="ANI neural-network potentials for OpenMM")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    energy = sub.add_parser("energy", help="ANI energy and ensemble disagreement of structures or trajectory frames")
    energy.add_argument("input", help="PDB, mol2, inpcrd/rst7 (with --top) or trajectory (with --top)")
    energy.add_argument("--top", help="topology file (prmtop, PDB, ...) for coordinate/trajectory inputs")
    energy.add_argument("--ml-selection", help="mdtraj selection of the atoms to evaluate (default: all)")
    energy.add_argument("--periodic", choices=["auto", "yes", "no"], default="auto",
                        help="use the box vectors (auto: when the input has them)")
    energy.add_argument("--csv", help="write a CSV file instead of the table")
    energy.add_argument("--verbose", action="store_true", help="print the table also with --csv")
    energy.add_argument("--no-forces", action="store_true", help="skip the force spread (faster)")
    model_arguments(energy, "double")
    energy.set_defaults(func=cmd_energy)

    simulate = sub.add_parser("simulate", help="Langevin MD with ANI (pure ANI, or ML/MM with --ml-selection)")
    simulate.add_argument("input", help="PDB, mol2, or inpcrd/rst7 with --top")
    simulate.add_argument("--top", help="topology file (prmtop: also the MM force field for --ml-selection)")
    simulate.add_argument("--ml-selection", help="mdtraj selection of the ML atoms (rest MM; needs --top prmtop or --forcefield)")
    simulate.add_argument("--forcefield", nargs="+", help="OpenMM force field XML files for the MM part")
    simulate.add_argument("--implicit-solvent", choices=["OBC1", "OBC2", "GBn", "GBn2", "HCT"],
                          help="implicit solvent of the prmtop MM part")
    simulate.add_argument("--periodic", choices=["auto", "yes", "no"], default="auto")
    simulate.add_argument("--steps", type=int, default=1000)
    simulate.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    simulate.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    simulate.add_argument("--friction", type=float, default=1.0, help="1/ps (default 1)")
    simulate.add_argument("--minimize", type=int, default=0, metavar="N", help="minimise first, at most N iterations")
    simulate.add_argument("--platform", default="CPU", help="OpenMM platform (default CPU)")
    simulate.add_argument("--threads", type=int, default=0, help="CPU platform threads (default: OpenMM's choice)")
    simulate.add_argument("--torch-threads", type=int, default=1,
                          help="torch intra-op threads (default 1: small ML regions gain nothing from more, "
                               "and they would compete with OpenMM's threads)")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--report-interval", type=int, default=100)
    simulate.add_argument("--disagreement-threshold", type=float, default=None,
                          help="warn when the ensemble energy std exceeds this (kJ/mol)")
    simulate.add_argument("--output", default="openmm-ani-md", help="output prefix (.dcd, .csv, .disagreement.csv)")
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    model_arguments(simulate, "single")
    simulate.set_defaults(func=cmd_simulate)

    export = sub.add_parser("export", help="write the TorchScript file for openmmtorch.TorchForce")
    export.add_argument("output", help="output .pt file")
    export.add_argument("--input", help="structure giving the elements (and periodicity)")
    export.add_argument("--top", help="topology file for --input")
    export.add_argument("--elements", help="comma-separated element symbols instead of --input, e.g. O,H,H")
    export.add_argument("--ml-selection", help="mdtraj selection of the ML atoms of --input (ML/MM file)")
    export.add_argument("--periodic", choices=["auto", "yes", "no"], default="auto")
    model_arguments(export, "single")
    export.set_defaults(func=cmd_export)

    bench = sub.add_parser("benchmark", help="ms/step and ns/day of reference systems")
    bench.add_argument("--cases", nargs="+", default=None,
                       help="subset of: pxylene alanine-water waterbox (default all)")
    bench.add_argument("--steps", type=int, default=200, help="timed steps per case (default 200)")
    bench.add_argument("--threads", type=int, default=0, help="default-thread run uses this many (0: all cores)")
    bench.add_argument("--no-openmmml", action="store_true", help="skip the openmm-ml comparison")
    bench.add_argument("--precision", choices=["single", "double"], default="single")
    bench.set_defaults(func=cmd_benchmark)

    register_plugins(sub)
    return parser


def register_plugins(subparsers: Any, modules: Sequence[str] = PLUGIN_MODULES) -> List[str]:
    """Let optional subpackages add subcommands; returns the modules that registered.

    A module that does not exist (yet) is skipped; any other import error propagates.
    """
    registered = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            parts = name.split(".")
            missing_self = {".".join(parts[:k]) for k in range(2, len(parts) + 1)}
            if error.name not in missing_self:
                raise
            continue
        register: Callable[[Any], None] = getattr(module, "register")
        register(subparsers)
        registered.append(name)
    return registered


def _expected_errors() -> Tuple[type, ...]:
    errors: List[type] = [CommandError, ValueError, OSError, KeyError]
    import openmm

    errors.append(openmm.OpenMMException)
    return tuple(errors)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``openmm-ani``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        emit(f"{PROG}: interrupted", sys.stderr)
        return 130
    except _expected_errors() as error:
        message = str(error).strip().splitlines()
        text = message[0] if message else type(error).__name__
        if isinstance(error, KeyError):
            text = f"missing key {text}"
        emit(f"{PROG}: error: {text}", sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
