"""``openmm-ani energy``: ANI energies and ensemble disagreement of structures or trajectory frames."""

import argparse
import csv
from typing import Any

from ..argtypes import output_file
from .common import emit, model_arguments, potential_from_args


def register(subparsers: Any) -> None:
    """Add the ``energy`` subcommand."""
    energy = subparsers.add_parser("energy", help="ANI energy and ensemble disagreement of structures or trajectory frames")
    energy.add_argument("input", help="PDB, mol2, inpcrd/rst7 (with --top) or trajectory (with --top)")
    energy.add_argument("--top", help="topology file (prmtop, PDB, ...) for coordinate/trajectory inputs")
    energy.add_argument("--ml-selection", help="mdtraj selection of the atoms to evaluate (default: all)")
    energy.add_argument("--periodic", choices=["auto", "yes", "no"], default="auto",
                        help="use the box vectors (auto: when the input has them)")
    energy.add_argument("--csv", type=output_file, help="write a CSV file instead of the table")
    energy.add_argument("--verbose", action="store_true", help="print the table also with --csv")
    energy.add_argument("--no-forces", action="store_true", help="skip the force spread (faster)")
    model_arguments(energy, "double")
    energy.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Per-frame ANI energy and ensemble disagreement."""
    import numpy as np

    from ..files import atomic_write
    from ..openmm import region_treatment
    from ..openmm.reporter import DisagreementEvaluator
    from ..simulation import atomic_numbers_of, check_positions, load_structure, select_atoms
    from ..units import HARTREE_TO_KJ_PER_MOL

    traj = load_structure(args.input, args.top)
    atoms = select_atoms(traj, args.ml_selection)
    treatment = region_treatment(traj.unitcell_vectors is not None, atoms is not None, args.periodic)
    potential = potential_from_args(args)
    evaluator = DisagreementEvaluator(
        potential.model, atomic_numbers_of(traj, atoms), atoms=atoms,
        periodic=treatment.periodic, make_whole=treatment.make_whole,
    )
    header = ["frame", "energy_kJ/mol", "energy_Ha", "energy_std_kJ/mol"]
    widths = [6, 18, 16, 18]
    formats = ["d", ".4f", ".8f", ".4f"]
    if not args.no_forces:  # --no-forces: no force-spread column at all (not a column of nan)
        header, widths, formats = header + ["force_spread_kJ/mol/nm"], widths + [24], formats + [".4f"]
    table = args.csv is None or args.verbose
    if table:
        emit(" ".join(f"{name:>{width}}" for name, width in zip(header, widths)))
    rows = []
    for frame in range(traj.n_frames):
        xyz = np.asarray(traj.xyz[frame], dtype=np.float64)
        check_positions(xyz, atoms, f"frame {frame} of {args.input}")
        box = traj.unitcell_vectors[frame] if treatment.uses_box else None
        result = evaluator(xyz, box, forces=not args.no_forces)
        row = [frame, result.energy, result.energy / HARTREE_TO_KJ_PER_MOL, result.energy_std, result.force_spread]
        rows.append(row[: len(header)])
        if table:  # each frame's row as soon as it is computed (a long rescoring shows its progress)
            emit(" ".join(f"{value:>{width}{spec}}" for value, width, spec in zip(rows[-1], widths, formats)))
    if args.csv is not None:
        with atomic_write(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                writer.writerow([row[0]] + [repr(float(v)) for v in row[1:]])
        if not table:
            emit(f"wrote {len(rows)} frame(s) to {args.csv}")
    return 0
