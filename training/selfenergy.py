"""Self-atomic energies per level of theory, fitted by linear least squares.

A molecule's energy is modelled as ``E ≈ Σ_elements count(element) × e(element)``; the
networks then learn the residual. This is how ANI models shift their targets, and the
transfer-learning step refits these values for the new level of theory.
"""

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from openmm_ani.model.species import atomic_number_of

from .data import Dataset


def element_counts(dataset: Dataset, elements: Sequence[str]) -> np.ndarray:
    """Atoms of each element per conformation, ``[C, len(elements)]`` float64.

    Raises
    ------
    ValueError
        If a conformation contains an element not in ``elements`` (names the element and
        the first conformation index).
    """
    numbers = [atomic_number_of(e) for e in elements]
    z = dataset.atomic_numbers
    counts = np.stack([(z == n).sum(axis=1) for n in numbers], axis=1).astype(np.float64)
    covered = counts.sum(axis=1)
    real = (z > 0).sum(axis=1)
    bad = np.nonzero(covered != real)[0]
    if bad.size:
        c = int(bad[0])
        others = sorted({int(a) for a in z[c] if a > 0 and a not in numbers})
        raise ValueError(f"conformation {c} contains atomic numbers {others} not in elements {list(elements)}")
    return counts


def fit_self_energies(
    dataset: Dataset, elements: Sequence[str], fixed: Optional[Mapping[str, float]] = None
) -> Dict[str, float]:
    """Least-squares self energies (Ha) of ``elements`` from the data set's energies.

    Parameters
    ----------
    dataset : Dataset
        Conformations with total energies (Ha).
    elements : sequence of str
        Element symbols, e.g. ``["H", "C", "N", "O"]``.
    fixed : mapping of str to float, optional
        Self energies (Ha) to keep unchanged; only the other elements are fitted,
        to the energies minus the fixed contributions.

    Returns
    -------
    dict
        Element symbol -> self energy (Ha), for every element in ``elements`` (fixed ones
        returned exactly as given). An element absent from the data gets 0.0 unless fixed.

    Raises
    ------
    ValueError
        Empty data set, a fixed element not in ``elements``, or data with other elements.
    """
    fixed = dict(fixed or {})
    unknown = [e for e in fixed if e not in elements]
    if unknown:
        raise ValueError(f"fixed self energies for {unknown}, which are not in elements {list(elements)}")
    if len(dataset) == 0:
        raise ValueError("cannot fit self energies to an empty data set")
    counts = element_counts(dataset, elements)
    target = dataset.energies.copy()
    free = [i for i, e in enumerate(elements) if e not in fixed]
    for i, e in enumerate(elements):
        if e in fixed:
            target -= counts[:, i] * float(fixed[e])
    result = {e: float(fixed[e]) for e in fixed}
    present = [i for i in free if counts[:, i].any()]
    if present:
        solution, *_ = np.linalg.lstsq(counts[:, present], target, rcond=None)
        result.update({elements[i]: float(v) for i, v in zip(present, solution)})
    for i in free:
        result.setdefault(elements[i], 0.0)
    return {e: result[e] for e in elements}


def subtract_self_energies(dataset: Dataset, self_energies: Mapping[str, float]) -> np.ndarray:
    """Energies minus the sum of self energies of the atoms, ``[C]`` Ha.

    Raises
    ------
    ValueError
        If the data set contains an element without a self energy.
    """
    elements = list(self_energies)
    counts = element_counts(dataset, elements)
    return dataset.energies - counts @ np.array([self_energies[e] for e in elements], dtype=np.float64)
