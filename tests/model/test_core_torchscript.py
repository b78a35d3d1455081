"""TorchScript: scripted ANI modules equal eager ones, and survive ``torch.jit.save``/``load``.

Covers :class:`openmm_ani.ANIModel` (open and periodic, float64 and float32, the exported
``member_energies`` and ``energies_and_std``) and :class:`openmm_ani.torchforce.ANIForceModule`
(open, periodic, a subset of atoms in any order, and ``make_whole``), whose energies are also
checked against the eager model in Å/Ha converted with CODATA 2018 values written here.
"""

import os
from typing import Dict

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani.openmm.module import ANIForceModule

from paths import REFERENCE
#: CODATA 2018 hartree in kJ/mol, written independently of openmm_ani.units.
KJ_PER_MOL_PER_HARTREE = 4.3597447222071e-21 * 6.02214076e23


@pytest.fixture(scope="module")
def data() -> Dict[str, np.ndarray]:
    with np.load(REFERENCE) as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture(scope="module")
def model64() -> openmm_ani.ANIModel:
    return openmm_ani.models.load("ani1ccx")


@pytest.fixture(scope="module")
def scripted64(model64):
    return torch.jit.script(model64)


def _inputs(data, name, dtype=torch.float64):
    z = torch.tensor(data[f"{name}__atomic_numbers"]).unsqueeze(0)
    x = torch.tensor(data[f"{name}__positions"], dtype=dtype).unsqueeze(0)
    cell = torch.tensor(data[f"{name}__cell"], dtype=dtype) if f"{name}__cell" in data else None
    return z, x, cell


def _energy_forces(module, *args):
    x = args[1].detach().clone().requires_grad_(True)
    e = module(args[0], x, *args[2:])
    (grad,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), -grad


def _force_module_energy_forces(module, positions, box=None):
    x = positions.detach().clone().requires_grad_(True)
    e = module(x, box)
    (grad,) = torch.autograd.grad(e, x)
    return e.detach(), -grad


@pytest.mark.parametrize("name", ["alanine_dipeptide", "water_triclinic"])
def test_scripted_model_equals_eager(data, model64, scripted64, name):
    """Scripted ANIModel: energies, forces, member energies and std equal eager (float64, 1e-10)."""
    z, x, cell = _inputs(data, name)
    e_eager, f_eager = _energy_forces(model64, z, x, cell)
    e_script, f_script = _energy_forces(scripted64, z, x, cell)
    torch.testing.assert_close(e_script, e_eager, rtol=0, atol=1e-10)
    torch.testing.assert_close(f_script, f_eager, rtol=0, atol=1e-10)
    # and both agree with the stored TorchANI energy, so the comparison is not of two wrong numbers
    assert abs(float(e_script) - float(data[f"{name}__ani1ccx__energy"])) < 1e-6
    with torch.no_grad():
        torch.testing.assert_close(scripted64.member_energies(z, x, cell), model64.member_energies(z, x, cell),
                                   rtol=0, atol=1e-10)
        mean_s, std_s = scripted64.energies_and_std(z, x, cell)
        mean_e, std_e = model64.energies_and_std(z, x, cell)
    torch.testing.assert_close(mean_s, mean_e, rtol=0, atol=1e-10)
    torch.testing.assert_close(std_s, std_e, rtol=0, atol=1e-10)


def test_scripted_model_save_load_round_trip(data, model64, scripted64, tmp_path):
    """torch.jit.save then torch.jit.load gives the same energies and forces, open and periodic."""
    path = str(tmp_path / "ani1ccx.pt")
    torch.jit.save(scripted64, path)
    loaded = torch.jit.load(path)
    for name in ["toluene", "water_box"]:
        z, x, cell = _inputs(data, name)
        e0, f0 = _energy_forces(model64, z, x, cell)
        e1, f1 = _energy_forces(loaded, z, x, cell)
        torch.testing.assert_close(e1, e0, rtol=0, atol=1e-10)
        torch.testing.assert_close(f1, f0, rtol=0, atol=1e-10)


def test_scripted_single_member_float32(data):
    """A float32 single-member model scripts and equals its eager self; its bad-input errors survive scripting."""
    model = openmm_ani.models.load("ani1x", model_index=5, dtype=torch.float32)
    scripted = torch.jit.script(model)
    z, x, cell = _inputs(data, "cb7_b2_guest", torch.float32)
    e0, f0 = _energy_forces(model, z, x, cell)
    e1, f1 = _energy_forces(scripted, z, x, cell)
    assert e1.dtype == torch.float32
    torch.testing.assert_close(e1, e0, rtol=0, atol=1e-4)
    torch.testing.assert_close(f1, f0, rtol=0, atol=1e-5)
    assert abs(float(e1) - float(data["cb7_b2_guest__ani1x__member_energies"][5])) < 1e-4
    bad = z.clone()
    bad[0, 3] = 16
    with pytest.raises(Exception, match="S"):
        scripted(bad, x, cell)


# ---------------------------------------------------------------- ANIForceModule (OpenMM units)


def test_force_module_open_scripted_equals_eager_and_model(data, model64, tmp_path):
    """ANIForceModule (nm in, kJ/mol out): scripted = eager = model energy x CODATA Ha->kJ/mol; save/load."""
    z, x, _ = _inputs(data, "alanine_dipeptide")
    module = ANIForceModule(model64, z[0].tolist())
    scripted = torch.jit.script(module)
    positions_nm = x[0] / 10.0
    e_eager, f_eager = _force_module_energy_forces(module, positions_nm)
    e_script, f_script = _force_module_energy_forces(scripted, positions_nm)
    assert e_script.dim() == 0
    torch.testing.assert_close(e_script, e_eager, rtol=0, atol=1e-8)
    torch.testing.assert_close(f_script, f_eager, rtol=0, atol=1e-7)
    expected = float(data["alanine_dipeptide__ani1ccx__energy"]) * KJ_PER_MOL_PER_HARTREE
    assert abs(float(e_script) - expected) < 1e-6 * KJ_PER_MOL_PER_HARTREE
    # forces in kJ/mol/nm = Ha/Å x kJ/mol/Ha x 10 Å/nm
    ref_forces = torch.tensor(data["alanine_dipeptide__ani1ccx__forces"]) * KJ_PER_MOL_PER_HARTREE * 10.0
    torch.testing.assert_close(f_script, ref_forces, rtol=0, atol=1e-5 * KJ_PER_MOL_PER_HARTREE)
    path = str(tmp_path / "force.pt")
    torch.jit.save(scripted, path)
    loaded = torch.jit.load(path)
    e_loaded, f_loaded = _force_module_energy_forces(loaded, positions_nm)
    torch.testing.assert_close(e_loaded, e_eager, rtol=0, atol=1e-8)
    torch.testing.assert_close(f_loaded, f_eager, rtol=0, atol=1e-7)
    torch.testing.assert_close(loaded.member_energies(positions_nm, None), module.member_energies(positions_nm, None),
                               rtol=0, atol=1e-8)


def test_force_module_periodic_scripted_equals_eager(data, model64, tmp_path):
    """Periodic ANIForceModule on the triclinic water box: scripted/loaded = eager = TorchANI reference."""
    z, x, cell = _inputs(data, "water_triclinic")
    module = ANIForceModule(model64, z[0].tolist(), periodic=True)
    scripted = torch.jit.script(module)
    path = str(tmp_path / "periodic.pt")
    torch.jit.save(scripted, path)
    loaded = torch.jit.load(path)
    positions_nm, box_nm = x[0] / 10.0, cell / 10.0
    e_eager, f_eager = _force_module_energy_forces(module, positions_nm, box_nm)
    for other in (scripted, loaded):
        e, f = _force_module_energy_forces(other, positions_nm, box_nm)
        torch.testing.assert_close(e, e_eager, rtol=0, atol=1e-7)
        torch.testing.assert_close(f, f_eager, rtol=0, atol=1e-7)
    expected = float(data["water_triclinic__ani1ccx__energy"]) * KJ_PER_MOL_PER_HARTREE
    assert abs(float(e_eager) - expected) < 1e-6 * KJ_PER_MOL_PER_HARTREE
    with pytest.raises(Exception, match="box"):
        scripted(positions_nm, None)


def test_force_module_subset_and_make_whole_scripted(data, model64):
    """ML atoms chosen out of order among extra particles; make_whole across a box boundary; scripted = eager."""
    z, x, _ = _inputs(data, "toluene")
    n = z.shape[1]
    rng = np.random.default_rng(3)
    order = rng.permutation(n)
    # 40 particles: the molecule's atoms scattered among MM particles, in a shuffled order.
    slots = rng.choice(40, size=n, replace=False)
    positions = torch.tensor(rng.uniform(0.0, 3.0, size=(40, 3)))
    positions[torch.tensor(slots)] = x[0, torch.tensor(order)] / 10.0
    module = ANIForceModule(model64, z[0, torch.tensor(order)].tolist(), atoms=slots.tolist())
    scripted = torch.jit.script(module)
    e_ref = float(data["toluene__ani1ccx__energy"]) * KJ_PER_MOL_PER_HARTREE
    for m in (module, scripted):
        e, f = _force_module_energy_forces(m, positions)
        assert abs(float(e) - e_ref) < 1e-6 * KJ_PER_MOL_PER_HARTREE
        mm = np.setdiff1d(np.arange(40), slots)
        assert torch.equal(f[torch.tensor(mm)], torch.zeros(len(mm), 3, dtype=torch.float64))
    # make_whole: the molecule split across the faces of a 3 nm box evaluates as the whole molecule.
    box = torch.diag(torch.tensor([3.0, 3.0, 3.0], dtype=torch.float64))
    split = positions.clone()
    split[torch.tensor(slots)] = torch.remainder(split[torch.tensor(slots)] - positions[torch.tensor(slots[0])], 3.0)
    whole = ANIForceModule(model64, z[0, torch.tensor(order)].tolist(), atoms=slots.tolist(), make_whole=True)
    scripted_whole = torch.jit.script(whole)
    for m in (whole, scripted_whole):
        e, _ = _force_module_energy_forces(m, split, box)
        assert abs(float(e) - e_ref) < 1e-6 * KJ_PER_MOL_PER_HARTREE
