"""Stage 1 of the ANI pipeline: atomic numbers to the model's element indices.

An ANI model knows an ordered list of elements (``["H", "C", "N", "O"]`` for
ANI-1x and ANI-1ccx); its AEV and networks are indexed by position in that list.
:class:`SpeciesMapper` turns atomic numbers into those indices. Padding atoms
(atomic number ``-1`` or ``0``) map to ``-1`` and are ignored by every later stage.
"""

from typing import Dict, List, Sequence

import torch
from torch import Tensor

#: Element symbols indexed by atomic number (index 0 is a placeholder).
ELEMENT_SYMBOLS: List[str] = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn "
    "Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe"
).split()

#: Atomic number of each element symbol.
ATOMIC_NUMBERS: Dict[str, int] = {s: z for z, s in enumerate(ELEMENT_SYMBOLS) if z > 0}


def symbol_of(atomic_number: int) -> str:
    """Element symbol of an atomic number, or ``"Z=<n>"`` when unknown."""
    if 0 < atomic_number < len(ELEMENT_SYMBOLS):
        return ELEMENT_SYMBOLS[atomic_number]
    return f"Z={atomic_number}"


def atomic_number_of(symbol: str) -> int:
    """Atomic number of an element symbol (case-insensitive).

    Raises
    ------
    ValueError
        If the symbol is not an element symbol.
    """
    key = symbol.strip().capitalize()
    if key not in ATOMIC_NUMBERS:
        raise ValueError(f"unknown element symbol {symbol!r}")
    return ATOMIC_NUMBERS[key]


class SpeciesMapper(torch.nn.Module):
    """Map atomic numbers to the model's element indices.

    Parameters
    ----------
    elements
        The model's element symbols, in the order of its AEV and networks.

    Notes
    -----
    ``forward`` takes a ``LongTensor`` of atomic numbers of any shape and
    returns a tensor of the same shape holding element indices; padding
    (atomic number <= 0) maps to -1. An atomic number the model does not know
    raises ``ValueError`` naming the element symbols and the atom indices.
    """

    def __init__(self, elements: Sequence[str]) -> None:
        super().__init__()
        self.elements: List[str] = [str(e) for e in elements]
        numbers = [atomic_number_of(e) for e in self.elements]
        table = torch.full((len(ELEMENT_SYMBOLS) + 1,), -2, dtype=torch.long)
        for index, z in enumerate(numbers):
            table[z] = index
        table[0] = -1
        self.register_buffer("table", table, persistent=False)
        self.symbols: List[str] = list(ELEMENT_SYMBOLS)

    def forward(self, atomic_numbers: Tensor) -> Tensor:
        """Element indices of ``atomic_numbers`` (same shape; -1 for padding)."""
        z = atomic_numbers.clamp(min=0)
        too_big = z >= self.table.shape[0]
        z = torch.where(too_big, torch.zeros_like(z), z)
        species = self.table[z]
        species = torch.where(too_big, torch.full_like(species, -2), species)
        if bool((species == -2).any()):
            self._raise_unsupported(atomic_numbers, species == -2)
        return species

    def _raise_unsupported(self, atomic_numbers: Tensor, bad: Tensor) -> None:
        flat_numbers = atomic_numbers.reshape(-1)
        flat_bad = bad.reshape(-1).nonzero().flatten()
        names: List[str] = []
        indices: List[int] = []
        for k in range(flat_bad.shape[0]):
            i = int(flat_bad[k])
            z = int(flat_numbers[i])
            name = self.symbols[z] if 0 < z < len(self.symbols) else "Z=" + str(z)
            if name not in names:
                names.append(name)
            indices.append(i % atomic_numbers.shape[-1])
        raise ValueError(
            "model supports elements " + ", ".join(self.elements) + " but got unsupported element(s) "
            + ", ".join(names) + " at atom indices " + str(indices)
        )
