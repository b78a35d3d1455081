"""AEVs with their analytic gradient, for the TorchScript path of the fused energy + forces.

:class:`AnalyticAEV` computes, for one structure, the AEVs and then, for a given ``aev_grad``
(the derivative of the energy with respect to the AEVs), the gradient with respect to the
positions of ``sum(aev * aev_grad)``: the chain rule of the AEV written out, so no autograd graph
is built. It is the portable twin of the C++ kernel (:mod:`openmm_ani.kernels`), used on GPUs,
where the kernel is not built, and in exported files that must run without openmm-ani.

Pairs are a half list (``first``, ``second``, vectors ``r_second - r_first``, Å). The directed
list holds every pair twice: entry ``e < P`` is pair ``e`` seen from ``first``, entry ``P + e``
the same pair seen from ``second`` (vector negated). Triplets ``(tj, tk)`` index the directed
list; their centre is the common first atom. The term formulas are those of
:class:`~openmm_ani.model.aev.AEVComputer` (whose methods this class reuses for the AEVs).
"""

import math
from typing import Tuple

import torch
from torch import Tensor

from .aev import AEVComputer, cosine_cutoff, triplets_of


class Structure:
    """Pairs and triplets of one structure, the input of :meth:`AnalyticAEV.aev` and ``gradient``."""

    def __init__(self, first: Tensor, second: Tensor, vectors: Tensor, within: Tensor,
                 tj: Tensor, tk: Tensor, rows: Tensor) -> None:
        self.first = first
        self.second = second
        self.vectors = vectors
        self.distances = torch.linalg.vector_norm(vectors, dim=1)
        #: [P, 1] 1 for pairs inside the radial cutoff, 0 otherwise (fixed tables keep far pairs)
        self.within = within
        self.tj = tj
        self.tk = tk
        self.rows = rows


class AnalyticAEV(AEVComputer):
    """An :class:`AEVComputer` that also back-propagates analytically to positions."""

    @torch.jit.export
    def structure_from_pairs(self, species: Tensor, first: Tensor, second: Tensor, vectors: Tensor) -> Structure:
        """Triplets of a half neighbour list within the radial cutoff (``species`` ``[A]``, -1 padding)."""
        num_atoms = species.shape[0]
        num_pairs = first.shape[0]
        distances = torch.linalg.vector_norm(vectors, dim=1)
        close = (distances < self.angular_cutoff).nonzero().flatten()
        directed = torch.cat([close, close + num_pairs])
        centre = torch.cat([first.index_select(0, close), second.index_select(0, close)])
        other = torch.cat([second.index_select(0, close), first.index_select(0, close)])
        centre, order = torch.sort(centre, stable=True)
        other = other[order]
        directed = directed[order]
        within = torch.ones(num_pairs, 1, dtype=vectors.dtype, device=vectors.device)
        if centre.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.long, device=vectors.device)
            return Structure(first, second, vectors, within, empty, empty, empty)
        atom_of_triplet, j, k = triplets_of(torch.bincount(centre, minlength=num_atoms))
        rows = atom_of_triplet * self.num_pairs + self.pair_table[species[other[j]], species[other[k]]]
        return Structure(first, second, vectors, within, directed[j], directed[k], rows)

    @torch.jit.export
    def structure_from_tables(self, coordinates: Tensor, first: Tensor, second: Tensor, triplet_j: Tensor,
                              triplet_k: Tensor, angular_rows: Tensor) -> Structure:
        """Pairs and triplets from the fixed tables of :meth:`AEVComputer.fixed_tables` (open molecule)."""
        vectors = coordinates.index_select(0, second) - coordinates.index_select(0, first)
        distances = torch.linalg.vector_norm(vectors, dim=1)
        within = (distances < self.radial_cutoff).to(vectors.dtype).unsqueeze(1)
        close = distances < self.angular_cutoff
        close = torch.cat([close, close])
        keep = (close[triplet_j] & close[triplet_k]).nonzero().flatten()
        return Structure(first, second, vectors, within, triplet_j[keep], triplet_k[keep], angular_rows[keep])

    @torch.jit.export
    def aev(self, species: Tensor, s: Structure) -> Tensor:
        """AEVs ``[A, L]`` of the structure (``species`` ``[A]``, -1 padding)."""
        num_atoms = species.shape[0]
        d = s.distances.unsqueeze(1)
        terms = 0.25 * torch.exp(-self.eta_r * (d - self.shf_r) ** 2) * cosine_cutoff(d, self.radial_cutoff) * s.within
        rows = torch.cat([s.first * self.num_species + species[s.second], s.second * self.num_species + species[s.first]])
        radial = torch.zeros(num_atoms * self.num_species, self.radial_sublength, dtype=terms.dtype, device=terms.device)
        radial.index_add_(0, rows, torch.cat([terms, terms]))
        angular = torch.zeros(num_atoms * self.num_pairs, self.angular_sublength, dtype=terms.dtype,
                              device=terms.device)
        directed = torch.cat([s.vectors, -s.vectors])
        lengths = torch.cat([s.distances, s.distances])
        total = s.tj.shape[0]
        for begin in range(0, total, self.angular_chunk):
            end = min(begin + self.angular_chunk, total)
            angular.index_add_(0, s.rows[begin:end],
                               self._angular_terms(directed, lengths, s.tj[begin:end], s.tk[begin:end]))
        return torch.cat([radial.view(num_atoms, -1), angular.view(num_atoms, -1)], dim=1)

    @torch.jit.export
    def gradient(self, species: Tensor, s: Structure, aev_grad: Tensor) -> Tensor:
        """Gradient ``[A, 3]`` with respect to positions of ``sum(aev * aev_grad)`` (``aev_grad`` ``[A, L]``)."""
        num_atoms = species.shape[0]
        num_pairs = s.first.shape[0]
        radial_length = self.num_species * self.radial_sublength
        radial_grad = aev_grad[:, :radial_length].reshape(num_atoms * self.num_species, self.radial_sublength)
        angular_grad = aev_grad[:, radial_length:].reshape(num_atoms * self.num_pairs, self.angular_sublength)
        # radial: dE/dd of each pair, from the AEV rows of both atoms
        d = s.distances.unsqueeze(1)
        diff = d - self.shf_r
        derivative = 0.25 * torch.exp(-self.eta_r * diff * diff) * (
            -2.0 * self.eta_r * diff * cosine_cutoff(d, self.radial_cutoff) + _cutoff_derivative(d, self.radial_cutoff))
        seen_from_first = radial_grad.index_select(0, s.first * self.num_species + species[s.second])
        seen_from_second = radial_grad.index_select(0, s.second * self.num_species + species[s.first])
        dedd = ((seen_from_first + seen_from_second) * derivative * s.within).sum(1)
        pair_grad = _along(dedd, s.distances, s.vectors)
        # angular: gradient of each directed vector, folded onto pairs
        directed = torch.cat([s.vectors, -s.vectors])
        lengths = torch.cat([s.distances, s.distances])
        directed_grad = torch.zeros_like(directed)
        total = s.tj.shape[0]
        for begin in range(0, total, self.angular_chunk):
            end = min(begin + self.angular_chunk, total)
            tj = s.tj[begin:end]
            tk = s.tk[begin:end]
            g1, g2 = self._angular_gradient(directed, lengths, tj, tk, angular_grad.index_select(0, s.rows[begin:end]))
            directed_grad.index_add_(0, tj, g1)
            directed_grad.index_add_(0, tk, g2)
        pair_grad = pair_grad + directed_grad[:num_pairs] - directed_grad[num_pairs:]
        out = torch.zeros(num_atoms, 3, dtype=directed.dtype, device=directed.device)
        out.index_add_(0, s.second, pair_grad)
        out.index_add_(0, s.first, -pair_grad)
        return out

    def _angular_gradient(self, directed: Tensor, lengths: Tensor, tj: Tensor, tk: Tensor,
                          block: Tensor) -> Tuple[Tensor, Tensor]:
        """Gradients ``[T, 3]`` of ``sum(terms * block)`` with respect to the two directed vectors of each triplet."""
        v1 = directed[tj]
        v2 = directed[tk]
        d1 = lengths[tj]
        d2 = lengths[tk]
        dot = (v1 * v2).sum(1)
        product = d1 * d2
        guarded = product <= self.cosine_guard
        denominator = torch.clamp_min(product, self.cosine_guard)
        a = 0.95 * dot / denominator
        sin_a = torch.sqrt(1.0 - a * a)
        base = (1.0 + a.unsqueeze(1) * self.cos_shf_z + sin_a.unsqueeze(1) * self.sin_shf_z) * 0.5  # [T, nS]
        dbase = (self.cos_shf_z - self.sin_shf_z * (a / sin_a).unsqueeze(1)) * 0.5
        lower = base.unsqueeze(1) ** (self.zeta - 1.0)  # [T, nZ, nS]
        f = lower * base.unsqueeze(1)
        df = self.zeta * lower * dbase.unsqueeze(1)
        fc1 = cosine_cutoff(d1, self.angular_cutoff)
        fc2 = cosine_cutoff(d2, self.angular_cutoff)
        cut2 = 2.0 * fc1 * fc2
        diff = (0.5 * (d1 + d2)).unsqueeze(1) - self.shf_a  # [T, nEtaA * nShfA]
        q = torch.exp(-self.eta_a * diff * diff)
        count = tj.shape[0]
        g = block.view(count, self.num_eta_a, self.num_zeta, self.num_shf_a, self.num_shf_z)
        sum_zs = (g * f.view(count, 1, self.num_zeta, 1, self.num_shf_z)).sum((2, 4)).reshape(count, -1)
        sum_ih = (g * q.view(count, self.num_eta_a, 1, self.num_shf_a, 1)).sum((1, 3))
        deda = cut2 * (sum_ih * df).sum((1, 2))
        weighted = sum_zs * q
        plain = weighted.sum(1)
        slope = (weighted * (-2.0 * self.eta_a * diff)).sum(1)
        dedd1 = 2.0 * _cutoff_derivative(d1, self.angular_cutoff) * fc2 * plain + 0.5 * cut2 * slope
        dedd2 = 2.0 * fc1 * _cutoff_derivative(d2, self.angular_cutoff) * plain + 0.5 * cut2 * slope
        # da/dv1 = 0.95 (v2 - dot v1 / d1^2) / (d1 d2); while the guard is active, 0.95 v2 / guard
        scale = (0.95 * deda / denominator).unsqueeze(1)
        zero = torch.zeros_like(dot)
        r1 = torch.where(guarded, zero, dot / (d1 * d1)).unsqueeze(1)
        r2 = torch.where(guarded, zero, dot / (d2 * d2)).unsqueeze(1)
        g1 = scale * (v2 - r1 * v1) + _along(dedd1, d1, v1)
        g2 = scale * (v1 - r2 * v2) + _along(dedd2, d2, v2)
        return g1, g2


def _cutoff_derivative(distances: Tensor, cutoff: float) -> Tensor:
    """Derivative of :func:`~openmm_ani.model.aev.cosine_cutoff` with respect to the distance."""
    return -0.5 * (math.pi / cutoff) * torch.sin(distances * (math.pi / cutoff))


def _along(dedd: Tensor, distances: Tensor, vectors: Tensor) -> Tensor:
    """``dE/dd * v / d`` per row (zero for zero-length vectors, where the norm has no direction)."""
    safe = torch.where(distances > 0, distances, torch.ones_like(distances))
    factor = torch.where(distances > 0, dedd / safe, torch.zeros_like(dedd))
    return factor.unsqueeze(1) * vectors

