"""``openmm-ani export``: write the TorchScript file of the ANI force for ``openmmtorch.TorchForce``."""

import argparse
from typing import Any, List, Optional

from ..argtypes import output_file
from .common import emit, model_arguments, potential_from_args


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    export = subparsers.add_parser("export", help="write the TorchScript file for openmmtorch.TorchForce")
    export.add_argument("output", type=output_file, help="output .pt file")
    export.add_argument("--input", help="structure giving the elements (and periodicity)")
    export.add_argument("--top", help="topology file for --input")
    export.add_argument("--elements", help="comma-separated element symbols instead of --input, e.g. O,H,H")
    export.add_argument("--ml-selection", help="mdtraj selection of the ML atoms of --input (ML/MM file)")
    export.add_argument("--periodic", choices=["auto", "yes", "no"], default="auto")
    model_arguments(export, "single")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the TorchScript file of the ANI force."""
    from ..model.species import atomic_number_of
    from ..openmm import region_treatment
    from ..simulation import atomic_numbers_of, check_positions, load_structure, select_atoms
    from .common import CommandError

    if (args.input is None) == (args.elements is None):
        raise CommandError("give exactly one of --input STRUCTURE and --elements SYMBOLS")
    potential = potential_from_args(args)
    atoms: Optional[List[int]] = None
    if args.input is not None:
        traj = load_structure(args.input, args.top)
        atoms = select_atoms(traj, args.ml_selection)
        check_positions(traj.xyz[0], atoms, args.input)
        numbers = atomic_numbers_of(traj, atoms)
        treatment = region_treatment(traj.unitcell_vectors is not None, atoms is not None, args.periodic)
    else:
        numbers = [atomic_number_of(symbol.strip()) for symbol in args.elements.split(",") if symbol.strip()]
        treatment = region_treatment(args.periodic == "yes", False, "auto")
    path = potential.export(
        args.output, atomic_numbers=numbers, periodic=treatment.periodic, atoms=atoms, make_whole=treatment.make_whole
    )
    emit(f"wrote {path}: {len(numbers)} ML atoms, {potential.name} ({potential.precision} precision)")
    if treatment.uses_box:
        emit("periodic force: call setUsesPeriodicBoundaryConditions(True) on the TorchForce")
    return 0
