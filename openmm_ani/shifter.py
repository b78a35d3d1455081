"""Stage 4 of the ANI pipeline: self-atomic energies.

ANI networks predict energies relative to a sum of per-element self energies
(``sae_linfit.dat`` in NeuroChem folders, fitted by least squares to the training
data's level of theory). :class:`SelfEnergies` adds that sum back (Ha).
"""

from typing import Sequence

import torch
from torch import Tensor


class SelfEnergies(torch.nn.Module):
    """Sum of self-atomic energies of each molecule.

    Parameters
    ----------
    energies
        Self energy of each element in the model's element order, Ha.

    Notes
    -----
    ``forward(species [B, N])`` returns ``[B]`` sums in Ha; padding (species -1) adds nothing.
    """

    def __init__(self, energies: Sequence[float]) -> None:
        super().__init__()
        values = torch.tensor(list(energies) + [0.0], dtype=torch.float64)
        self.register_buffer("energies", values)

    def forward(self, species: Tensor) -> Tensor:
        return self.energies[species].sum(dim=-1)
