"""Stage 3 of the ANI pipeline: per-element atomic networks, all ensemble members at once.

Each element has a feed-forward network mapping an atom's AEV to its energy
contribution (Ha). An ensemble of ``M`` models is evaluated in one pass: each layer
holds the weights of all members stacked, the first layer as one matrix product
shared by every member (the AEV is the same) and later layers as batched matrix
products. A single member is an ensemble of one.

Activation codes follow NeuroChem's ``activation=`` numbers: 5 Gaussian ``exp(-x**2)``,
6 identity, 9 CELU with ``alpha = 0.1``.
"""

import struct
from typing import Final, List, Sequence, Tuple

import torch
from torch import Tensor

#: NeuroChem activation code: Gaussian ``exp(-x**2)``.
GAUSSIAN: Final[int] = 5
#: NeuroChem activation code: identity (the output layer).
IDENTITY: Final[int] = 6
#: NeuroChem activation code: CELU with ``alpha = CELU_ALPHA``.
CELU: Final[int] = 9
#: The CELU ``alpha`` of NeuroChem's code 9.
CELU_ALPHA: Final[float] = 0.1
#: torch's autograd differentiates CELU with ``1 / alpha`` taken from ``alpha`` rounded to float32
#: (``elu_backward(..., input_scale=1.0/alpha.toFloat())``), so the derivative it gives, and TorchANI's
#: forces with it, is ``alpha * k * exp(x * k)`` with ``k = 1 / float32(alpha)`` for ``x <= 0``: within
#: 1e-7 (relative) of the exact ``exp(x / alpha)``. The analytic paths use the same constant, so that
#: forces equal autograd's and TorchANI's to rounding in float64 (in float32 both constants round to
#: the exact ones).
CELU_GRAD_SCALE: Final[float] = 1.0 / float(struct.unpack("f", struct.pack("f", CELU_ALPHA))[0])
#: Activation codes this module implements.
ACTIVATIONS: Final[List[int]] = [GAUSSIAN, IDENTITY, CELU]


class StackedLinear(torch.nn.Module):
    """One dense layer for ``M`` ensemble members, followed by an activation.

    Parameters
    ----------
    weight
        ``[M, in, out]`` weights (``y = x @ W + b``); a first layer stores them as
        ``[in, M * out]``, other layers as given.
    bias
        ``[M, out]`` biases.
    activation
        NeuroChem activation code (5, 6 or 9).
    shared_input
        True for a first layer, whose input ``[n, in]`` is the same for every member;
        the output is then ``[M, n, out]``. Otherwise input and output are ``[M, n, *]``.
    """

    activation: Final[int]
    use_celu: Final[bool]
    use_gaussian: Final[bool]
    celu_alpha: Final[float]
    celu_grad_scale: Final[float]
    shared_input: Final[bool]
    num_models: Final[int]
    in_features: Final[int]
    out_features: Final[int]

    def __init__(self, weight: Tensor, bias: Tensor, activation: int, shared_input: bool) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unsupported activation code {activation}; known codes are {ACTIVATIONS}")
        self.activation = int(activation)
        self.use_celu = self.activation == CELU
        self.use_gaussian = self.activation == GAUSSIAN
        self.celu_alpha = CELU_ALPHA
        self.celu_grad_scale = CELU_GRAD_SCALE
        self.shared_input = bool(shared_input)
        self.num_models, self.in_features, self.out_features = (int(s) for s in weight.shape)
        if shared_input:
            # [in, M * out] (members side by side) so that the product with the shared input is
            # one matrix multiplication with no reshaping of the weights per call.
            self.weight = torch.nn.Parameter(
                weight.permute(1, 0, 2).reshape(self.in_features, self.num_models * self.out_features).contiguous()
            )
            self.bias = torch.nn.Parameter(bias.reshape(-1).clone())
        else:
            self.weight = torch.nn.Parameter(weight.clone())
            self.bias = torch.nn.Parameter(bias.unsqueeze(1).clone())

    def restrict_inputs(self, columns: Tensor) -> None:
        """Keep only the input features ``columns`` of a first layer (in place).

        Exact when the dropped features are always zero, as the AEV blocks of elements absent
        from a fixed set of atoms are.
        """
        if not self.shared_input:
            raise ValueError("only a first (shared-input) layer can drop input features")
        with torch.no_grad():
            self.weight = torch.nn.Parameter(
                self.weight.index_select(0, columns).contiguous(), requires_grad=self.weight.requires_grad
            )
        self.in_features = int(columns.shape[0])

    def stacked_weight(self) -> Tensor:
        """Weights as ``[M, in, out]`` whatever the storage layout."""
        if self.shared_input:
            return self.weight.reshape(self.weight.shape[0], self.num_models, self.out_features).permute(1, 0, 2)
        return self.weight

    def stacked_bias(self) -> Tensor:
        """Biases as ``[M, out]``."""
        return self.bias.reshape(self.num_models, self.out_features)

    @torch.jit.export
    def with_derivative(self, x: Tensor, need_derivative: bool) -> Tuple[Tensor, Tensor]:
        """The layer's output ``[M, n, out]`` and the activation's derivative at the pre-activation
        (same shape; empty for the identity or when not needed)."""
        if self.shared_input:
            flat = torch.addmm(self.bias, x, self.weight)
            z = flat.view(x.shape[0], self.num_models, self.out_features).transpose(0, 1)
        else:
            z = torch.baddbmm(self.bias, x, self.weight)
        empty = torch.zeros(0, dtype=z.dtype, device=z.device)
        if self.use_celu:
            y = torch.nn.functional.celu(z, self.celu_alpha)
            if not need_derivative:
                return y, empty
            k = self.celu_grad_scale
            slope = (self.celu_alpha * k) * torch.exp(torch.clamp_max(z, 0.0) * k)
            return y, torch.where(z > 0.0, torch.ones_like(z), slope)
        if self.use_gaussian:
            y = torch.exp(-z * z)
            return y, (-2.0 * z * y if need_derivative else empty)
        return z, empty

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer: ``[n, in]`` (shared input) or ``[M, n, in]`` to ``[M, n, out]``."""
        if self.shared_input:
            flat = torch.addmm(self.bias, x, self.weight)
            y = flat.view(x.shape[0], self.num_models, self.out_features).transpose(0, 1)
        else:
            y = torch.baddbmm(self.bias, x, self.weight)
        if self.use_celu:
            return torch.nn.functional.celu(y, self.celu_alpha)
        if self.use_gaussian:
            return torch.exp(-y * y)
        return y


class ElementNetwork(torch.nn.Module):
    """The stacked networks of one element: AEVs ``[n, L]`` to atomic energies ``[M, n]`` (Ha)."""

    def __init__(self, layers: Sequence[StackedLinear]) -> None:
        super().__init__()
        if len(layers) == 0 or not layers[0].shared_input:
            raise ValueError("an element network needs a first layer with shared_input=True")
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, aev: Tensor) -> Tensor:
        h = aev
        for layer in self.layers:
            h = layer(h)
        return h.squeeze(-1)

    @torch.jit.export
    def energy_and_gradient(self, aev: Tensor, need_gradient: bool) -> Tuple[Tensor, Tensor]:
        """Energies ``[M]`` (Ha, summed over the ``n`` atoms) and, if asked, the gradient ``[n, L]`` of
        their mean over members with respect to ``aev`` ``[n, L]``, written out (no autograd)."""
        h = aev
        weights: List[Tensor] = []
        derivatives: List[Tensor] = []
        for layer in self.layers:
            h, derivative = layer.with_derivative(h, need_gradient)
            weights.append(layer.weight)
            derivatives.append(derivative)
        energies = h.sum((1, 2))
        if not need_gradient:
            return energies, torch.zeros(0, dtype=aev.dtype, device=aev.device)
        members = h.shape[0]
        count = h.shape[1]
        g = torch.full([members, count, 1], 1.0 / members, dtype=aev.dtype, device=aev.device)
        last = len(weights) - 1
        if derivatives[last].numel() > 0:
            g = g * derivatives[last]
        for index in range(last, 0, -1):
            g = torch.bmm(g, weights[index].transpose(1, 2))
            if derivatives[index - 1].numel() > 0:
                g = g * derivatives[index - 1]
        flat = g.transpose(0, 1).reshape(count, -1)  # [n, M * out], the first layer's column order
        return energies, torch.mm(flat, weights[0].t())


class AtomicNetworks(torch.nn.Module):
    """Per-element networks of an ensemble of ``M`` models.

    Parameters
    ----------
    networks
        One :class:`ElementNetwork` per element, in the model's element order.

    Notes
    -----
    ``forward(species [A], aev [A, L])`` returns atomic energies ``[M, A]`` in Ha,
    zero for padding atoms (species -1).
    """

    num_models: Final[int]
    num_species: Final[int]

    def __init__(self, networks: Sequence[ElementNetwork]) -> None:
        super().__init__()
        self.networks = torch.nn.ModuleList(networks)
        counts = {int(net.layers[0].num_models) for net in networks}
        if len(counts) != 1:
            raise ValueError(f"all element networks must have the same number of models, got {sorted(counts)}")
        self.num_models = counts.pop()
        self.num_species = len(networks)

    def forward(self, species: Tensor, aev: Tensor) -> Tensor:
        out = torch.zeros(self.num_models, species.shape[0], dtype=aev.dtype, device=aev.device)
        for element, network in enumerate(self.networks):
            atoms = (species == element).nonzero().flatten()
            if atoms.shape[0] > 0:
                out = out.index_add(1, atoms, network(aev.index_select(0, atoms)))
        return out

    @torch.jit.export
    def sorted_energies(self, aev: Tensor, counts: List[int]) -> Tensor:
        """Total network energy of one molecule whose atoms are sorted by element.

        Parameters
        ----------
        aev
            ``[A, L]`` AEVs, the first ``counts[0]`` atoms of element 0, then element 1, ...
        counts
            Number of atoms of each element.

        Returns
        -------
        Tensor
            ``[M]`` sum of atomic energies for each member, Ha.
        """
        total = torch.zeros(self.num_models, dtype=aev.dtype, device=aev.device)
        start = 0
        for element, network in enumerate(self.networks):
            count = counts[element]
            if count > 0:
                total = total + network(aev[start : start + count]).sum(1)
            start += count
        return total
