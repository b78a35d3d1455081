"""Applications on top of the OpenMM boundary: inputs from files and MD jobs.

==========  ================================================================
``inputs``  structures/trajectories (mdtraj) with their checks (truncated DCD,
            ambiguous PDB elements, NaN or coincident atoms), atom selections,
            MM Systems from AMBER prmtop or OpenMM force-field files
``md``      :func:`run_md`: Langevin MD with trajectory, state-data and
            ensemble-disagreement output
==========  ================================================================
"""

from .inputs import atomic_numbers_of, check_positions, create_mm_system, load_structure, select_atoms
from .md import MDResult, MDSettings, run_md

__all__ = [
    "MDResult", "MDSettings", "atomic_numbers_of", "check_positions", "create_mm_system", "load_structure", "run_md",
    "select_atoms",
]
