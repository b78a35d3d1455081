"""PySCF labels of a refinement round (selected ligand frames) and of the replay molecules.

Both go through :func:`openmm_ani.training.labels.generate.generate`, which checkpoints
atomically after every conformation and resumes. :func:`generate` lets an SCF that does not
converge raise; here every selected frame is its own job (``frame-000``, ``frame-001``, ...),
added one at a time, so that a failed frame is counted, logged and skipped (its group stays in
the file with NaN labels, which the data readers skip) while the others are labelled.
"""

import logging
import os
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..data import Dataset, read_h5
from ..labels.generate import MoleculeJob, generate, load_existing
from ..labels.levels import DFT_KEY, CCSettings, DFTSettings

logger = logging.getLogger(__name__)

#: Energy (Ha) and force (Ha/Å) keys of the labels made in the loop.
ENERGY_KEY = f"{DFT_KEY}.energy"
FORCE_KEY = f"{DFT_KEY}.forces"


def frame_name(index: int) -> str:
    """Job name of the ``index``-th selected frame."""
    return f"frame-{index:03d}"


def label_frames(
    out_path: str,
    atomic_numbers: np.ndarray,
    frames: np.ndarray,
    dft: DFTSettings,
    stop: Optional[Callable[[], bool]] = None,
) -> Tuple[List[int], List[int], np.ndarray, np.ndarray]:
    """DFT energies and forces of ``frames`` (``[F, N, 3]`` Å) into ``out_path`` (HDF5 + JSON); resumes.

    Parameters
    ----------
    out_path
        Label file (release layout) written by :func:`generate`.
    atomic_numbers
        ``[N]``.
    frames
        ``[F, N, 3]`` Å.
    dft
        Level-of-theory settings.
    stop
        Polled between frames; when it returns true the function raises ``KeyboardInterrupt``
        after the last checkpoint (the file is consistent and a rerun resumes).

    Returns
    -------
    ok, failed : list of int
        Frame indices labelled, and those whose SCF failed or gave non-finite labels.
    energies, forces : numpy.ndarray
        ``[len(ok)]`` Ha and ``[len(ok), N, 3]`` Ha/Å of the ``ok`` frames.
    """
    z = np.asarray(atomic_numbers, dtype=np.int64)
    jobs: List[MoleculeJob] = []
    failed: List[int] = []
    for i, frame in enumerate(np.asarray(frames, dtype=np.float64)):
        if stop is not None and stop():
            raise KeyboardInterrupt
        job = MoleculeJob(frame_name(i), z, frame[None].copy(), 0, 0)
        try:
            generate(out_path, jobs + [job], dft=dft, ccs=CCSettings(), progress=False,
                     extra_meta={"refine": {"frames": len(frames)}})
        except RuntimeError as error:  # SCF not converged: counted and skipped
            logger.warning("%s: frame %d not labelled (%s)", out_path, i, error)
            failed.append(i)
            continue
        jobs.append(job)
    groups, meta = load_existing(out_path)
    group_of = {info.get("name"): g for g, info in meta.get("molecules", {}).items()}
    ok: List[int] = []
    energies, forces = [], []
    for i in range(len(frames)):
        if i in failed:
            continue
        arrays = groups[group_of[frame_name(i)]]
        e, f = float(arrays[ENERGY_KEY][0]), np.asarray(arrays[FORCE_KEY][0])
        if not (np.isfinite(e) and np.isfinite(f).all()):
            logger.warning("%s: frame %d has non-finite labels; skipped", out_path, i)
            failed.append(i)
            continue
        ok.append(i)
        energies.append(e)
        forces.append(f)
    n = len(z)
    return (ok, sorted(failed), np.asarray(energies, dtype=np.float64).reshape(-1),
            np.asarray(forces, dtype=np.float64).reshape(-1, n, 3))


def replay_dataset(out_path: str, molecules: Sequence[str], conformations: int, seed: int,
                   temperatures: Sequence[float], dft: DFTSettings) -> Dataset:
    """Labelled conformations of built-in molecules the model already knew (the forgetting check and replay).

    Conformations come from ANI-1x MD (:func:`~openmm_ani.training.labels.structures.builtin_jobs`,
    reused from ``out_path`` when present), labels at ``dft``.

    Raises
    ------
    ValueError
        For a molecule that is not built in (the message names the setting).
    """
    from ..labels.structures import builtin_jobs
    from ..sampling import MOLECULES

    unknown = [m for m in molecules if m not in MOLECULES]
    if unknown:
        raise ValueError(f"replay_molecules: {', '.join(unknown)} not built in; available: {', '.join(MOLECULES)}")
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    plan = {m: (conformations, 0, 0) for m in molecules}
    jobs = builtin_jobs(plan, seed=seed, temperatures=temperatures, existing=out_path)
    generate(out_path, jobs, dft=dft, ccs=CCSettings(), progress=False)
    return read_h5(out_path, ENERGY_KEY, FORCE_KEY)
