"""Stage 4 of the ANI pipeline: self-atomic energies.

ANI networks predict energies relative to a sum of per-element self energies
(``sae_linfit.dat`` in NeuroChem folders, fitted by least squares to the training
data's level of theory). :class:`SelfEnergies` adds that sum back (Ha).
"""

from typing import Any, Dict, Final, List, Sequence

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
    nothing. The values are a TorchScript constant (``table``, the padding entry 0 last)
    rather than a buffer, so they stay float64 when the model is cast to float32 (rounding them
    would cost about 4e-6 Ha per heavy atom) and follow the device of ``species``. They are
    saved in ``state_dict`` as the module's extra state.
    """

    table: Final[List[float]]

    def __init__(self, energies: Sequence[float]) -> None:
        super().__init__()
        self.table = [float(e) for e in energies] + [0.0]

    @property
    def energies(self) -> Tensor:
        """``[S + 1]`` self energies in Ha (float64, CPU), the last entry 0 for padding."""
        return torch.tensor(self.table, dtype=torch.float64)

    @torch.jit.unused
    def values(self) -> List[float]:
        """The self energies of the model's elements, Ha."""
        return list(self.table[:-1])

    @torch.jit.unused
    def set_values(self, energies: Sequence[float]) -> None:
        """Replace the self energies (Ha, one per element, in the model's order)."""
        values = [float(e) for e in energies]
        if len(values) != len(self.table) - 1:
            raise ValueError(f"{len(values)} self energies given, the model has {len(self.table) - 1} elements")
        self.table = values + [0.0]

    def get_extra_state(self) -> Dict[str, Any]:
        """The self energies, for ``state_dict``."""
        return {"self_energies": self.values()}

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        """Restore the self energies from ``load_state_dict``."""
        self.set_values(state["self_energies"])

    def forward(self, species: Tensor) -> Tensor:
        # One torch.full per element: TorchScript's torch.tensor(List[float]) rounds through float32.
        table = torch.cat([torch.full([1], e, dtype=torch.float64, device=species.device) for e in self.table])
        return table[species].sum(dim=-1)
