"""RMSD de-duplication of selected conformations (Kabsch alignment, numpy).

Two MD frames of the same molecule that differ only by a rigid rotation and translation, or
very little, would teach the model the same thing twice; :func:`deduplicate` keeps a frame
only if its aligned RMSD to every frame already kept is at least a threshold (Å).
"""

from typing import List, Sequence

import numpy as np


def kabsch_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD (Å) between two ``[N, 3]`` conformations (Å) after optimal superposition.

    Both are centred, then ``b`` is rotated onto ``a`` with the Kabsch rotation (proper
    rotations only: a reflection is excluded by the sign of the determinant).

    Raises
    ------
    ValueError
        If the shapes differ or are not ``[N, 3]``.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"conformations must both be [N, 3], got {x.shape} and {y.shape}")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    u, _, vt = np.linalg.svd(y.T @ x)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    diff = y @ rotation - x
    return float(np.sqrt((diff * diff).sum() / len(x)))


def deduplicate(coordinates: np.ndarray, order: Sequence[int], threshold_angstrom: float,
                budget: int) -> List[int]:
    """Walk ``order`` (e.g. most disputed first) and keep frames at least ``threshold_angstrom`` apart.

    Parameters
    ----------
    coordinates
        ``[F, N, 3]`` frames, Å.
    order
        Candidate frame indices in order of preference.
    threshold_angstrom
        A frame whose Kabsch RMSD to a kept frame is below this is dropped (0: keep all).
    budget
        At most this many frames are kept.

    Returns
    -------
    list of int
        The kept indices, in ``order``'s order.
    """
    if threshold_angstrom < 0:
        raise ValueError(f"rmsd threshold must be >= 0 Å, got {threshold_angstrom}")
    kept: List[int] = []
    for index in order:
        if len(kept) >= budget:
            break
        frame = coordinates[int(index)]
        if all(kabsch_rmsd(coordinates[k], frame) >= threshold_angstrom for k in kept):
            kept.append(int(index))
    return kept
