"""The differentiable kernel path (issue 17 item 4): ``forward`` + autograd through the C++ AEVs.

``ANIModel.forward`` takes its AEVs from ``torch.ops.openmm_ani.aev_batch`` on CPU tensors; the
operator's backward to the positions is the analytic AEV gradient. Held here to TorchANI 2.2.4 (the
stored reference energies and forces), to autograd of the pure PyTorch AEV path
(``AEVComputer.differentiable``), to central finite differences of the energy, and to TorchScript
(scripted model; a file scripted with ``use_kernel = False`` loads without openmm-ani). Second
derivatives are not implemented on the kernel: they must raise, not return a wrong number.
"""

import copy
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani import kernels

from paths import REFERENCE, ROOT

pytestmark = pytest.mark.skipif(not kernels.available(), reason="C++ kernels not built")

STRUCTURES = ["pxylene", "alanine_dipeptide", "cb7_b2_guest", "water_box", "water_triclinic"]
#: float64 against TorchANI float64 (as tests/model/test_fused.py).
E_TOL_64 = 1e-9
F_TOL_64 = 1e-9


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def model():
    return openmm_ani.models.load("ani1ccx", dtype=torch.float64)


def portable_copy(model):
    """The same model with the pure PyTorch AEV path (what ran before this issue)."""
    other = copy.deepcopy(model)
    other.aev.use_kernel = False
    return other


def inputs(reference, structure):
    z = torch.tensor(reference[f"{structure}__atomic_numbers"]).unsqueeze(0)
    x = torch.tensor(reference[f"{structure}__positions"], dtype=torch.float64).unsqueeze(0)
    key = f"{structure}__cell"
    return z, x, (torch.tensor(reference[key], dtype=torch.float64) if key in reference else None)


def energy_forces(model, z, x, cell):
    x = x.clone().requires_grad_(True)
    energy = model(z, x, cell)
    (gradient,) = torch.autograd.grad(energy.sum(), x)
    return energy.detach(), -gradient


def test_the_loaded_model_uses_the_kernel(model):
    assert model.aev.use_kernel
    assert "openmm_ani.aev_batch" in torch.jit.script(model.aev).code


@pytest.mark.parametrize("structure", STRUCTURES)
def test_forward_and_autograd_equal_torchani(reference, model, structure):
    z, x, cell = inputs(reference, structure)
    energy, forces = energy_forces(model, z, x, cell)
    assert abs(float(energy[0]) - float(reference[f"{structure}__ani1ccx__energy"])) < E_TOL_64
    np.testing.assert_allclose(forces[0].numpy(), reference[f"{structure}__ani1ccx__forces"], rtol=0, atol=F_TOL_64)


def test_padded_batch_aevs_and_their_gradient_equal_the_pytorch_path(model):
    """Three molecules padded to 9 atoms; a random cotangent checks the whole backward, not one sum."""
    rng = np.random.default_rng(11)
    z = torch.tensor([[6, 6, 8, 1, 1, 1, 7, 1, 1], [8, 1, 1, 0, 0, 0, 0, 0, 0], [6, 1, 1, 1, 1, 0, 0, 0, 0]])
    x = torch.tensor(rng.normal(0.0, 1.1, size=(3, 9, 3)))
    species = model.species(z)
    for cell in (None, torch.eye(3, dtype=torch.float64) * 11.0 + 0.4 * torch.tensor([[0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])):
        xk = x.clone().requires_grad_(True)
        xp = x.clone().requires_grad_(True)
        kernel = model.aev(species, xk, cell)
        pure = model.aev.differentiable(species, xp, cell)
        np.testing.assert_allclose(kernel.detach().numpy(), pure.detach().numpy(), rtol=0, atol=1e-13)
        cotangent = torch.tensor(rng.normal(size=kernel.shape))
        (gk,) = torch.autograd.grad((kernel * cotangent).sum(), xk)
        (gp,) = torch.autograd.grad((pure * cotangent).sum(), xp)
        assert float(gp.abs().max()) > 1.0  # a real gradient, not zeros
        np.testing.assert_allclose(gk.numpy(), gp.numpy(), rtol=0, atol=1e-11)
        assert float(gk[species < 0].abs().sum()) == 0.0  # padding atoms get no gradient


def test_gradient_equals_central_finite_differences(reference, model):
    z, x, _ = inputs(reference, "pxylene")
    _, forces = energy_forces(model, z, x, None)
    h = 1e-5  # Å
    for atom, axis in [(0, 0), (5, 1), (12, 2), (17, 0)]:
        energies = []
        for sign in (1, -1):
            moved = x.clone()
            moved[0, atom, axis] += sign * h
            with torch.no_grad():
                energies.append(float(model(z, moved)[0]))
        numeric = -(energies[0] - energies[1]) / (2 * h)
        assert abs(numeric - float(forces[0, atom, axis])) < 1e-7, (atom, axis)


def test_scripted_model_differentiates_through_the_kernel(reference, model):
    z, x, cell = inputs(reference, "water_box")
    scripted = torch.jit.script(model)
    energy, forces = energy_forces(scripted, z, x, cell)
    eager = energy_forces(portable_copy(model), z, x, cell)
    assert abs(float(energy[0] - eager[0][0])) < 1e-10
    np.testing.assert_allclose(forces.numpy(), eager[1].numpy(), rtol=0, atol=1e-10)


def test_second_derivatives_raise_on_the_kernel_and_work_on_the_pytorch_path(reference, model):
    z, x, _ = inputs(reference, "pxylene")
    xk = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(z, xk).sum(), xk, create_graph=True)
    _, forces = energy_forces(portable_copy(model), z, x, None)
    np.testing.assert_allclose(-gradient.detach().numpy(), forces.numpy(), rtol=0, atol=1e-11)  # first order is right
    with pytest.raises(RuntimeError, match="second derivatives through the C\\+\\+ AEV kernel"):
        gradient.pow(2).sum().backward()
    pure = portable_copy(model)
    xp = x.clone().requires_grad_(True)
    (gp,) = torch.autograd.grad(pure(z, xp).sum(), xp, create_graph=True)
    (hessian_row,) = torch.autograd.grad(gp[0, 0, 0], xp)
    h = 1e-5
    moved = [x.clone() for _ in range(2)]
    moved[0][0, 0, 0] += h
    moved[1][0, 0, 0] -= h
    columns = [energy_forces(pure, z, m, None)[1] for m in moved]
    numeric = -(columns[0] - columns[1]) / (2 * h)  # d(gradient)/dx00
    np.testing.assert_allclose(hessian_row.numpy(), numeric.numpy(), rtol=0, atol=1e-5)


def test_cell_is_a_constant_on_both_paths(reference, model):
    """Neither AEV path differentiates the box (no stress): a cell that requires grad gets no
    gradient from either, and the position gradient is unchanged."""
    z, x, cell = inputs(reference, "water_box")
    grads = []
    for m in (model, portable_copy(model)):
        xc = x.clone().requires_grad_(True)
        c = cell.clone().requires_grad_(True)
        gx, gc = torch.autograd.grad(m(z, xc, c).sum(), (xc, c), allow_unused=True)
        assert gc is None
        grads.append(gx)
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), rtol=0, atol=1e-10)


def test_model_scripted_without_the_kernel_loads_without_openmm_ani(reference, model, tmp_path):
    z, x, _ = inputs(reference, "pxylene")
    portable = portable_copy(model)
    scripted = torch.jit.script(portable)
    assert "openmm_ani" not in scripted.aev.code
    path = tmp_path / "model.pt"
    scripted.save(str(path))
    script = textwrap.dedent(f"""
        import sys, torch
        model = torch.jit.load({str(path)!r})
        assert "openmm_ani" not in sys.modules
        z = torch.tensor({z.tolist()})
        x = torch.tensor({x.tolist()}, dtype=torch.float64)
        print(repr(float(model(z, x)[0])))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert abs(float(result.stdout.strip()) - float(reference["pxylene__ani1ccx__energy"])) < E_TOL_64
