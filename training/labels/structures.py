"""What to label: structures from XYZ/PDB files, and the built-in CHNO molecule plan."""

import logging
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .generate import MoleculeJob, load_existing

logger = logging.getLogger(__name__)

#: Built-in plan: molecule -> (DFT conformations, CCSD(T)/cc-pVDZ subset, CBS subset).
#: CC labels are computed for the first conformations of each molecule (their order is
#: interleaved over MD temperatures, so every prefix is a fair sample); cc-pVTZ only for
#: molecules of at most four atoms plus methane (a TZ calculation of methanol costs ~60 s).
BUILTIN_PLAN: Dict[str, Tuple[int, int, int]] = {
    "water": (28, 18, 8),
    "methane": (28, 18, 8),
    "ammonia": (28, 18, 8),
    "hydrogen_cyanide": (28, 18, 8),
    "formaldehyde": (28, 18, 8),
    "acetylene": (28, 18, 8),
    "methanol": (28, 18, 0),
    "formic_acid": (28, 18, 0),
    "ethylene": (28, 18, 0),
    "methylamine": (28, 18, 0),
    "formamide": (28, 18, 0),
    "acetonitrile": (28, 18, 0),
    "acetaldehyde": (28, 18, 0),
    "ethane": (28, 18, 0),
    "ethanol": (28, 18, 0),
}


def read_structure(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Atomic numbers ``[N]`` and conformations ``[F, N, 3]`` (Å) from an XYZ (all frames) or PDB file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"structure file not found: {path}")
    if path.lower().endswith(".pdb"):
        from openmm import unit
        from openmm.app import PDBFile

        pdb = PDBFile(path)
        z = []
        for atom in pdb.topology.atoms():
            if atom.element is None:
                raise ValueError(f"{path}: atom {atom.index} ({atom.name}) has no element")
            z.append(atom.element.atomic_number)
        frames = [
            np.asarray(pdb.getPositions(asNumpy=True, frame=i).value_in_unit(unit.angstrom))
            for i in range(pdb.getNumFrames())
        ]
        return np.array(z, dtype=np.int64), np.stack(frames)
    from openmm_ani.model.species import atomic_number_of  # imports torch: only when an XYZ file is read

    with open(path) as fh:
        lines = [ln.rstrip("\n") for ln in fh]
    frames, z_ref = [], None
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            n = int(lines[i].split()[0])
        except ValueError as err:
            raise ValueError(f"{path}: line {i + 1}: expected an atom count, got {lines[i]!r}") from err
        block = lines[i + 2 : i + 2 + n]
        if len(block) != n:
            raise ValueError(f"{path}: frame at line {i + 1} has {len(block)} of {n} atoms")
        try:
            z = [atomic_number_of(b.split()[0].capitalize()) for b in block]
            x = [[float(v) for v in b.split()[1:4]] for b in block]
        except (ValueError, IndexError) as err:
            raise ValueError(f"{path}: frame at line {i + 1}: cannot parse atoms ({err})") from err
        if z_ref is not None and z != z_ref:
            raise ValueError(f"{path}: frame at line {i + 1} has different atoms than the first frame")
        z_ref = z
        frames.append(x)
        i += 2 + n
    if not frames:
        raise ValueError(f"{path}: no XYZ frame found")
    return np.array(z_ref, dtype=np.int64), np.array(frames, dtype=np.float64)


def builtin_jobs(
    plan: Mapping[str, Tuple[int, int, int]] = BUILTIN_PLAN,
    seed: int = 2024,
    temperatures: Sequence[float] = (300.0, 600.0, 900.0),
    scale: float = 1.0,
    existing: Optional[str] = None,
) -> List[MoleculeJob]:
    """Jobs of the built-in molecules: conformations by ANI-1x MD (seed ``seed + 10 * molecule index``).

    Conformations already stored in ``existing`` (a checkpoint of an earlier run) are reused
    instead of sampled again.
    """
    from ..sampling import MOLECULES, molecule, sample_md

    stored: Dict[str, np.ndarray] = {}
    if existing is not None and os.path.exists(existing):
        groups, meta = load_existing(existing)
        for g, info in meta.get("molecules", {}).items():
            if g in groups:
                stored[info["name"]] = groups[g]["coordinates"]
    jobs = []
    for i, (name, (n_dft, n_cc, n_cbs)) in enumerate(plan.items()):
        n_dft, n_cc, n_cbs = (max(1, int(round(v * scale))) if v else 0 for v in (n_dft, n_cc, n_cbs))
        z, x0 = molecule(name)
        if name in stored and stored[name].shape[0] == n_dft:
            confs = stored[name]
        else:
            logger.info("sampling %d conformations of %s", n_dft, name)
            confs = sample_md(z, x0, n_dft, temperatures=temperatures, seed=seed + 10 * i)
        jobs.append(MoleculeJob(name, z, confs, min(n_cc, n_dft), min(n_cbs, n_cc), MOLECULES[name][0]))
    return jobs
