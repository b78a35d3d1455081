"""Predictions of a model on a :class:`~openmm_ani.training.data.Dataset` and error metrics.

Predictions keep the data set's conformation order (batches are cut in order and
trimmed to their largest molecule), so they can be matched to labels, used as a
Δ-learning baseline or ranked for active learning.
"""

from typing import Callable, Dict, Tuple, Union

import numpy as np
import torch

from openmm_ani.model import ANIModel
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL

from .data import Dataset

#: Anything with ``member_energies(atomic_numbers [B, N], positions [B, N, 3] Å) -> [M, B]`` Ha.
Predictor = Union[ANIModel, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def member_predictions(model: torch.nn.Module, dataset: Dataset, batch_size: int = 256,
                       device: Union[str, torch.device, None] = None) -> np.ndarray:
    """Energies of every ensemble member for every conformation.

    Parameters
    ----------
    model
        An :class:`ANIModel` (any number of members) or any module with ``member_energies``.
    dataset
        The conformations (labels are not used).
    batch_size
        Conformations evaluated at once.
    device
        Device of the evaluation (default: the model's).

    Returns
    -------
    numpy.ndarray
        ``[M, C]`` float64 energies in Ha, in the data set's order.
    """
    parameter = next(iter(model.parameters()))
    device = parameter.device if device is None else torch.device(device)
    dtype = parameter.dtype
    out = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            z = dataset.atomic_numbers[start:start + batch_size]
            width = max(1, int((z > 0).sum(axis=1).max()))
            real = z > 0
            # Move real atoms to the front (stable) so the batch can be trimmed.
            order = np.argsort(~real, axis=1, kind="stable")[:, :width]
            rows = np.arange(z.shape[0])[:, None]
            zb = np.where(real[rows, order], z[rows, order], 0)
            xb = dataset.coordinates[start:start + batch_size][rows, order]
            energies = model.member_energies(torch.as_tensor(zb, device=device),
                                             torch.as_tensor(xb, dtype=dtype, device=device))
            out.append(energies.to(torch.float64).cpu().numpy())
    return np.concatenate(out, axis=1)


def predict(model: torch.nn.Module, dataset: Dataset, batch_size: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """Ensemble mean ``[C]`` and sample standard deviation ``[C]`` (zero for one member) in Ha."""
    members = member_predictions(model, dataset, batch_size)
    std = members.std(axis=0, ddof=1) if members.shape[0] > 1 else np.zeros(members.shape[1])
    return members.mean(axis=0), std


def error_metrics(predicted: np.ndarray, reference: np.ndarray) -> Dict[str, float]:
    """RMSE and MAE of energies (inputs ``[C]`` Ha), returned in kcal/mol (``rmse``, ``mae``) and Ha."""
    error = np.asarray(predicted, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    if error.size == 0:
        raise ValueError("no conformations to evaluate")
    rmse = float(np.sqrt(np.mean(error**2)))
    mae = float(np.mean(np.abs(error)))
    return {"rmse": rmse * HARTREE_TO_KCAL_PER_MOL, "mae": mae * HARTREE_TO_KCAL_PER_MOL,
            "rmse_ha": rmse, "mae_ha": mae, "count": int(error.size)}
