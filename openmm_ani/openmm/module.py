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
  first made whole by the minimum-image vector from the region's first atom (the first of
  ``atoms`` as given), then evaluated as an isolated molecule — ML atoms never interact with
  periodic images of the ML region through ANI. A region spanning half a box vector or more
  raises an error (see :func:`openmm_ani.openmm.periodic.make_whole`).

Coordinates are taken relative to that first ML atom in the precision OpenMM passes them
(float64 on the CPU and Reference platforms) *before* they are cast to the model's
precision, so a single-precision energy does not depend on where the molecule sits in space.
"""

import copy
from typing import Final, List, Optional, Sequence

import torch
from torch import Tensor

from ..model import AtomicNetworks, ANIModel
from ..units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from .periodic import make_whole as whole_region
from .topology import check_atom_indices


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
        If an element is not supported by the model (naming the atoms), atom indices are
        negative, repeated or not integers, or the options conflict. At run time, ``forward``
        raises ``ValueError`` for a System with too few particles for ``atoms``, a region that
        cannot be made whole, and non-finite positions of ML atoms.
    """

    periodic: Final[bool]
    anchor: Final[int]
    max_atom: Final[int]
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
        if atoms is not None:
            atoms = check_atom_indices(atoms, None)
            if len(atoms) != numbers.shape[1]:
                raise ValueError(f"{len(atoms)} atom indices but {numbers.shape[1]} atomic numbers")
        if bool((numbers <= 0).any()):
            bad = (numbers[0] <= 0).nonzero().flatten().tolist()
            raise ValueError(f"atoms {bad} have no element (virtual sites or extra particles cannot be ML atoms)")
        # Atoms are evaluated sorted by element, so that each element's network sees a
        # contiguous block and the self energies are one constant.
        species = model.species(numbers)[0]
        order = torch.argsort(species, stable=True)
        indices = torch.tensor(list(atoms), dtype=torch.long) if atoms is not None else torch.arange(species.shape[0])
        self.register_buffer("species", species[order].unsqueeze(0))
        self.register_buffer("atoms", indices[order])
        # The region's reference atom (origin of the coordinates, centre of make_whole) is the
        # first ML atom as given, wherever sorting by element put it.
        self.anchor = int((order == 0).nonzero()[0, 0])
        self.max_atom = int(indices.max())
        counts: List[int] = torch.bincount(species, minlength=len(model.elements)).tolist()
        present = [e for e, n in enumerate(counts) if n > 0]
        self.register_buffer("self_energy", model.self_energies(species).to(torch.float64))
        # Private, frozen copies of what the region needs: the AEV computer and the networks of
        # the elements present (OpenMM needs gradients with respect to positions only, and weight
        # gradients would double the cost of every force evaluation). The file a TorchForce
        # serialises then carries no weights of absent elements.
        self.aev = copy.deepcopy(model.aev)
        self.networks = AtomicNetworks([copy.deepcopy(model.networks.networks[e]) for e in present])
        for parameter in self.networks.parameters():
            parameter.requires_grad_(False)
        self.counts: List[int] = [counts[e] for e in present]
        # AEV blocks of elements absent from the ML atoms are identically zero: drop those
        # features and the matching first-layer weights (a hydrocarbon keeps 128 of 384).
        columns = self.aev.columns_for(present)
        self.restricted = columns.shape[0] < self.aev.length
        self.register_buffer("columns", columns)
        if self.restricted:
            for network in self.networks.networks:
                network.layers[0].restrict_inputs(columns)
        # Small open regions (a ligand, or any region made whole) use pair and triplet tables
        # built once, instead of a neighbour search and triplet enumeration every step.
        self.fixed = (not periodic) and int(species.shape[0]) <= FIXED_TABLES_MAX_ATOMS
        tables = self.aev.fixed_tables(species[order]) if self.fixed else {}
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
        if self.max_atom >= positions.shape[0]:
            raise ValueError(
                "ANI force: ML atom index " + str(self.max_atom) + " is out of range for a System of "
                + str(positions.shape[0]) + " particles"
            )
        raw = positions.index_select(0, self.atoms)
        x = raw
        cell: Optional[Tensor] = None
        if self.periodic or self.make_whole:
            if boxvectors is None:
                raise ValueError("this ANI force is periodic: box vectors are required")
            if self.periodic:
                x = x - x[self.anchor : self.anchor + 1]
                cell = boxvectors.to(self.probe.dtype) * self.length_scale
            else:
                x = whole_region(x, self.anchor, boxvectors.to(x.dtype))
        else:
            x = x - x[self.anchor : self.anchor + 1]
        x = x.to(self.probe.dtype) * self.length_scale
        if self.fixed:
            aev = self.aev.from_fixed_tables(
                x, self.table_first, self.table_second, self.table_radial_rows,
                self.table_triplet_j, self.table_triplet_k, self.table_angular_rows,
            )
        else:
            aev = self.aev(self.species, x.unsqueeze(0), cell)[0]
        if self.restricted:
            aev = aev.index_select(1, self.columns)
        # The large self-energy constant is added in float64, so a float32 model's total energy
        # is not rounded to a float32 ulp of the total (about 1 kJ/mol for 255 water atoms).
        energies = self.networks.sorted_energies(aev, self.counts).to(torch.float64) + self.self_energy
        if not bool(torch.isfinite(energies).all()):
            self._raise_not_finite(raw)
        return energies * self.energy_scale

    def _raise_not_finite(self, x: Tensor) -> None:
        """Explain a non-finite ANI energy: name the ML atoms whose positions are not finite."""
        bad = (~torch.isfinite(x).all(1)).nonzero().flatten()
        if bad.shape[0] > 0:
            atoms: List[int] = self.atoms.index_select(0, bad).tolist()
            raise ValueError("positions of ML atoms " + str(sorted(atoms)) + " are NaN or infinite")
        raise ValueError("the ANI energy is NaN or infinite although all ML positions are finite")
