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
    ``forward(species [B, N])`` returns ``[B]`` float64 sums in Ha; padding (species -1) adds
    nothing. The values stay float64 when the module is cast to another dtype.
    """

    def __init__(self, energies: Sequence[float]) -> None:
        super().__init__()
        self._values = [float(e) for e in energies] + [0.0]
        self.register_buffer("energies", torch.tensor(self._values, dtype=torch.float64))

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # Self energies stay float64 when the model is cast to float32 (rounding them would cost
        # about 4e-6 Ha per heavy atom); only the device follows the cast.
        super()._apply(fn, recurse)
        self.energies = torch.tensor(self._values, dtype=torch.float64, device=self.energies.device)
        return self

    def forward(self, species: Tensor) -> Tensor:
        return self.energies[species].sum(dim=-1)
