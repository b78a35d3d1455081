"""The OpenMM boundary: ANI as a TorchScript module for openmm-torch's ``TorchForce``.

:class:`ANIForceModule` takes OpenMM's units and conventions — positions ``[N, 3]`` of *all*
particles in nm, box vectors ``[3, 3]`` in nm when periodic — and returns the ANI energy in
kJ/mol; OpenMM obtains forces by back-propagation. Element indices are fixed at
construction, so the module does no element lookup per step. Unit conversion happens here
and nowhere else, with the constants of :mod:`openmm_ani.units`.

Periodicity has two modes:

* ``periodic=True`` (pure ANI systems): ANI sees the periodic box and all images within
  its cutoff (minimum image, requires box widths >= 2 x cutoff);
* ``make_whole=True`` (an ML region inside a larger periodic MM system): the ML atoms are
  first made whole by the minimum-image vector from the region's first atom, then
  evaluated as an isolated molecule — ML atoms never interact with periodic images of the
  ML region through ANI. This needs the region to span less than half the box.
"""

import copy
from typing import Final, List, Optional, Sequence

import torch
from torch import Tensor

from .model import ANIModel
from .units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM


def minimum_image(vectors: Tensor, box: Tensor) -> Tensor:
    """Minimum-image ``vectors`` ``[n, 3]`` for an OpenMM reduced (lower-triangular) box ``[3, 3]``."""
    vectors = vectors - box[2] * torch.round(vectors[:, 2:3] / box[2, 2])
    vectors = vectors - box[1] * torch.round(vectors[:, 1:2] / box[1, 1])
    vectors = vectors - box[0] * torch.round(vectors[:, 0:1] / box[0, 0])
    return vectors


#: ML regions of at most this many atoms, when not fully periodic, use fixed AEV tables
#: (their triplet table grows as N**3 / 2: 2448 entries for 18 atoms, 125k for 64).
FIXED_TABLES_MAX_ATOMS: int = 64


class ANIForceModule(torch.nn.Module):
    """ANI energy of (a subset of) an OpenMM system, in OpenMM units.

    Parameters
    ----------
    model
        The ANI model (its dtype sets the precision of the calculation). The module keeps a
        frozen copy; the model passed in is not modified.
    atomic_numbers
        Atomic numbers of the ML atoms, in the order of ``atoms``.
    atoms
        Indices of the ML atoms among the System's particles (any order, need not be
        contiguous); ``None`` means all particles, in order.
    periodic
        Evaluate ANI with periodic boundary conditions (box vectors required in ``forward``).
    make_whole
        Make the ML region whole across the periodic box and evaluate it as an isolated molecule.

    Notes
    -----
    ``forward(positions [N, 3] nm, boxvectors [3, 3] nm or None)`` returns the energy (kJ/mol)
    as a 0-d tensor; ``member_energies`` returns ``[M]`` energies of each ensemble member.

    Raises
    ------
    ValueError
        If an element is not supported by the model (naming the atoms), or the options conflict.
    """

    periodic: Final[bool]
    make_whole: Final[bool]
    num_models: Final[int]
    restricted: Final[bool]
    fixed: Final[bool]
    length_scale: Final[float]
    energy_scale: Final[float]

    def __init__(
        self,
        model: ANIModel,
        atomic_numbers: Sequence[int],
        atoms: Optional[Sequence[int]] = None,
        periodic: bool = False,
        make_whole: bool = False,
    ) -> None:
        super().__init__()
        if periodic and make_whole:
            raise ValueError("periodic and make_whole are exclusive: choose one treatment of the box")
        numbers = torch.tensor([list(atomic_numbers)], dtype=torch.long)
        if numbers.shape[1] == 0:
            raise ValueError("no ML atoms given")
        if atoms is not None and len(atoms) != numbers.shape[1]:
            raise ValueError(f"{len(atoms)} atom indices but {numbers.shape[1]} atomic numbers")
        if bool((numbers <= 0).any()):
            bad = (numbers[0] <= 0).nonzero().flatten().tolist()
            raise ValueError(f"atoms {bad} have no element (virtual sites or extra particles cannot be ML atoms)")
        # A private, frozen copy: OpenMM needs gradients with respect to positions only, and
        # gradients of the weights would double the cost of every force evaluation.
        self.model = copy.deepcopy(model)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        # Atoms are evaluated sorted by element, so that each element's network sees a
        # contiguous block and the self energies are one constant.
        species = model.species(numbers)[0]
        order = torch.argsort(species, stable=True)
        indices = torch.tensor(list(atoms), dtype=torch.long) if atoms is not None else torch.arange(species.shape[0])
        self.register_buffer("species", species[order].unsqueeze(0))
        self.register_buffer("atoms", indices[order])
        self.counts: List[int] = torch.bincount(species, minlength=len(model.elements)).tolist()
        self.register_buffer("self_energy", self.model.self_energies(species).to(torch.float64))
        # AEV blocks of elements absent from the ML atoms are identically zero: drop those
        # features and the matching first-layer weights (a hydrocarbon keeps 128 of 384).
        present = [e for e, n in enumerate(self.counts) if n > 0]
        columns = self.model.aev.columns_for(present)
        self.restricted = columns.shape[0] < self.model.aev.length
        self.register_buffer("columns", columns)
        if self.restricted:
            for network in self.model.networks.networks:
                network.layers[0].restrict_inputs(columns)
        # Small open regions (a ligand, or any region made whole) use pair and triplet tables
        # built once, instead of a neighbour search and triplet enumeration every step.
        self.fixed = (not periodic) and int(species.shape[0]) <= FIXED_TABLES_MAX_ATOMS
        tables = self.model.aev.fixed_tables(species[order]) if self.fixed else {}
        for key in ("first", "second", "radial_rows", "triplet_j", "triplet_k", "angular_rows"):
            self.register_buffer("table_" + key, tables.get(key, torch.zeros(0, dtype=torch.long)))
        self.periodic = bool(periodic)
        self.make_whole = bool(make_whole)
        self.num_models = model.num_models
        self.length_scale = NM_TO_ANGSTROM
        self.energy_scale = HARTREE_TO_KJ_PER_MOL
        dtype = next(model.parameters()).dtype
        self.register_buffer("probe", torch.zeros(0, dtype=dtype))

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        return self.member_energies(positions, boxvectors).mean()

    @torch.jit.export
    def member_energies(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        """Energy of each ensemble member, ``[M]`` kJ/mol (float64 whatever the model's precision)."""
        x = positions.index_select(0, self.atoms)
        x = x.to(self.probe.dtype) * self.length_scale
        cell: Optional[Tensor] = None
        if self.periodic or self.make_whole:
            if boxvectors is None:
                raise ValueError("this ANI force is periodic: box vectors are required")
            box = boxvectors.to(self.probe.dtype) * self.length_scale
            if self.periodic:
                cell = box
            else:
                x = x[0:1] + minimum_image(x - x[0:1], box)
        if self.fixed:
            aev = self.model.aev.from_fixed_tables(
                x, self.table_first, self.table_second, self.table_radial_rows,
                self.table_triplet_j, self.table_triplet_k, self.table_angular_rows,
            )
        else:
            aev = self.model.aev(self.species, x.unsqueeze(0), cell)[0]
        if self.restricted:
            aev = aev.index_select(1, self.columns)
        # The large self-energy constant is added in float64, so a float32 model's total energy
        # is not rounded to a float32 ulp of the total (about 1 kJ/mol for 255 water atoms).
        energies = self.model.networks.sorted_energies(aev, self.counts).to(torch.float64) + self.self_energy
        return energies * self.energy_scale
