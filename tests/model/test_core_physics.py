"""Physics of the ANI core checked against references independent of the code under test.

Forces against central finite differences of the energy; exact symmetries (rotation,
translation, permutation of same-element atoms, periodic images, wrapping); separability
beyond the cutoff; padded batches against separate calls; the cell-list path against the
all-pairs path; the ensemble standard deviation against the 8 members loaded one by one.
Structures are the stored real structures of ``tests/data/ani_reference.npz``.
"""

import os
from typing import Dict, Optional, Tuple

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani.model import neighbors

from paths import REFERENCE


@pytest.fixture(scope="module")
def data() -> Dict[str, np.ndarray]:
    with np.load(REFERENCE) as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture(scope="module")
def model() -> openmm_ani.ANIModel:
    return openmm_ani.models.load("ani1ccx")


def structure(data, name: str) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    z = torch.tensor(data[f"{name}__atomic_numbers"]).unsqueeze(0)
    x = torch.tensor(data[f"{name}__positions"]).unsqueeze(0)
    cell = torch.tensor(data[f"{name}__cell"]) if f"{name}__cell" in data else None
    return z, x, cell


def energy(model, z, x, cell=None) -> float:
    with torch.no_grad():
        return float(model(z, x, cell).item())


def energy_forces(model, z, x, cell=None) -> Tuple[float, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    e = model(z, x, cell)
    (grad,) = torch.autograd.grad(e.sum(), x)
    return float(e.item()), -grad


def random_rotation(rng: np.random.Generator) -> torch.Tensor:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return torch.tensor(q)


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("name,atoms", [("toluene", [0, 6, 9]), ("alanine_dipeptide", [4, 8, 14]),
                                        ("water_triclinic", [0, 1, 130])])
def test_forces_match_central_finite_differences(data, model, name, atoms):
    """-dE/dx by central differences (h = 1e-5 Å, float64) equals the autograd force within 3e-7 Ha/Å.

    The step is 1e-5 Å rather than 1e-4 Å: the CELU activation of ANI-1ccx has a jump in its second
    derivative at zero, so some of the thousands of neurons change branch within +-1e-4 Å and the
    central difference is then off by ~1e-6 Ha/Å (TorchANI shows the same); at 1e-5 Å the truncation
    error is below 1e-7 Ha/Å and round-off (|E| ~ 6500 Ha for water) about 1e-7 Ha/Å.
    """
    z, x, cell = structure(data, name)
    _, forces = energy_forces(model, z, x, cell)
    h = 1e-5
    for atom in atoms:
        for axis in range(3):
            plus = x.clone()
            minus = x.clone()
            plus[0, atom, axis] += h
            minus[0, atom, axis] -= h
            numeric = -(energy(model, z, plus, cell) - energy(model, z, minus, cell)) / (2 * h)
            analytic = float(forces[0, atom, axis])
            assert abs(numeric - analytic) < 3e-7, (name, atom, axis, numeric, analytic)


# ---------------------------------------------------------------- symmetries


def test_rotation_and_translation_invariance(data, model):
    """E(R x + t) = E(x) and F(R x + t) = R F(x) for random rotations and translations."""
    z, x, _ = structure(data, "alanine_dipeptide")
    e0, f0 = energy_forces(model, z, x)
    rng = np.random.default_rng(11)
    for _ in range(3):
        rot = random_rotation(rng)
        shift = torch.tensor(rng.normal(0.0, 20.0, size=3))
        e1, f1 = energy_forces(model, z, x @ rot.T + shift)
        assert abs(e1 - e0) < 1e-9
        torch.testing.assert_close(f1, f0 @ rot.T, rtol=0, atol=1e-9)


def test_energy_changes_when_geometry_changes(data, model):
    """Guard for the invariance tests: a real deformation (one bond stretched 0.05 Å) changes E by > 1e-4 Ha."""
    z, x, _ = structure(data, "alanine_dipeptide")
    y = x.clone()
    y[0, 1] += 0.05 * (x[0, 1] - x[0, 0]) / torch.linalg.vector_norm(x[0, 1] - x[0, 0])
    assert abs(energy(model, z, y) - energy(model, z, x)) > 1e-4


def test_permutation_of_same_element_atoms(data, model):
    """Relabelling atoms (same elements, positions permuted together) leaves E unchanged; forces follow."""
    z, x, _ = structure(data, "cb7_b2_guest")
    e0, f0 = energy_forces(model, z, x)
    rng = np.random.default_rng(5)
    perm = torch.tensor(rng.permutation(z.shape[1]))
    e1, f1 = energy_forces(model, z[:, perm], x[:, perm])
    assert abs(e1 - e0) < 1e-9
    torch.testing.assert_close(f1, f0[:, perm], rtol=0, atol=1e-9)
    # Swapping two hydrogens' positions only (same element) is the same molecule.
    hydrogens = (z[0] == 1).nonzero().flatten()
    swapped = x.clone()
    swapped[0, hydrogens[0]], swapped[0, hydrogens[-1]] = x[0, hydrogens[-1]], x[0, hydrogens[0]]
    assert abs(energy(model, z, swapped) - e0) < 1e-9
    # Swapping a carbon and an oxygen is not.
    carbon, oxygen = int((z[0] == 6).nonzero()[0]), int((z[0] == 8).nonzero()[0])
    mixed = x.clone()
    mixed[0, carbon], mixed[0, oxygen] = x[0, oxygen], x[0, carbon]
    assert abs(energy(model, z, mixed) - e0) > 1e-3


@pytest.mark.parametrize("name", ["water_box", "water_triclinic"])
def test_shifting_atoms_by_box_vectors(data, model, name):
    """Moving atoms by integer combinations of box vectors (periodic) changes neither E nor F."""
    z, x, cell = structure(data, name)
    e0, f0 = energy_forces(model, z, x, cell)
    # One atom by one box vector.
    y = x.clone()
    y[0, 7] += cell[1]
    e1, f1 = energy_forces(model, z, y, cell)
    assert abs(e1 - e0) < 1e-9
    torch.testing.assert_close(f1, f0, rtol=0, atol=1e-9)
    # Every atom by a different random lattice vector, up to 3 boxes away (unwrapped trajectory).
    rng = np.random.default_rng(17)
    n = torch.tensor(rng.integers(-3, 4, size=(z.shape[1], 3)), dtype=torch.float64)
    e2, f2 = energy_forces(model, z, x + (n @ cell).unsqueeze(0), cell)
    assert abs(e2 - e0) < 1e-9
    torch.testing.assert_close(f2, f0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["water_box", "water_triclinic"])
def test_unwrapped_coordinates_equal_wrapped(data, model, name):
    """A rigid translation of a periodic system gives the same E whether or not the caller re-wraps."""
    z, x, cell = structure(data, name)
    shift = torch.tensor([3.7, -11.2, 25.4], dtype=torch.float64)
    moved = x + shift  # many atoms now outside the box
    frac = moved[0] @ torch.linalg.inv(cell)
    wrapped = ((frac - torch.floor(frac)) @ cell).unsqueeze(0)
    e_unwrapped, f_unwrapped = energy_forces(model, z, moved, cell)
    e_wrapped, f_wrapped = energy_forces(model, z, wrapped, cell)
    e0 = energy(model, z, x, cell)
    assert abs(e_unwrapped - e_wrapped) < 1e-9
    assert abs(e_unwrapped - e0) < 1e-9
    torch.testing.assert_close(f_unwrapped, f_wrapped, rtol=0, atol=1e-9)


def test_periodic_energy_depends_on_the_box(data, model):
    """Guard: the periodic water box without PBC (open cluster) has a clearly different energy."""
    z, x, cell = structure(data, "water_box")
    assert abs(energy(model, z, x, cell) - energy(model, z, x)) > 1e-2


def test_large_box_equals_open_molecule(data, model):
    """A molecule in a periodic box much wider than molecule + cutoff has the open-boundary energy and forces."""
    z, x, _ = structure(data, "toluene")
    cell = torch.tensor([[30.0, 0.0, 0.0], [7.0, 31.0, 0.0], [-4.0, 5.0, 32.0]], dtype=torch.float64)
    e_open, f_open = energy_forces(model, z, x)
    # Put the molecule across a box corner so that its atoms sit in different periodic images.
    e_pbc, f_pbc = energy_forces(model, z, x - x[0, 0], cell)
    assert abs(e_pbc - e_open) < 1e-9
    torch.testing.assert_close(f_pbc, f_open, rtol=0, atol=1e-9)


def test_molecules_beyond_cutoff_do_not_interact(data, model):
    """E(A + B separated by more than the cutoff) = E(A) + E(B); at 3 Å they interact."""
    za, xa, _ = structure(data, "toluene")
    zb, xb, _ = structure(data, "pxylene")
    far = xb - xb.mean(1, keepdim=True) + xa.mean(1, keepdim=True) + torch.tensor([model.cutoff + 12.0, 0.0, 0.0])
    z = torch.cat([za, zb], 1)
    separate = energy(model, za, xa) + energy(model, zb, xb)
    assert abs(energy(model, z, torch.cat([xa, far], 1)) - separate) < 1e-9
    near = xb - xb.mean(1, keepdim=True) + xa.mean(1, keepdim=True) + torch.tensor([0.0, 0.0, 3.6])
    assert abs(energy(model, z, torch.cat([xa, near], 1)) - separate) > 1e-4


# ---------------------------------------------------------------- batches and neighbour paths


@pytest.mark.parametrize("pad_value", [-1, 0])
def test_padded_batch_equals_separate_calls(data, model, pad_value):
    """Two molecules of different sizes padded to one batch give the energies and forces of separate calls."""
    za, xa, _ = structure(data, "pxylene")
    zb, xb, _ = structure(data, "alanine_dipeptide")
    n = zb.shape[1]
    pad = n - za.shape[1]
    z = torch.cat([torch.cat([za, torch.full((1, pad), pad_value)], 1), zb], 0)
    # Padding positions sit exactly on real atoms: any leak would give NaN or a wrong energy.
    x = torch.cat([torch.cat([xa, xa[:, :pad]], 1), xb], 0)
    x = x.clone().requires_grad_(True)
    energies = model(z, x)
    (grad,) = torch.autograd.grad(energies.sum(), x)
    ea, fa = energy_forces(model, za, xa)
    eb, fb = energy_forces(model, zb, xb)
    assert abs(float(energies[0].detach()) - ea) < 1e-9
    assert abs(float(energies[1].detach()) - eb) < 1e-9
    torch.testing.assert_close(-grad[0, : za.shape[1]], fa[0], rtol=0, atol=1e-9)
    torch.testing.assert_close(-grad[1], fb[0], rtol=0, atol=1e-9)
    assert torch.equal(grad[0, za.shape[1]:], torch.zeros(pad, 3, dtype=torch.float64))


def _pair_set(first, second, vectors):
    out = {}
    for i, j, v in zip(first.tolist(), second.tolist(), vectors.detach().tolist()):
        key = (i, j) if i < j else (j, i)
        sign = 1.0 if i < j else -1.0
        assert key not in out, f"pair {key} listed twice"
        out[key] = np.array(v) * sign
    return out


@pytest.fixture(scope="module")
def open_cluster(data):
    """510 atoms: the water box and one copy shifted by a box vector, as an open (non-periodic) cluster."""
    z, x, cell = structure(data, "water_box")
    return torch.cat([z, z], 1), torch.cat([x, x + cell[0]], 1)


def test_cell_list_pairs_equal_all_pairs_open(model, open_cluster):
    """For > 384 open atoms the cell-list pairs and vectors equal the all-pairs search."""
    z, x = open_cluster
    species = model.species(z)
    cutoff = model.cutoff
    brute = _pair_set(*neighbors.all_pairs(species, x, cutoff))
    cells = _pair_set(*neighbors.neighbor_pairs(species, x, cutoff, None, 0))
    assert len(brute) > 1000
    assert brute.keys() == cells.keys()
    for key, vector in brute.items():
        np.testing.assert_allclose(cells[key], vector, rtol=0, atol=1e-12)


def test_cell_list_energy_equals_all_pairs_energy(model, open_cluster):
    """Energy and forces of a 510-atom open cluster: cell-list path (default) = all-pairs path."""
    z, x = open_cluster
    assert z.shape[1] > model.aev.all_pairs_max_atoms
    e_cells, f_cells = energy_forces(model, z, x)
    saved = model.aev.all_pairs_max_atoms
    try:
        model.aev.all_pairs_max_atoms = 10 ** 6
        e_all, f_all = energy_forces(model, z, x)
    finally:
        model.aev.all_pairs_max_atoms = saved
    assert abs(e_cells - e_all) < 1e-8
    torch.testing.assert_close(f_cells, f_all, rtol=0, atol=1e-9)


# ---------------------------------------------------------------- ensemble statistics


def test_ensemble_std_equals_sample_std_of_members(data):
    """energies_and_std: mean and sample std (ddof=1) of the 8 single-model energies computed separately."""
    z, x, _ = structure(data, "cb7_b2_guest")
    x = x + torch.tensor(np.random.default_rng(2).normal(0.0, 0.1, size=tuple(x.shape)))
    singles = np.array([energy(openmm_ani.models.load("ani1ccx", model_index=i), z, x) for i in range(8)])
    with torch.no_grad():
        mean, std = openmm_ani.models.load("ani1ccx").energies_and_std(z, x)
    assert abs(float(mean) - singles.mean()) < 1e-9
    assert abs(float(std) - singles.std(ddof=1)) < 1e-9
    assert float(std) > 1e-4  # the members really disagree, so the comparison has teeth
    single = openmm_ani.models.load("ani1ccx", model_index=2)
    with torch.no_grad():
        m1, s1 = single.energies_and_std(z, x)
    assert abs(float(m1) - singles[2]) < 1e-9 and float(s1) == 0.0


@pytest.mark.parametrize("name", ["water_box", "water_triclinic"])
def test_periodic_cell_list_energy_equals_all_pairs_energy(data, model, name):
    """Periodic 255-atom boxes: forcing the cell-list path gives the default (all-pairs minimum image) E and F."""
    z, x, cell = structure(data, name)
    e_default, f_default = energy_forces(model, z, x, cell)
    saved = model.aev.all_pairs_max_atoms
    try:
        model.aev.all_pairs_max_atoms = 0
        e_cells, f_cells = energy_forces(model, z, x, cell)
    finally:
        model.aev.all_pairs_max_atoms = saved
    assert abs(e_cells - e_default) < 1e-8
    torch.testing.assert_close(f_cells, f_default, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["water_box", "water_triclinic"])
def test_supercell_energy_is_twice_the_cell_energy(data, model, name):
    """Exact identity: a 2x1x1 periodic supercell (510 atoms, cell-list path) has twice the energy of the
    255-atom cell (all-pairs path), and each copy of an atom feels the original atom's force."""
    z, x, cell = structure(data, name)
    e1, f1 = energy_forces(model, z, x, cell)
    supercell = torch.stack([2.0 * cell[0], cell[1], cell[2]])
    z2 = torch.cat([z, z], 1)
    x2 = torch.cat([x, x + cell[0]], 1)
    assert z2.shape[1] > model.aev.all_pairs_max_atoms
    e2, f2 = energy_forces(model, z2, x2, supercell)
    assert abs(e2 - 2.0 * e1) < 1e-8
    torch.testing.assert_close(f2[:, : z.shape[1]], f1, rtol=0, atol=1e-9)
    torch.testing.assert_close(f2[:, z.shape[1]:], f1, rtol=0, atol=1e-9)


def test_periodic_batch_equals_separate_calls(data, model):
    """Two frames of the triclinic box in one periodic batch give the energies and forces of separate calls."""
    z, x, cell = structure(data, "water_triclinic")
    y = x + torch.tensor(np.random.default_rng(8).normal(0.0, 0.05, size=tuple(x.shape)))
    xb = torch.cat([x, y], 0).requires_grad_(True)
    energies = model(torch.cat([z, z], 0), xb, cell)
    (grad,) = torch.autograd.grad(energies.sum(), xb)
    for k, frame in enumerate([x, y]):
        e, f = energy_forces(model, z, frame, cell)
        assert abs(float(energies[k].detach()) - e) < 1e-9
        torch.testing.assert_close(-grad[k:k + 1], f, rtol=0, atol=1e-9)
    assert abs(float(energies[0].detach()) - float(energies[1].detach())) > 1e-3


def test_positions_of_another_float_type_are_refused_in_one_line():
    """float32 positions for the float64 model: one ValueError naming both types (it was an index_add_ RuntimeError)."""
    model = openmm_ani.models.load("ani1ccx")
    z = torch.tensor([[8, 1, 1]])
    x = torch.tensor([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]], dtype=torch.float32)
    for call in (model, model.energies_and_forces, model.member_energies):
        with pytest.raises(ValueError, match=r"positions are float32 but the model's weights are float64: convert"):
            call(z, x)
    # the conversions the message names both work, and agree
    assert float(model(z, x.to(torch.float64))) == pytest.approx(float(model.to(torch.float32)(z, x)), abs=1e-4)
