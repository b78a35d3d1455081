"""Δ-learning baseline: a model of the residual between a high level and a base model.

The base model (e.g. an ensemble pretrained on DFT) predicts ``E_base``; a second ANI
model learns ``E_CC - E_base`` on the high-level data; the prediction is their sum
(Ramakrishnan et al., J. Chem. Theory Comput. 11, 2087 (2015), with an ML base).
"""

import dataclasses
from typing import Optional

import torch
from torch import Tensor

from openmm_ani.model import ANIModel

from .data import Dataset
from .evaluate import predict


def residual_dataset(base: ANIModel, dataset: Dataset, batch_size: int = 256) -> Dataset:
    """The data set with energies replaced by ``E - E_base`` (Ha) and forces dropped."""
    base_energies, _ = predict(base, dataset, batch_size)
    return dataclasses.replace(dataset, energies=dataset.energies - base_energies, forces=None)


class DeltaModel(torch.nn.Module):
    """``E = mean(base members) + delta`` for every member of the Δ model (Ha).

    Parameters
    ----------
    base
        The base model (its ensemble mean is used).
    delta
        The model of the residual (any number of members).
    """

    def __init__(self, base: ANIModel, delta: ANIModel) -> None:
        super().__init__()
        self.base = base
        self.delta = delta

    def member_energies(self, atomic_numbers: Tensor, positions: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """``[M_delta, B]`` energies in Ha for ``atomic_numbers [B, N]`` and ``positions [B, N, 3]`` Å."""
        base = self.base.member_energies(atomic_numbers, positions.to(self._dtype(self.base)), cell).mean(0)
        delta = self.delta.member_energies(atomic_numbers, positions.to(self._dtype(self.delta)), cell)
        return base.to(torch.float64) + delta.to(torch.float64)

    def forward(self, atomic_numbers: Tensor, positions: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """Ensemble-mean energies ``[B]`` in Ha."""
        return self.member_energies(atomic_numbers, positions, cell).mean(0)

    @staticmethod
    def _dtype(model: ANIModel) -> torch.dtype:
        return next(iter(model.parameters())).dtype
