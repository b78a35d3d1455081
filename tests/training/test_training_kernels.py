"""Training with the C++ kernels (issue 10, item 3).

Energy-only losses take their AEVs from the kernel (constants with respect to the weights, no
autograd graph); the loss and its weight gradients must equal those of the differentiable AEV
path. The force loss needs second derivatives and stays on autograd: its weight gradient is
checked against central finite differences of the loss itself.
"""

import numpy as np
import pytest
import torch

from openmm_ani import kernels
from openmm_ani.training import losses
from openmm_ani.training.build import build_random_model
from openmm_ani.training.config import small_config
from openmm_ani.training.losses import EnergyModule, batch_loss

pytestmark = pytest.mark.skipif(not kernels.available(), reason="C++ kernels not built")


def batch():
    """Three CHNO molecules padded to 6 atoms, with made-up labels (Å, Ha, Ha/Å)."""
    z = torch.tensor([[8, 1, 1, 0, 0, 0], [6, 1, 1, 1, 1, 0], [7, 1, 1, 1, 6, 8]])
    rng = np.random.default_rng(4)
    base = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0], [0.5, -0.6, 0.7], [1.4, 0.5, -0.4],
                     [-1.0, -0.8, 0.6]])
    x = torch.tensor(base[None] + rng.normal(0.0, 0.05, size=(3, 6, 3)))
    x[z == 0] = 0.0
    energies = torch.tensor([-76.3, -40.4, -170.2], dtype=torch.float64)
    forces = torch.tensor(rng.normal(0.0, 0.02, size=(3, 6, 3))) * (z > 0).unsqueeze(-1)
    return z, x, energies, (z > 0).sum(1), forces


def loss_and_gradients(model, use_kernel, force_coefficient, monkeypatch):
    monkeypatch.setattr(losses, "kernels_available", lambda: use_kernel)
    model.zero_grad()
    z, x, energies, counts, forces = batch()
    terms, _ = batch_loss(EnergyModule(model), model, z, x, energies, counts, forces, force_coefficient)
    terms.total.backward()
    return float(terms.total), [p.grad.clone() for p in model.parameters()]


def test_energy_loss_with_kernel_aevs_equals_autograd_path(monkeypatch):
    """Energy-only loss and every weight gradient: kernel AEVs = differentiable AEVs (float64, 1e-12)."""
    model = build_random_model(small_config(), seed=3, dtype=torch.float64)
    loss_k, grads_k = loss_and_gradients(model, True, 0.0, monkeypatch)
    loss_a, grads_a = loss_and_gradients(model, False, 0.0, monkeypatch)
    assert loss_k == pytest.approx(loss_a, rel=1e-12, abs=0.0)
    assert any(float(g.abs().max()) > 0 for g in grads_a)
    for gk, ga in zip(grads_k, grads_a):
        torch.testing.assert_close(gk, ga, rtol=1e-10, atol=1e-14)


def test_force_loss_weight_gradient_matches_finite_differences(monkeypatch):
    """With the force term the path is autograd's (second derivatives): d loss / d weight by central differences."""
    model = build_random_model(small_config(), seed=5, dtype=torch.float64)
    _, grads = loss_and_gradients(model, True, 0.1, monkeypatch)
    parameters = list(model.parameters())
    h = 1e-5
    for index in (0, 3, len(parameters) - 2):
        parameter, grad = parameters[index], grads[index]
        flat = parameter.data.view(-1)
        for position in torch.topk(grad.abs().view(-1), 2).indices.tolist():  # well above the difference noise
            original = float(flat[position])
            values = []
            for sign in (1, -1):
                flat[position] = original + sign * h
                values.append(loss_and_gradients(model, True, 0.1, monkeypatch)[0])
            flat[position] = original
            numeric = (values[0] - values[1]) / (2 * h)
            assert numeric == pytest.approx(float(grad.view(-1)[position]), rel=1e-5, abs=1e-8)
