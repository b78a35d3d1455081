"""Training losses and the differentiable energy evaluation they use.

The energy loss is NeuroChem's and TorchANI's: the squared energy error of each
conformation divided by the square root of its number of atoms, averaged over the
batch. The optional force term is the squared force error summed over components and
divided by the number of atoms, averaged over the batch, times a coefficient
(TorchANI's example uses 0.1). Energies are Ha, forces Ha/Å.

Energies are compared *relative to the self energies*: the network output (the sum of
atomic energies) is fitted to ``E - sum(self energies)``, computed in float64, so that a
float32 model never subtracts two numbers of ~100 Ha.
"""

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from openmm_ani.model import ANIModel
from openmm_ani.model.fused import kernel_aevs, kernels_available


class LossTerms(NamedTuple):
    """A batch's loss and its parts (all 0-d tensors)."""

    total: Tensor
    energy: Tensor
    force: Tensor


def network_energies(model: ANIModel, species: Tensor, coordinates: Tensor) -> Tensor:
    """Sum of atomic network energies, without self energies.

    Parameters
    ----------
    model
        The model (any number of members).
    species
        ``[B, N]`` element indices (-1 padding), see ``model.species``.
    coordinates
        ``[B, N, 3]`` positions, Å.

    Returns
    -------
    Tensor
        ``[M, B]`` energies in Ha, differentiable with respect to parameters, and with respect to
        coordinates when they require grad.

    Notes
    -----
    When the coordinates need no gradient (training on energies only) and the C++ kernels are built,
    the AEVs — constants with respect to the weights — come from the kernel, with no autograd graph;
    otherwise (force training, GPUs) from the model's twice-differentiable AEV path (the force
    loss differentiates the forces with respect to the weights, a second derivative that the
    kernel's analytic backward does not provide).
    """
    if not coordinates.requires_grad and coordinates.device.type == "cpu" and kernels_available():
        aev = kernel_aevs(model.aev, species, coordinates).to(coordinates.dtype)
    else:
        aev = model.aev.differentiable(species, coordinates)
    atomic = model.networks(species.reshape(-1), aev.reshape(-1, aev.shape[-1]))
    return atomic.view(model.num_models, species.shape[0], species.shape[1]).sum(-1)


def reference_residuals(model: ANIModel, species: Tensor, energies: Tensor) -> Tensor:
    """``energies - sum(self energies)`` in float64, Ha, ``[B]``."""
    return energies.to(torch.float64) - model.self_energies(species)


def energy_loss(predicted: Tensor, target: Tensor, num_atoms: Tensor) -> Tensor:
    """``mean((predicted - target)**2 / sqrt(num_atoms))`` over the batch (Ha^2); inputs ``[B]``."""
    error = predicted - target.to(predicted.dtype)
    return (error * error / num_atoms.to(predicted.dtype).sqrt()).mean()


def force_loss(predicted: Tensor, target: Tensor, num_atoms: Tensor) -> Tensor:
    """``mean(sum((F_pred - F_ref)**2) / num_atoms)`` over the batch ((Ha/Å)^2); forces ``[B, N, 3]``."""
    error = predicted - target.to(predicted.dtype)
    return ((error * error).sum(dim=(1, 2)) / num_atoms.to(predicted.dtype)).mean()


def batch_loss(
    model: torch.nn.Module,
    ani: ANIModel,
    atomic_numbers: Tensor,
    coordinates: Tensor,
    energies: Tensor,
    num_atoms: Tensor,
    forces: Optional[Tensor] = None,
    force_coefficient: float = 0.0,
) -> Tuple[LossTerms, Tensor]:
    """Loss of one padded batch.

    Parameters
    ----------
    model
        Module mapping ``(species, coordinates)`` to network energies ``[B]`` — the
        :class:`EnergyModule` of ``ani``, possibly wrapped in DistributedDataParallel.
    ani
        The underlying :class:`ANIModel` (for the species map and self energies).
    atomic_numbers, coordinates, energies, num_atoms, forces
        The batch: ``[B, N]``, ``[B, N, 3]`` Å, ``[B]`` Ha, ``[B]``, ``[B, N, 3]`` Ha/Å or None.
    force_coefficient
        Weight of the force term; 0 (or ``forces`` None) trains on energies only.

    Returns
    -------
    (LossTerms, Tensor)
        The loss terms and the energy errors ``predicted - reference`` ``[B]`` (detached, float64), Ha.
    """
    species = ani.species(atomic_numbers)
    target = reference_residuals(ani, species, energies)
    use_forces = forces is not None and force_coefficient > 0.0
    if use_forces:
        coordinates = coordinates.detach().requires_grad_(True)
    predicted = model(species, coordinates)
    e_loss = energy_loss(predicted, target, num_atoms)
    if use_forces and forces is not None:
        gradient = torch.autograd.grad(predicted.sum(), coordinates, create_graph=True)[0]
        f_loss = force_loss(-gradient, forces, num_atoms)
    else:
        f_loss = torch.zeros((), dtype=e_loss.dtype, device=e_loss.device)
    error = predicted.detach().to(torch.float64) - target
    return LossTerms(e_loss + force_coefficient * f_loss, e_loss.detach(), f_loss.detach()), error


class EnergyModule(torch.nn.Module):
    """``forward(species [B, N], coordinates [B, N, 3] Å) -> [B]`` network energies (Ha) of a one-member model.

    The module DistributedDataParallel wraps: it holds the :class:`ANIModel` as a child so
    its parameters are the model's.
    """

    def __init__(self, model: ANIModel) -> None:
        super().__init__()
        if model.num_models != 1:
            raise ValueError(f"a trainable model has one member, got {model.num_models}")
        self.model = model

    def forward(self, species: Tensor, coordinates: Tensor) -> Tensor:
        return network_energies(self.model, species, coordinates)[0]
