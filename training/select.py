"""Active learning: choose the conformations to label next by query by committee.

The disagreement of an ensemble on a conformation is the standard deviation of its
members' energies divided by the square root of the number of atoms (Ha; reported in
kcal/mol). ANI-1x's curation labelled conformations with a disagreement above
0.23 kcal/mol/sqrt(atoms) (Smith et al., J. Chem. Phys. 148, 241733 (2018)).
"""

import os
from typing import List, Optional, Tuple

import numpy as np

from openmm_ani.model import ANIModel
from openmm_ani.model.ani import QBC_THRESHOLD_KCAL_PER_SQRT_ATOM
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL

from .data import Dataset
from .evaluate import member_predictions

#: ANI-1x's selection threshold, kcal/mol per sqrt(atoms) (defined in the library, where the
#: free-energy verdict uses it too).
ANI1X_THRESHOLD_KCAL = QBC_THRESHOLD_KCAL_PER_SQRT_ATOM


def committee_disagreement(model: ANIModel, dataset: Dataset, batch_size: int = 256) -> np.ndarray:
    """Ensemble standard deviation / sqrt(atoms), ``[C]`` in Ha, in the data set's order.

    Raises
    ------
    ValueError
        If the model has fewer than two members (no committee).
    """
    if model.num_models < 2:
        raise ValueError(f"query by committee needs an ensemble; model {model.name!r} has {model.num_models} member")
    members = member_predictions(model, dataset, batch_size)
    return members.std(axis=0, ddof=1) / np.sqrt(dataset.num_atoms())


def select_conformations(
    model: ANIModel,
    dataset: Dataset,
    number: Optional[int] = None,
    threshold: Optional[float] = ANI1X_THRESHOLD_KCAL,
    batch_size: int = 256,
) -> Tuple[np.ndarray, np.ndarray]:
    """The conformations to label next, most disputed first.

    Parameters
    ----------
    model
        An ensemble.
    dataset
        Candidate conformations (energies ignored).
    number
        At most this many (None: no limit).
    threshold
        Keep only disagreements above this, kcal/mol per sqrt(atoms) (None: no threshold).

    Returns
    -------
    (indices, disagreement)
        Indices into ``dataset`` sorted by decreasing disagreement, and their disagreements in kcal/mol/sqrt(atoms).
    """
    score = committee_disagreement(model, dataset, batch_size) * HARTREE_TO_KCAL_PER_MOL
    order = np.argsort(-score, kind="stable")
    if threshold is not None:
        order = order[score[order] > threshold]
    if number is not None:
        if number < 0:
            raise ValueError(f"number must be >= 0, got {number}")
        order = order[:number]
    return order, score[order]


def read_candidates(path: str, energy_key: Optional[str] = None) -> Dataset:
    """Candidate conformations from an HDF5 file in the release layout or the simple format.

    With ``energy_key`` the file is read with :func:`~openmm_ani.training.data.read_h5`;
    without, only ``atomic_numbers`` and ``coordinates`` of each group are read (unlabelled
    candidates) and the energies are set to zero.
    """
    from .data import concatenate, read_h5

    if energy_key is not None:
        return read_h5(path, energy_key)
    import h5py

    if not os.path.isfile(path):
        raise FileNotFoundError(f"candidate file not found: {path}")
    parts: List[Dataset] = []
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error})") from error
    with handle:
        names: List[str] = []
        handle.visit(lambda name: names.append(name) if isinstance(handle[name], h5py.Group) else None)
        for name in [""] + sorted(names):
            group = handle[name] if name else handle
            if "atomic_numbers" not in group or "coordinates" not in group:
                continue
            z = np.asarray(group["atomic_numbers"][()], dtype=np.int64)
            x = np.asarray(group["coordinates"][()], dtype=np.float64)
            if x.ndim != 3 or x.shape[2] != 3 or x.shape[1] != z.shape[-1]:
                raise ValueError(f"{path}: group {name or '/'!r}: coordinates {x.shape} do not fit atomic_numbers {z.shape}")
            z = np.broadcast_to(z, x.shape[:2]).copy()
            parts.append(Dataset(z, x, np.zeros(x.shape[0]), group=np.full(x.shape[0], name or "/"),
                                 index=np.arange(x.shape[0])))
    if not parts:
        raise ValueError(f"{path}: no group with 'atomic_numbers' and 'coordinates'")
    return concatenate(parts)
