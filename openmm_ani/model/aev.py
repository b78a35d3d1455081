"""Stage 2 of the ANI pipeline: atomic environment vectors (AEVs).

The AEV of an atom concatenates

* **radial terms**, one block per neighbour element, each term
  ``0.25 * exp(-EtaR * (d - ShfR)**2) * fc(d, Rcr)`` summed over neighbours at distance ``d``;
* **angular terms**, one block per unordered pair of neighbour elements, each term
  ``2 * ((1 + cos(theta - ShfZ)) / 2)**Zeta * exp(-EtaA * ((d1 + d2) / 2 - ShfA)**2)
  * fc(d1, Rca) * fc(d2, Rca)`` summed over pairs of neighbours,

with the cosine cutoff ``fc(d, Rc) = 0.5 * cos(pi * d / Rc) + 0.5``. These are the
NeuroChem conventions that ANI-1x and ANI-1ccx were trained with, which differ from the
ANI-1 paper in the 0.25 factor on radial terms and in ``theta = acos(0.95 * cos(angle))``.
This module evaluates ``cos(theta - ShfZ)`` as ``cos(theta) cos(ShfZ) + sin(theta) sin(ShfZ)``
with ``cos(theta) = 0.95 cos(angle)``, which is the same function without ``acos``.

Within a block the terms run over ``(EtaR, ShfR)`` and ``(EtaA, Zeta, ShfA, ShfZ)`` with
the last parameter fastest; element pairs run in upper-triangle order
``(0,0), (0,1), ..., (1,1), ...``. Lengths are in Å. The cosine divides by ``max(d1 d2, 1e-10)``
as TorchANI does, so coincident atoms give TorchANI's finite energy instead of NaN.
"""

import math
from typing import Dict, Final, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .. import kernels
from .aev_parameters import AEVParameters
from .neighbors import ALL_PAIRS_MAX_ATOMS, check_box, neighbor_pairs

#: Triplets per chunk of the angular stage (about 1 MB of float32 terms per chunk).
ANGULAR_CHUNK: int = 8192
#: Smallest ``d1 * d2`` (Å^2) dividing the angular cosine: TorchANI's guard, so that two atoms at
#: the same position give a finite energy (the cosine of a zero vector is taken as 0).
COSINE_GUARD: float = 1e-10


def _grid(*axes: Sequence[float]) -> List[Tensor]:
    """Flattened outer-product grid of the axes (last axis fastest), one tensor per axis."""
    tensors = [torch.tensor(list(a), dtype=torch.float64) for a in axes]
    mesh = torch.meshgrid(*tensors, indexing="ij")
    return [m.reshape(-1).contiguous() for m in mesh]


def triplets_of(counts: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Every unordered pair of neighbours of each atom, from a directed neighbour list sorted by
    centre atom with ``counts`` ``[A]`` neighbours per atom: (centre atom ``[T]``, index of the first
    and of the second neighbour in the sorted list ``[T]``, ``T = sum(c (c - 1) / 2)``)."""
    device = counts.device
    triplets_per_atom = counts * (counts - 1) // 2
    most = int(counts.max())
    local = torch.tril_indices(most, most, -1, device=device)
    atom_of_triplet = torch.repeat_interleave(torch.arange(counts.shape[0], device=device), triplets_per_atom)
    triplet_start = torch.cumsum(triplets_per_atom, 0) - triplets_per_atom
    rank = torch.arange(atom_of_triplet.shape[0], device=device) - triplet_start[atom_of_triplet]
    neighbor_start = (torch.cumsum(counts, 0) - counts)[atom_of_triplet]
    return atom_of_triplet, neighbor_start + local[0, rank], neighbor_start + local[1, rank]


def _pair_table(num_species: int) -> Tensor:
    """``[S, S]`` index of each unordered element pair in upper-triangle order."""
    first, second = torch.triu_indices(num_species, num_species)
    table = torch.zeros(num_species, num_species, dtype=torch.long)
    index = torch.arange(first.shape[0])
    table[first, second] = index
    table[second, first] = index
    return table


def cosine_cutoff(distances: Tensor, cutoff: float) -> Tensor:
    """``0.5 * cos(pi * d / cutoff) + 0.5`` (callers keep ``d < cutoff``)."""
    return 0.5 * torch.cos(distances * (math.pi / cutoff)) + 0.5


class AEVComputer(torch.nn.Module):
    """Compute ANI atomic environment vectors.

    Parameters
    ----------
    parameters
        The AEV hyper-parameters, usually read from a NeuroChem ``.params`` file.
    use_kernel
        Compute the AEVs of CPU tensors with the C++ kernel ``torch.ops.openmm_ani.aev_batch``, whose
        backward to the positions is analytic (``None``: when the kernel is built). Its second
        derivatives are not implemented: force training and Hessians use :meth:`differentiable`.
        ``False`` gives a module whose TorchScript code never references ``torch.ops.openmm_ani``.

    Examples
    --------
    >>> import torch
    >>> from openmm_ani.model import AEVComputer, AEVParameters
    >>> p = AEVParameters(5.2, 3.5, (16.0,), (0.9, 1.5), (8.0,), (32.0,), (0.9,), (0.2, 1.0), 2)
    >>> aev = AEVComputer(p)(torch.tensor([[0, 1]]), torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]]))
    >>> tuple(aev.shape)
    (1, 2, 10)
    """

    num_species: Final[int]
    radial_cutoff: Final[float]
    angular_cutoff: Final[float]
    radial_sublength: Final[int]
    angular_sublength: Final[int]
    num_pairs: Final[int]
    length: Final[int]
    all_pairs_max_atoms: Final[int]
    angular_chunk: Final[int]
    cosine_guard: Final[float]
    num_eta_a: Final[int]
    num_shf_a: Final[int]
    num_zeta: Final[int]
    num_shf_z: Final[int]
    use_kernel: Final[bool]
    radial_eta: Final[List[float]]
    radial_shifts: Final[List[float]]
    angular_eta: Final[List[float]]
    angular_zeta: Final[List[float]]
    angular_shifts: Final[List[float]]
    angle_sections: Final[List[float]]

    def __init__(self, parameters: AEVParameters, use_kernel: Optional[bool] = None) -> None:
        super().__init__()
        parameters.validate()
        if use_kernel and not kernels.available():
            raise RuntimeError(f"the openmm-ani C++ kernels are not available: {kernels.unavailable_reason()}")
        self.use_kernel = kernels.available() if use_kernel is None else bool(use_kernel)
        self.parameters = parameters
        # the hyper-parameters as the kernel takes them (AEVParameters' names)
        self.radial_eta = [float(v) for v in parameters.radial_eta]
        self.radial_shifts = [float(v) for v in parameters.radial_shifts]
        self.angular_eta = [float(v) for v in parameters.angular_eta]
        self.angular_zeta = [float(v) for v in parameters.angular_zeta]
        self.angular_shifts = [float(v) for v in parameters.angular_shifts]
        self.angle_sections = [float(v) for v in parameters.angle_sections]
        self.num_species = parameters.num_species
        self.radial_cutoff = float(parameters.radial_cutoff)
        self.angular_cutoff = float(parameters.angular_cutoff)
        self.radial_sublength = parameters.radial_sublength
        self.angular_sublength = parameters.angular_sublength
        self.num_pairs = self.num_species * (self.num_species + 1) // 2
        self.length = parameters.length
        self.all_pairs_max_atoms = ALL_PAIRS_MAX_ATOMS
        self.angular_chunk = ANGULAR_CHUNK
        self.cosine_guard = COSINE_GUARD
        eta_r, shf_r = _grid(parameters.radial_eta, parameters.radial_shifts)
        eta_a, shf_a = _grid(parameters.angular_eta, parameters.angular_shifts)
        zeta, shf_z = _grid(parameters.angular_zeta, parameters.angle_sections)
        self.num_eta_a = len(parameters.angular_eta)
        self.num_shf_a = len(parameters.angular_shifts)
        self.num_zeta = len(parameters.angular_zeta)
        self.num_shf_z = len(parameters.angle_sections)
        self.register_buffer("eta_r", eta_r)
        self.register_buffer("shf_r", shf_r)
        self.register_buffer("eta_a", eta_a)
        self.register_buffer("zeta", zeta.view(self.num_zeta, self.num_shf_z))
        self.register_buffer("shf_a", shf_a)
        self.register_buffer("cos_shf_z", torch.cos(shf_z.view(self.num_zeta, self.num_shf_z)[0]))
        self.register_buffer("sin_shf_z", torch.sin(shf_z.view(self.num_zeta, self.num_shf_z)[0]))
        self.register_buffer("pair_table", _pair_table(self.num_species))

    def columns_for(self, present: Sequence[int]) -> Tensor:
        """Indices of the AEV features that can be non-zero when only elements ``present`` occur.

        Radial blocks of absent neighbour elements and angular blocks of element pairs that
        involve an absent element are identically zero.
        """
        keep = set(int(s) for s in present)
        columns: List[int] = []
        for s in range(self.num_species):
            if s in keep:
                columns.extend(range(s * self.radial_sublength, (s + 1) * self.radial_sublength))
        offset = self.num_species * self.radial_sublength
        for a in range(self.num_species):
            for b in range(a, self.num_species):
                if a in keep and b in keep:
                    start = offset + int(self.pair_table[a, b]) * self.angular_sublength
                    columns.extend(range(start, start + self.angular_sublength))
        return torch.tensor(columns, dtype=torch.long)

    def fixed_tables(self, species: Tensor) -> Dict[str, Tensor]:
        """Pair and triplet tables of one open molecule whose elements never change.

        Used by :meth:`from_fixed_tables`, which then needs no neighbour search or triplet
        enumeration per call. The number of triplets grows as ``N**3 / 2``, so this suits
        small molecules (an ML ligand), not large systems.

        Parameters
        ----------
        species
            ``[N]`` element indices (no padding).

        Returns
        -------
        dict of str to Tensor
            ``first``, ``second`` ``[P]``: all pairs ``i < j``; ``radial_rows`` ``[2P]``: output row
            of each pair seen from either atom; ``triplet_j``, ``triplet_k`` ``[T]``: indices into the
            directed pair list (``[vectors, -vectors]``) of the two neighbours of each centre atom;
            ``angular_rows`` ``[T]``: output row of each triplet.
        """
        n = int(species.shape[0])
        first, second = torch.triu_indices(n, n, 1)
        num_pairs = first.shape[0]
        directed = torch.full((n, n), -1, dtype=torch.long)
        directed[first, second] = torch.arange(num_pairs)
        directed[second, first] = torch.arange(num_pairs) + num_pairs
        centres: List[int] = []
        js: List[int] = []
        ks: List[int] = []
        for c in range(n):
            others = [a for a in range(n) if a != c]
            for x in range(len(others)):
                for y in range(x + 1, len(others)):
                    centres.append(c)
                    js.append(int(directed[c, others[x]]))
                    ks.append(int(directed[c, others[y]]))
        centre = torch.tensor(centres, dtype=torch.long)
        triplet_j = torch.tensor(js, dtype=torch.long)
        triplet_k = torch.tensor(ks, dtype=torch.long)
        neighbor = torch.cat([second, first])
        return {
            "first": first,
            "second": second,
            "radial_rows": torch.cat([first * self.num_species + species[second], second * self.num_species + species[first]]),
            "triplet_j": triplet_j,
            "triplet_k": triplet_k,
            "angular_rows": centre * self.num_pairs
            + self.pair_table.cpu()[species[neighbor[triplet_j]], species[neighbor[triplet_k]]],
        }

    @torch.jit.export
    def from_fixed_tables(
        self,
        coordinates: Tensor,
        first: Tensor,
        second: Tensor,
        radial_rows: Tensor,
        triplet_j: Tensor,
        triplet_k: Tensor,
        angular_rows: Tensor,
    ) -> Tensor:
        """AEVs ``[N, L]`` of one open molecule from tables made by :meth:`fixed_tables`.

        Parameters
        ----------
        coordinates
            ``[N, 3]`` positions in Å.
        first, second, radial_rows, triplet_j, triplet_k, angular_rows
            The tables of :meth:`fixed_tables`.
        """
        num_atoms = coordinates.shape[0]
        vectors = coordinates.index_select(0, second) - coordinates.index_select(0, first)
        distances = torch.linalg.vector_norm(vectors, dim=1)
        within = (distances < self.radial_cutoff).to(vectors.dtype).unsqueeze(1)
        d = distances.unsqueeze(1)
        terms = 0.25 * torch.exp(-self.eta_r * (d - self.shf_r) ** 2) * cosine_cutoff(d, self.radial_cutoff) * within
        radial = torch.zeros(
            num_atoms * self.num_species, self.radial_sublength, dtype=vectors.dtype, device=vectors.device
        )
        radial.index_add_(0, radial_rows, torch.cat([terms, terms]))
        angular = torch.zeros(
            num_atoms * self.num_pairs, self.angular_sublength, dtype=vectors.dtype, device=vectors.device
        )
        close = distances < self.angular_cutoff
        close = torch.cat([close, close])
        keep = (close[triplet_j] & close[triplet_k]).nonzero().flatten()
        directed = torch.cat([vectors, -vectors])
        lengths = torch.cat([distances, distances])
        angular.index_add_(
            0, angular_rows[keep], self._angular_terms(directed, lengths, triplet_j[keep], triplet_k[keep])
        )
        return torch.cat(
            [
                radial.view(num_atoms, self.num_species * self.radial_sublength),
                angular.view(num_atoms, self.num_pairs * self.angular_sublength),
            ],
            dim=1,
        )

    def forward(self, species: Tensor, coordinates: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """AEVs of a padded batch.

        Parameters
        ----------
        species
            ``[B, N]`` element indices, -1 for padding.
        coordinates
            ``[B, N, 3]`` positions in Å.
        cell
            Optional ``[3, 3]`` periodic box vectors (rows) in Å.

        Returns
        -------
        Tensor
            ``[B, N, L]`` AEVs (zero rows for padding atoms), differentiable once with respect to
            ``coordinates`` on the kernel (CPU, ``use_kernel``), and any number of times otherwise.
        """
        if self.use_kernel:
            # the cell is a constant on both paths (no stress): neighbor_pairs detaches it too
            if coordinates.device.type == "cpu":
                if cell is not None:
                    check_box(cell, self.radial_cutoff)
                return torch.ops.openmm_ani.aev_batch(
                    coordinates, species, cell, self.radial_cutoff, self.angular_cutoff, self.radial_eta,
                    self.radial_shifts, self.angular_eta, self.angular_zeta, self.angular_shifts,
                    self.angle_sections, self.num_species)
        return self.differentiable(species, coordinates, cell)

    @torch.jit.export
    def differentiable(self, species: Tensor, coordinates: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """The AEVs ``[B, N, L]`` of :meth:`forward` through tensor operations that autograd can
        differentiate any number of times (force training, Hessians), on any device; slower."""
        if cell is not None:
            check_box(cell, self.radial_cutoff)
        first, second, vectors = neighbor_pairs(species, coordinates, self.radial_cutoff, cell, self.all_pairs_max_atoms)
        aev = self.from_pairs(species.reshape(-1), first, second, vectors)
        return aev.view(species.shape[0], species.shape[1], self.length)

    def from_pairs(self, species: Tensor, first: Tensor, second: Tensor, vectors: Tensor) -> Tensor:
        """AEVs from a half neighbour list within the radial cutoff.

        Parameters
        ----------
        species
            ``[A]`` element indices of all atoms (flat), -1 for padding.
        first, second
            ``[P]`` atom indices of each pair.
        vectors
            ``[P, 3]`` vectors ``r_second - r_first`` in Å, all shorter than the radial cutoff.

        Returns
        -------
        Tensor
            ``[A, L]`` AEVs.
        """
        num_atoms = species.shape[0]
        distances = torch.linalg.vector_norm(vectors, dim=1)
        radial = self._radial(species, first, second, distances, num_atoms)
        close = (distances < self.angular_cutoff).nonzero().flatten()
        angular = self._angular(
            species, first.index_select(0, close), second.index_select(0, close),
            vectors.index_select(0, close), distances.index_select(0, close), num_atoms,
        )
        return torch.cat([radial, angular], dim=1)

    def _angular_terms(self, directed: Tensor, lengths: Tensor, j: Tensor, k: Tensor) -> Tensor:
        """Angular terms ``[T, angular_sublength]`` of triplets (centre -> ``j``, centre -> ``k``)."""
        v1 = directed[j]
        v2 = directed[k]
        d1 = lengths[j]
        d2 = lengths[k]
        cos_angle = 0.95 * (v1 * v2).sum(1) / torch.clamp_min(d1 * d2, self.cosine_guard)
        sin_angle = torch.sqrt(1.0 - cos_angle * cos_angle)
        # The angular block is an outer product of an angle factor over (Zeta, ShfZ) and a
        # distance factor over (EtaA, ShfA); each is computed on its own small grid.
        angle = (1.0 + cos_angle.unsqueeze(1) * self.cos_shf_z + sin_angle.unsqueeze(1) * self.sin_shf_z) * 0.5
        angle = angle.unsqueeze(1) ** self.zeta  # [T, nZeta, nShfZ]
        fc = 2.0 * cosine_cutoff(d1, self.angular_cutoff) * cosine_cutoff(d2, self.angular_cutoff)
        mean_d = (0.5 * (d1 + d2)).unsqueeze(1)
        radial = torch.exp(-self.eta_a * (mean_d - self.shf_a) ** 2) * fc.unsqueeze(1)  # [T, nEtaA * nShfA]
        radial = radial.view(-1, self.num_eta_a, 1, self.num_shf_a, 1)
        return (radial * angle.view(-1, 1, self.num_zeta, 1, self.num_shf_z)).reshape(-1, self.angular_sublength)

    def _radial(self, species: Tensor, first: Tensor, second: Tensor, distances: Tensor, num_atoms: int) -> Tensor:
        d = distances.unsqueeze(1)
        terms = 0.25 * torch.exp(-self.eta_r * (d - self.shf_r) ** 2) * cosine_cutoff(d, self.radial_cutoff)
        rows = torch.cat([first * self.num_species + species[second], second * self.num_species + species[first]])
        out = torch.zeros(
            num_atoms * self.num_species, self.radial_sublength, dtype=terms.dtype, device=terms.device
        )
        out.index_add_(0, rows, torch.cat([terms, terms]))
        return out.view(num_atoms, self.num_species * self.radial_sublength)

    def _angular(
        self, species: Tensor, first: Tensor, second: Tensor, vectors: Tensor, distances: Tensor, num_atoms: int
    ) -> Tensor:
        # Directed neighbour list: each pair seen from both of its atoms, grouped by centre atom.
        centre = torch.cat([first, second])
        other = torch.cat([second, first])
        directed = torch.cat([vectors, -vectors])
        lengths = torch.cat([distances, distances])
        centre, order = torch.sort(centre, stable=True)
        other = other[order]
        directed = directed[order]
        lengths = lengths[order]
        counts = torch.bincount(centre, minlength=num_atoms)
        out = torch.zeros(
            num_atoms * self.num_pairs, self.angular_sublength, dtype=vectors.dtype, device=vectors.device
        )
        if centre.shape[0] == 0:
            return out.view(num_atoms, self.num_pairs * self.angular_sublength)
        atom_of_triplet, j, k = triplets_of(counts)

        rows = atom_of_triplet * self.num_pairs + self.pair_table[species[other[j]], species[other[k]]]
        # Chunks over triplets keep every floating-point intermediate (and its gradient in
        # the backward pass) cache-resident; a single chunk for small systems.
        total = j.shape[0]
        for begin in range(0, total, self.angular_chunk):
            end = min(begin + self.angular_chunk, total)
            out.index_add_(0, rows[begin:end], self._angular_terms(directed, lengths, j[begin:end], k[begin:end]))
        return out.view(num_atoms, self.num_pairs * self.angular_sublength)
