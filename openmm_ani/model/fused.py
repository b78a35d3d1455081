"""Energy and forces in one pass, without an autograd graph.

:class:`FusedANI` evaluates the networks of a fixed set of elements on one structure and returns
the member energies with the analytic gradient of their mean: in one call of the C++ kernel
``torch.ops.openmm_ani.energy_gradient`` (:mod:`openmm_ani.kernels`) on CPU tensors when the kernel
is built, otherwise through the analytic TorchScript path (:class:`~.aev_gradient.AnalyticAEV`
and :meth:`~.networks.ElementNetwork.energy_and_gradient`), which runs on any device and in files
that must load without openmm-ani. Both compute the same quantities; tests hold them to TorchANI
and to finite differences.

Units: positions and cells in Å, energies in Ha, gradients in Ha/Å.
"""

import dataclasses
from typing import Final, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .. import kernels
from .aev_gradient import AnalyticAEV
from .aev_parameters import AEVParameters
from .neighbors import ALL_PAIRS_MAX_ATOMS, check_box, neighbor_pairs
from .networks import ElementNetwork

kernels.load()  # `import openmm_ani` registers torch.ops.openmm_ani when the library is built


def kernels_available() -> bool:
    """Whether the C++ kernel (``torch.ops.openmm_ani``) is loaded."""
    return kernels.available()


class FusedANI(torch.nn.Module):
    """Member energies and the analytic gradient of their mean for one structure.

    Parameters
    ----------
    parameters
        AEV hyper-parameters; ``num_species`` is replaced by ``len(networks)``.
    networks
        One stacked :class:`ElementNetwork` per element, in element-index order. Their first layers
        must take AEVs of ``len(networks)`` elements (for a subset of a model's elements, restricted
        with :meth:`~.networks.StackedLinear.restrict_inputs`, which gives the same layout). Used as
        given, not copied.
    use_kernel
        Call the C++ kernel for CPU tensors (``None``: when it is available). ``False`` gives a module
        whose TorchScript code does not reference ``torch.ops.openmm_ani`` (portable files).
    fixed_species
        ``[N]`` element indices of an open molecule whose elements never change: the TorchScript path
        then uses pair and triplet tables built once (:meth:`~.aev.AEVComputer.fixed_tables`).
    sorted_counts
        Atoms per element when the structure's atoms are always sorted by element (each element a
        contiguous block), which spares the TorchScript path a search per element.
    threads
        Threads of the C++ kernel: ``1`` runs it on the calling thread only (no BLAS or AEV threads),
        ``0`` uses torch's intra-op threads.

    Notes
    -----
    ``forward(positions [N, 3] Å, species [N] (-1: ignored), cell [3, 3] Å or None, need_gradient)``
    returns ``(energies [M] float64 Ha, gradient [N, 3] Ha/Å)``: network energies summed over atoms for
    each member (no self energies), and the gradient of their mean (``[0, 3]`` when not asked for).
    """

    use_kernel: Final[bool]
    fixed: Final[bool]
    use_counts: Final[bool]
    counts: Final[List[int]]
    num_models: Final[int]
    num_elements: Final[int]
    threads: Final[int]
    layer_counts: Final[List[int]]
    activations: Final[List[int]]
    all_pairs_max_atoms: Final[int]
    weights_t: List[Tensor]

    def __init__(
        self,
        parameters: AEVParameters,
        networks: Sequence[ElementNetwork],
        use_kernel: Optional[bool] = None,
        fixed_species: Optional[Tensor] = None,
        sorted_counts: Optional[Sequence[int]] = None,
        threads: int = 0,
    ) -> None:
        super().__init__()
        if use_kernel is None:
            use_kernel = kernels.available()
            if not use_kernel:
                kernels.warn_unavailable()
        elif use_kernel and not kernels.available():
            raise RuntimeError(f"the openmm-ani C++ kernels are not available: {kernels.unavailable_reason()}")
        compact = dataclasses.replace(parameters, num_species=len(networks))
        self.aev = AnalyticAEV(compact, use_kernel=bool(use_kernel)).to(networks[0].layers[0].weight.dtype)
        self.networks = torch.nn.ModuleList(networks)
        self.use_kernel = bool(use_kernel)
        self.num_elements = len(networks)
        self.num_models = int(networks[0].layers[0].num_models)
        self.threads = int(threads)
        # the AEV hyper-parameters live once, in self.aev (AEVComputer's Final lists, the kernel's vocabulary)
        self.layer_counts = [len(network.layers) for network in networks]
        self.activations = [int(layer.activation) for network in networks for layer in network.layers]
        self.all_pairs_max_atoms = ALL_PAIRS_MAX_ATOMS
        # Transposed copies for the kernel's backward pass (its matrix products stream weights row by row).
        self.weights_t = transposed_weights(networks) if self.use_kernel else []
        self.use_counts = sorted_counts is not None
        self.counts = [int(c) for c in sorted_counts] if sorted_counts is not None else []
        self.fixed = fixed_species is not None
        tables = self.aev.fixed_tables(fixed_species) if fixed_species is not None else {}
        for key in ("first", "second", "triplet_j", "triplet_k", "angular_rows"):
            self.register_buffer("table_" + key, tables.get(key, torch.zeros(0, dtype=torch.long)))

    def forward(self, positions: Tensor, species: Tensor, cell: Optional[Tensor], need_gradient: bool) -> Tuple[Tensor, Tensor]:
        # No autograd graph whatever the inputs or weights require (results are constants to autograd).
        with torch.no_grad():
            result = self._evaluate(positions.detach(), species, cell, need_gradient)
        return result

    def _evaluate(self, positions: Tensor, species: Tensor, cell: Optional[Tensor], need_gradient: bool) -> Tuple[Tensor, Tensor]:
        if cell is not None:
            check_box(cell, self.aev.radial_cutoff)
        if self.use_kernel:
            if positions.device.type == "cpu":
                weights: List[Tensor] = []
                biases: List[Tensor] = []
                for network in self.networks:
                    for layer in network.layers:
                        weights.append(layer.weight)
                        biases.append(layer.bias)
                return torch.ops.openmm_ani.energy_gradient(
                    positions, species, cell, self.aev.radial_cutoff, self.aev.angular_cutoff, self.aev.radial_eta,
                    self.aev.radial_shifts, self.aev.angular_eta, self.aev.angular_zeta, self.aev.angular_shifts,
                    self.aev.angle_sections,
                    self.num_elements, self.num_models, weights, biases, self.weights_t, self.layer_counts,
                    self.activations, need_gradient, self.threads,
                )
        return self.portable(positions, species, cell, need_gradient)

    @torch.jit.export
    def differentiable(self, positions: Tensor, species: Tensor, cell: Optional[Tensor]) -> Tensor:
        """Member energies ``[M]`` (float64 Ha) through ordinary autograd-capable operations, for callers that
        differentiate each member (or twice) with autograd; slower than :meth:`forward`."""
        if cell is not None:
            check_box(cell, self.aev.radial_cutoff)
        if self.fixed:
            s = self.aev.structure_from_tables(positions, self.table_first, self.table_second, self.table_triplet_j,
                                               self.table_triplet_k, self.table_angular_rows)
        else:
            first, second, vectors = neighbor_pairs(species.unsqueeze(0), positions.unsqueeze(0), self.aev.radial_cutoff,
                                                    cell, self.all_pairs_max_atoms)
            s = self.aev.structure_from_pairs(species, first, second, vectors)
        aev = self.aev.aev(species, s)
        energies = torch.zeros(self.num_models, dtype=torch.float64, device=positions.device)
        for element, network in enumerate(self.networks):
            atoms = (species == element).nonzero().flatten()
            if atoms.shape[0] > 0:
                energies = energies + network(aev.index_select(0, atoms)).sum(1).to(torch.float64)
        return energies

    @torch.jit.export
    def portable(self, positions: Tensor, species: Tensor, cell: Optional[Tensor], need_gradient: bool) -> Tuple[Tensor, Tensor]:
        """The TorchScript path of :meth:`forward` (any device)."""
        x = positions.detach()
        if self.fixed:
            s = self.aev.structure_from_tables(x, self.table_first, self.table_second, self.table_triplet_j,
                                               self.table_triplet_k, self.table_angular_rows)
        else:
            first, second, vectors = neighbor_pairs(species.unsqueeze(0), x.unsqueeze(0), self.aev.radial_cutoff, cell,
                                                    self.all_pairs_max_atoms)
            s = self.aev.structure_from_pairs(species, first, second, vectors)
        aev = self.aev.aev(species, s)
        energies = torch.zeros(self.num_models, dtype=torch.float64, device=x.device)
        aev_grad = torch.zeros_like(aev) if need_gradient else aev
        start = 0
        for element, network in enumerate(self.networks):
            if self.use_counts:
                count = self.counts[element]
                if count > 0:
                    e, g = network.energy_and_gradient(aev[start:start + count], need_gradient)
                    energies = energies + e.to(torch.float64)
                    if need_gradient:
                        aev_grad[start:start + count] = g
                start += count
            else:
                atoms = (species == element).nonzero().flatten()
                if atoms.shape[0] > 0:
                    e, g = network.energy_and_gradient(aev.index_select(0, atoms), need_gradient)
                    energies = energies + e.to(torch.float64)
                    if need_gradient:
                        aev_grad.index_copy_(0, atoms, g)
        if not need_gradient:
            return energies, torch.zeros(0, 3, dtype=x.dtype, device=x.device)
        return energies, self.aev.gradient(species, s, aev_grad)


def transposed_weights(networks: Sequence[ElementNetwork]) -> List[Tensor]:
    """Contiguous transposes of every layer's weights (``[M * out, in]`` first layers, ``[M, out, in]`` others)."""
    out: List[Tensor] = []
    for network in networks:
        for layer in network.layers:
            weight = layer.weight.detach()
            out.append(weight.t().contiguous() if layer.shared_input else weight.transpose(1, 2).contiguous())
    return out


def kernel_aevs(aev: AnalyticAEV, species: Tensor, coordinates: Tensor) -> Tensor:
    """AEVs ``[B, N, L]`` of a padded batch of open molecules from the C++ kernel, with no autograd graph.

    ``aev`` is any :class:`~.aev.AEVComputer` (its hyper-parameters are used), ``species`` ``[B, N]``
    (-1 padding), ``coordinates`` ``[B, N, 3]`` Å on the CPU. Equal to ``aev(species, coordinates)``;
    for training on energies, where the AEVs are constants. Requires :func:`kernels_available`.
    """
    return torch.ops.openmm_ani.aev_batch(
        coordinates.detach(), species, None, aev.radial_cutoff, aev.angular_cutoff, aev.radial_eta, aev.radial_shifts,
        aev.angular_eta, aev.angular_zeta, aev.angular_shifts, aev.angle_sections, aev.num_species)
