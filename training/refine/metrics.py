"""Errors and disagreement statistics of a refinement round, in kcal/mol (Ha inside)."""

from typing import Dict, Optional

import numpy as np
import torch

from openmm_ani.model import ANIModel
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL

from ..data import Dataset
from ..evaluate import error_metrics, predict


def ensemble_forces(model: ANIModel, dataset: Dataset) -> np.ndarray:
    """Forces ``[C, N, 3]`` (Ha/Å) of the ensemble mean, by autograd, one conformation at a time (padding is 0)."""
    dtype = next(iter(model.parameters())).dtype
    out = np.zeros_like(dataset.coordinates)
    for c in range(len(dataset)):
        real = dataset.atomic_numbers[c] > 0
        z = torch.as_tensor(dataset.atomic_numbers[c][real][None])
        x = torch.tensor(dataset.coordinates[c][real][None], dtype=dtype, requires_grad=True)
        (grad,) = torch.autograd.grad(model(z, x).sum(), x)
        out[c][real] = -grad[0].detach().to(torch.float64).numpy()
    return out


def model_errors(model: ANIModel, dataset: Optional[Dataset]) -> Optional[Dict[str, float]]:
    """Energy MAE/RMSE (kcal/mol) and, when the data have forces, force RMSE (kcal/mol/Å) of the ensemble mean.

    The force RMSE is over all real atoms' Cartesian components. Returns None for no data.
    """
    if dataset is None or len(dataset) == 0:
        return None
    mean, _ = predict(model, dataset)
    energy = error_metrics(mean, dataset.energies)
    result = {"energy_mae_kcal_per_mol": energy["mae"], "energy_rmse_kcal_per_mol": energy["rmse"],
              "count": energy["count"]}
    if dataset.forces is not None:
        real = dataset.atomic_numbers > 0
        diff = (ensemble_forces(model, dataset) - dataset.forces)[real]
        result["force_rmse_kcal_per_mol_per_angstrom"] = float(np.sqrt(np.mean(diff * diff))) * HARTREE_TO_KCAL_PER_MOL
    return result


def distribution(values_kcal: np.ndarray) -> Dict[str, float]:
    """Mean, median, 95th percentile and maximum of disagreements (kcal/mol/sqrt(atoms))."""
    v = np.asarray(values_kcal, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no disagreement values")
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "max": float(v.max()), "count": int(v.size)}
