"""The fused energy + forces paths (issue 10): the C++ kernel and the analytic TorchScript path.

Both compute energies and forces without autograd; each is held here to the independent
references — TorchANI 2.2.4 (stored, ``tests/data/ani_reference.npz``, and live), central finite
differences of the energy, and autograd of the plain model — and to TorchScript round trips,
including the ``torch.jit.freeze`` that openmm-torch applies. Coincident atoms (issue 9 item 4)
must give TorchANI's finite energy on every path.
"""

import os
import subprocess
import sys
import textwrap
import warnings
import zipfile
from typing import Dict, Optional, Tuple

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani import kernels
from openmm_ani.model.fused import FusedANI
from openmm_ani.openmm.module import ANIForceModule

from paths import REFERENCE, ROOT

PATHS = ["kernel", "portable"]
STRUCTURES = ["pxylene", "alanine_dipeptide", "cb7_b2_guest", "water_box", "water_triclinic"]
#: float64: energies and forces equal TorchANI's to rounding (the CELU derivative follows autograd's).
E_TOL_64 = 1e-9
F_TOL_64 = 1e-9
#: float32 against TorchANI float64: the issue's tolerances (test_core_reference.py).
E_TOL_32 = 1e-4
F_TOL_32 = 5e-5


def needs_kernel(path: str) -> None:
    if path == "kernel" and not kernels.available():
        pytest.skip(f"C++ kernels not available: {kernels.unavailable_reason()}")


@pytest.fixture(scope="module")
def reference() -> Dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


_MODELS: Dict[torch.dtype, openmm_ani.ANIModel] = {}


def model_of(dtype: torch.dtype) -> openmm_ani.ANIModel:
    if dtype not in _MODELS:
        _MODELS[dtype] = openmm_ani.models.load("ani1ccx", dtype=dtype)
    return _MODELS[dtype]


def fused(model: openmm_ani.ANIModel, path: str) -> FusedANI:
    return FusedANI(model.aev.parameters, list(model.networks.networks), use_kernel=path == "kernel")


def inputs(reference, structure: str, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    z = torch.tensor(reference[f"{structure}__atomic_numbers"])
    x = torch.tensor(reference[f"{structure}__positions"], dtype=dtype)
    key = f"{structure}__cell"
    return z, x, (torch.tensor(reference[key], dtype=dtype) if key in reference else None)


def energy_and_forces(model, evaluator: FusedANI, z, x, cell) -> Tuple[float, np.ndarray]:
    """Ensemble energy (Ha, self energies included) and forces (Ha/Å) from a FusedANI."""
    species = model.species(z.unsqueeze(0))
    members, gradient = evaluator(x, species[0], cell, True)
    energy = float(members.mean() + model.self_energies(species).double())
    return energy, -gradient.double().numpy()


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("path", PATHS)
def test_float64_equals_torchani(reference, path, structure):
    """Energy and forces of the 8-member ANI-1ccx ensemble equal TorchANI 2.2.4's (stored) in float64."""
    needs_kernel(path)
    model = model_of(torch.float64)
    z, x, cell = inputs(reference, structure, torch.float64)
    energy, forces = energy_and_forces(model, fused(model, path), z, x, cell)
    assert abs(energy - float(reference[f"{structure}__ani1ccx__energy"])) <= E_TOL_64
    assert np.abs(forces - reference[f"{structure}__ani1ccx__forces"]).max() <= F_TOL_64


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("path", PATHS)
def test_float32_within_issue_tolerances(reference, path, structure):
    """float32: forces within 5e-5 Ha/Å of TorchANI float64; energies within 1e-4 Ha (4 ulps for boxes)."""
    needs_kernel(path)
    model = model_of(torch.float32)
    z, x, cell = inputs(reference, structure, torch.float32)
    energy, forces = energy_and_forces(model, fused(model, path), z, x, cell)
    expected = float(reference[f"{structure}__ani1ccx__energy"])
    tolerance = E_TOL_32 if cell is None else max(E_TOL_32, 4 * float(np.spacing(np.float32(abs(expected)))))
    assert abs(energy - expected) <= tolerance
    assert np.abs(forces - reference[f"{structure}__ani1ccx__forces"]).max() <= F_TOL_32


@pytest.mark.parametrize("structure", ["alanine_dipeptide", "water_triclinic"])
@pytest.mark.parametrize("path", PATHS)
def test_forces_are_minus_the_energy_gradient(reference, path, structure):
    """Central differences of the fused path's own energy (float64, h = 1e-4 Å) match its forces."""
    needs_kernel(path)
    model = model_of(torch.float64)
    z, x, cell = inputs(reference, structure, torch.float64)
    evaluator = fused(model, path)
    species = model.species(z.unsqueeze(0))[0]
    _, gradient = evaluator(x, species, cell, True)
    rng = np.random.default_rng(11)
    h = 1e-4
    for atom in rng.choice(x.shape[0], size=4, replace=False):
        for axis in range(3):
            plus, minus = x.clone(), x.clone()
            plus[atom, axis] += h
            minus[atom, axis] -= h
            e_plus = float(evaluator(plus, species, cell, False)[0].mean())
            e_minus = float(evaluator(minus, species, cell, False)[0].mean())
            numeric = (e_plus - e_minus) / (2 * h)
            assert abs(numeric - float(gradient[atom, axis])) < 2e-7, (atom, axis)


@pytest.mark.parametrize("path", PATHS)
def test_batch_with_padding_equals_autograd(path):
    """ANIModel.energies_and_forces on a padded batch of two molecules equals forward + autograd."""
    needs_kernel(path)
    model = model_of(torch.float64)
    z = torch.tensor([[8, 1, 1, 0, 0], [6, 1, 1, 1, 1]])
    x = torch.tensor([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
                      [[0.0, 0.0, 0.0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                       [0.63, -0.63, -0.63]]], dtype=torch.float64)
    x = x + 0.03 * torch.tensor(np.random.default_rng(5).normal(size=x.shape))
    xr = x.clone().requires_grad_(True)
    energies = model(z, xr)
    (grad,) = torch.autograd.grad(energies.sum(), xr)
    versions = tuple((p.data_ptr(), p._version) for p in model.networks.parameters())
    model.__dict__["_fused_cache"] = {(torch.float64, x.device, versions): fused(model, path)}
    try:
        e, f = model.energies_and_forces(z, x)
    finally:
        model.__dict__.pop("_fused_cache", None)
    torch.testing.assert_close(e, energies.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(f, -grad, rtol=0, atol=1e-10)
    assert torch.equal(f[0, 3:], torch.zeros(2, 3, dtype=torch.float64))  # padding atoms feel nothing


def test_kernel_aev_and_its_gradient(reference):
    """The kernel's AEVs equal the reference AEVComputer's, and its AEV gradient contraction equals autograd's."""
    needs_kernel("kernel")
    model = model_of(torch.float64)
    p = model.aev.parameters
    for structure in ("alanine_dipeptide", "water_triclinic"):
        z, x, cell = inputs(reference, structure, torch.float64)
        species = model.species(z.unsqueeze(0))
        xr = x.unsqueeze(0).clone().requires_grad_(True)
        expected = model.aev(species, xr, cell)[0]
        weights = torch.tensor(np.random.default_rng(2).normal(size=expected.shape))
        (grad,) = torch.autograd.grad((expected * weights).sum(), xr)
        aev, gradient = torch.ops.openmm_ani.aev_and_gradient(
            x, species[0], cell, p.radial_cutoff, p.angular_cutoff, list(p.radial_eta), list(p.radial_shifts),
            list(p.angular_eta), list(p.angular_zeta), list(p.angular_shifts), list(p.angle_sections), 4, weights)
        torch.testing.assert_close(aev, expected.detach(), rtol=0, atol=1e-12)
        torch.testing.assert_close(gradient, grad[0], rtol=0, atol=1e-11)


def _module_energy_forces(module, positions_nm, box=None):
    x = positions_nm.clone().requires_grad_(True)
    energy = module(x, box)
    (grad,) = torch.autograd.grad(energy, x)
    return float(energy), -grad


@pytest.mark.parametrize("path", PATHS)
def test_module_survives_scripting_saving_and_freezing(reference, path, tmp_path):
    """ANIForceModule forces: eager = scripted = saved/loaded = frozen (openmm-torch freezes modules)."""
    needs_kernel(path)
    model = model_of(torch.float64)
    z, x, cell = inputs(reference, "water_triclinic", torch.float64)
    positions, box = x / 10.0, cell / 10.0
    module = ANIForceModule(model, z.tolist(), periodic=True, kernel=path == "kernel")
    scripted = torch.jit.script(module)
    torch.jit.save(scripted, str(tmp_path / "m.pt"))
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    frozen = torch.jit.freeze(torch.jit.script(module).eval())
    e_ref, f_ref = _module_energy_forces(module, positions, box)
    expected_forces = torch.tensor(reference["water_triclinic__ani1ccx__forces"]) * 2625.4996394798254 * 10.0
    assert np.abs(f_ref.numpy() - expected_forces.numpy()).max() < 1e-6 * float(expected_forces.abs().max())
    for other in (scripted, loaded, frozen):
        e, f = _module_energy_forces(other, positions, box)
        assert e == pytest.approx(e_ref, abs=1e-8)
        torch.testing.assert_close(f, f_ref, rtol=0, atol=1e-8)
    with zipfile.ZipFile(str(tmp_path / "m.pt")) as archive:
        code = "".join(archive.read(name).decode() for name in archive.namelist() if name.endswith(".py"))
    assert ("openmm_ani.energy_gradient" in code) == (path == "kernel")


def test_module_member_energies_stay_differentiable(reference):
    """member_energies with positions requiring grad: per-member autograd forces equal the members' own."""
    model = model_of(torch.float64)
    z, x, _ = inputs(reference, "toluene", torch.float64)
    module = ANIForceModule(model, z.tolist())
    positions = (x / 10.0).clone().requires_grad_(True)
    members = module.member_energies(positions)
    member0 = openmm_ani.models.load("ani1ccx", model_index=0, dtype=torch.float64)
    xr = x.unsqueeze(0).clone().requires_grad_(True)
    (grad0,) = torch.autograd.grad(member0(z.unsqueeze(0), xr).sum(), xr)
    (grad,) = torch.autograd.grad(members[0], positions)
    torch.testing.assert_close(grad, grad0[0] * 2625.4996394798254 * 10.0, rtol=0, atol=1e-7)
    with torch.no_grad():
        plain = module.member_energies(x / 10.0)
    torch.testing.assert_close(members.detach(), plain, rtol=0, atol=1e-7)


def test_module_threads_option_gives_the_same_result(reference):
    """The single-thread kernel (ML regions) and torch's threads agree exactly on a periodic box."""
    needs_kernel("kernel")
    model = model_of(torch.float32)
    z, x, cell = inputs(reference, "water_box", torch.float64)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = [_module_energy_forces(ANIForceModule(model, z.tolist(), periodic=True, threads=t), x / 10.0, cell / 10.0)
                   for t in (1, 0)]
    finally:
        torch.set_num_threads(previous)
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-3)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=1e-3)


def coincident_molecule() -> Tuple[torch.Tensor, torch.Tensor]:
    """Methanol-like CH4 + O with the oxygen exactly on a hydrogen (Å)."""
    z = torch.tensor([6, 1, 1, 1, 1, 8])
    x = torch.tensor([[0.0, 0.0, 0.0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                      [0.63, -0.63, -0.63], [0.63, 0.63, 0.63]], dtype=torch.float64)
    return z, x


def test_coincident_atoms_give_torchanis_finite_energy_on_every_path():
    """Two atoms at one position: every path returns TorchANI 2.2.4's energy, and finite forces equal to its."""
    torchani = pytest.importorskip("torchani", reason="TorchANI 2.2.4 reference (scripts/setup_test_reference.py)")
    z, x = coincident_molecule()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference_model = torchani.models.ANI1ccx(periodic_table_index=True).double()
    xr = x.unsqueeze(0).clone().requires_grad_(True)
    e_ref = reference_model((z.unsqueeze(0), xr)).energies
    (g_ref,) = torch.autograd.grad(e_ref.sum(), xr)
    assert torch.isfinite(g_ref).all()
    model = model_of(torch.float64)
    results = {}
    xr = x.unsqueeze(0).clone().requires_grad_(True)
    energy = model(z.unsqueeze(0), xr)
    results["autograd"] = (float(energy), -torch.autograd.grad(energy.sum(), xr)[0][0])
    for path in PATHS:
        if path == "kernel" and not kernels.available():
            continue
        e, f = energy_and_forces(model, fused(model, path), z, x, None)
        results[path] = (e, torch.tensor(f))
        module = ANIForceModule(model, z.tolist(), kernel=path == "kernel")
        e_kj, f_kj = _module_energy_forces(torch.jit.script(module), x / 10.0)
        results["module " + path] = (e_kj / 2625.4996394798254, f_kj / (2625.4996394798254 * 10.0))
    scale = float(g_ref.abs().max())
    assert scale > 1e6  # the guard makes the forces on the pair huge, but finite
    for name, (e, f) in results.items():
        assert abs(e - float(e_ref)) < 1e-9, name
        assert torch.isfinite(f).all(), name
        assert float((f + g_ref[0]).abs().max()) < 1e-12 * scale, name


def test_missing_kernel_falls_back_with_one_warning(tmp_path):
    """Without the compiled library: a KernelUnavailableWarning once, and the same energy from the TorchScript path."""
    script = textwrap.dedent(
        """
        import warnings, torch
        import openmm_ani.kernels as kernels
        kernels.library_candidates = lambda: []
        kernels._loaded = None
        import openmm_ani
        from openmm_ani.openmm.module import ANIForceModule
        model = openmm_ani.models.load("ani1ccx", dtype=torch.float64)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            modules = [ANIForceModule(model, [8, 1, 1]) for _ in range(2)]
        kinds = [w.category.__name__ for w in caught]
        x = torch.tensor([[0.0, 0.0, 0.0], [0.096, 0.0, 0.0], [-0.024, 0.093, 0.0]], dtype=torch.float64)
        print(kinds.count("KernelUnavailableWarning"), float(modules[0](x)), modules[0].fused.use_kernel)
        """
    )
    # without OPENMM_ANI_KERNELS: a user's explicit "0" silences the warning on purpose
    env = {k: v for k, v in os.environ.items() if k != "OPENMM_ANI_KERNELS"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env=dict(env, OMP_NUM_THREADS="1", PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    count, energy, used = result.stdout.split()
    assert count == "1" and used == "False"
    model = model_of(torch.float64)
    expected = float(model(torch.tensor([[8, 1, 1]]),
                           torch.tensor([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]], dtype=torch.float64)))
    assert float(energy) == pytest.approx(expected * 2625.4996394798254, abs=1e-6)


def test_kernel_rejects_a_box_too_small_for_the_cutoff(reference):
    """A periodic box narrower than twice the cutoff is refused with the box named, on the kernel path too."""
    model = model_of(torch.float64)
    z, x, _ = inputs(reference, "pxylene", torch.float64)
    for path in PATHS:
        if path == "kernel" and not kernels.available():
            continue
        with pytest.raises(ValueError, match="box"):
            fused(model, path)(x, model.species(z.unsqueeze(0))[0], torch.eye(3, dtype=torch.float64) * 8.0, True)


@pytest.mark.skipif(not kernels.available(), reason="C++ kernels not built")
def test_library_marks_the_torch_it_was_built_against():
    """The built library names, in its file, the torch of the build: the one loaded here."""
    assert kernels.built_against(kernels.library_candidates()[0]) == torch.__version__.split("+")[0]


def test_library_built_for_another_torch_is_refused_before_loading(tmp_path):
    """A library whose marker names another torch minor: not loaded at all, one warning naming both versions."""
    fake = tmp_path / "_openmm_ani_kernels.so"
    fake.write_bytes(b"\x7fELF not a real library " + kernels.VERSION_MARKER + b"2.8.0\x00 more bytes")
    script = textwrap.dedent(
        f"""
        import warnings, torch
        import openmm_ani.kernels as kernels
        kernels.library_candidates = lambda: [{str(fake)!r}]
        kernels._loaded = None
        def refuse(path):
            raise AssertionError("load_library called for " + path)
        torch.ops.load_library = refuse
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kernels.warn_unavailable()
        print(kernels.available())
        print(str(caught[0].message))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENMM_ANI_KERNELS"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env=dict(env, OMP_NUM_THREADS="1", PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    available, message = result.stdout.strip().splitlines()
    assert available == "False"
    assert "built for torch 2.8.0" in message and f"torch {torch.__version__} is loaded" in message
    assert "reinstall openmm-ani" in message and "slower" in message
