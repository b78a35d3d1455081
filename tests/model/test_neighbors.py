"""Cell-list neighbour search against a brute-force minimum-image reference written here in NumPy.

The reference enumerates, for every pair of atoms, the periodic image shifts ``n`` in a
5x5x5 block around the nearest image explicitly, and keeps every image closer than the
cutoff. The cell list must find exactly those pairs with the same vectors, for orthorhombic
and triclinic boxes and for wrapped and unwrapped coordinates.
"""

import itertools
import os
from typing import Dict, Optional, Tuple

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani.model import neighbors

from paths import REFERENCE
SHIFTS = np.array(list(itertools.product(range(-2, 3), repeat=3)), dtype=np.float64)  # [125, 3]

Pairs = Dict[Tuple[int, int], np.ndarray]


def brute_force_pairs(positions: np.ndarray, cell: Optional[np.ndarray], cutoff: float) -> Pairs:
    """Every (i < j) with an image of j within ``cutoff`` of i: (i, j) -> r_j + n.cell - r_i."""
    n = positions.shape[0]
    i, j = np.triu_indices(n, 1)
    delta = positions[j] - positions[i]  # [P, 3]
    if cell is None:
        keep = np.linalg.norm(delta, axis=1) < cutoff
        return {(a, b): d for a, b, d in zip(i[keep], j[keep], delta[keep])}
    frac = delta @ np.linalg.inv(cell)
    nearest = -np.round(frac)  # an image shift near the minimum image, then all shifts around it
    out: Pairs = {}
    for shift in SHIFTS:
        images = delta + (nearest + shift) @ cell
        keep = np.linalg.norm(images, axis=1) < cutoff
        for a, b, d in zip(i[keep], j[keep], images[keep]):
            assert (a, b) not in out, "two images of one pair within the cutoff: box too small for the test"
            out[(int(a), int(b))] = d
    return out


def as_pairs(first: torch.Tensor, second: torch.Tensor, vectors: torch.Tensor) -> Pairs:
    out: Pairs = {}
    for a, b, v in zip(first.tolist(), second.tolist(), vectors.detach().numpy()):
        key, sign = ((a, b), 1.0) if a < b else ((b, a), -1.0)
        assert key not in out, f"pair {key} listed twice"
        out[key] = sign * v
    return out


def assert_same_pairs(found: Pairs, expected: Pairs) -> None:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]} ({len(missing)}), extra {extra[:5]} ({len(extra)})"
    for key, vector in expected.items():
        np.testing.assert_allclose(found[key], vector, rtol=0, atol=1e-10, err_msg=str(key))


def water(name: str) -> Tuple[np.ndarray, np.ndarray]:
    with np.load(REFERENCE) as data:
        return data[f"{name}__positions"], data[f"{name}__cell"]


SKEWED = np.array([[11.0, 0.0, 0.0], [5.0, 11.5, 0.0], [-5.2, 5.1, 11.8]])


def random_box(cell: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(count, 3)) @ cell


def cases():
    box_positions, box_cell = water("water_box")
    tri_positions, tri_cell = water("water_triclinic")
    skewed_positions = random_box(SKEWED, 160, 1)
    return [
        ("water_orthorhombic", box_positions, box_cell, 5.2),
        ("water_triclinic", tri_positions, tri_cell, 5.2),
        ("random_skewed_triclinic", skewed_positions, SKEWED, 4.3),
    ]


CASES = cases()


#: neighbor_pairs' size threshold selecting each search: 0 -> cell list, huge -> all pairs (minimum image).
PATHS = {"cell_list": 0, "all_pairs": 10 ** 6}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("unwrap", [False, True], ids=["wrapped", "unwrapped"])
@pytest.mark.parametrize("label,positions,cell,cutoff", CASES, ids=[c[0] for c in CASES])
def test_periodic_pairs_equal_brute_force_minimum_image(label, positions, cell, cutoff, unwrap, path):
    """Both periodic searches (cell list, all pairs) find exactly the brute-force minimum-image pairs and vectors."""
    assert (neighbors.box_widths(torch.tensor(cell)) >= 2 * cutoff).all()
    x = positions.copy()
    if unwrap:
        rng = np.random.default_rng(9)
        x = x + rng.integers(-3, 4, size=x.shape).astype(np.float64) @ cell + np.array([0.3, -40.0, 17.0])
    expected = brute_force_pairs(x, cell, cutoff)
    assert len(expected) > 500
    species = torch.zeros(1, len(x), dtype=torch.long)
    found = as_pairs(*neighbors.neighbor_pairs(species, torch.tensor(x)[None], cutoff, torch.tensor(cell), PATHS[path]))
    assert_same_pairs(found, expected)


def test_periodic_images_are_used():
    """Guard: the periodic reference really differs from the open one (pairs across the boundary exist)."""
    positions, cell = water("water_box")
    assert len(brute_force_pairs(positions, cell, 5.2)) > len(brute_force_pairs(positions, None, 5.2)) + 100


@pytest.mark.parametrize("path", sorted(PATHS))
def test_padding_atoms_are_excluded(path):
    """Atoms marked as padding (species -1) appear in no pair; the others keep their pairs."""
    positions, cell = water("water_triclinic")
    real = np.ones(len(positions), dtype=bool)
    real[::7] = False
    expected = {k: v for k, v in brute_force_pairs(positions, cell, 5.2).items() if real[k[0]] and real[k[1]]}
    species = torch.tensor(np.where(real, 0, -1))[None]
    found = as_pairs(*neighbors.neighbor_pairs(species, torch.tensor(positions)[None], 5.2, torch.tensor(cell),
                                               PATHS[path]))
    assert_same_pairs(found, expected)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_neighbor_pairs_batched_periodic_indices(path):
    """neighbor_pairs on a batch of two periodic frames returns flat indices b*N + n with the right pairs."""
    positions, cell = water("water_box")
    shifted = positions + np.array([2.0, 0.0, -1.0])
    species = torch.zeros(2, len(positions), dtype=torch.long)
    x = torch.tensor(np.stack([positions, shifted]))
    first, second, vectors = neighbors.neighbor_pairs(species, x, 5.2, torch.tensor(cell), PATHS[path])
    n = len(positions)
    frame = first // n
    assert torch.equal(frame, second // n)
    for b, coords in enumerate([positions, shifted]):
        sel = frame == b
        found = as_pairs(first[sel] - b * n, second[sel] - b * n, vectors[sel])
        assert_same_pairs(found, brute_force_pairs(coords, cell, 5.2))


def test_open_cell_list_equals_brute_force():
    """Without a box, the cell list (used above 384 atoms) equals brute force with no images."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0.0, 22.0, size=(450, 3))
    species = torch.zeros(1, len(x), dtype=torch.long)
    found = as_pairs(*neighbors.neighbor_pairs(species, torch.tensor(x)[None], 5.2, None, 0))
    assert_same_pairs(found, brute_force_pairs(x, None, 5.2))
    found_all = as_pairs(*neighbors.all_pairs(species, torch.tensor(x)[None], 5.2))
    assert_same_pairs(found_all, brute_force_pairs(x, None, 5.2))


def test_vectors_carry_gradients():
    """Pair vectors are differentiable: d(sum |v|^2)/dx equals the analytic 2 * sum of signed vectors."""
    positions, cell = water("water_triclinic")
    x = torch.tensor(positions, requires_grad=True)
    first, second, vectors = neighbors.cell_list_pairs(x, torch.ones(len(positions), dtype=torch.bool),
                                                       torch.tensor(cell), 5.2)
    (grad,) = torch.autograd.grad(vectors.pow(2).sum(), x)
    expected = np.zeros_like(positions)
    for (a, b), v in brute_force_pairs(positions, cell, 5.2).items():
        expected[b] += 2 * v
        expected[a] -= 2 * v
    np.testing.assert_allclose(grad.numpy(), expected, rtol=0, atol=1e-9)


# ---------------------------------------------------------------- box too small


@pytest.mark.parametrize(
    "cell",
    [
        np.diag([10.3, 14.0, 14.0]),  # one edge shorter than 2 x 5.2 Å
        np.array([[14.0, 0.0, 0.0], [10.0, 11.0, 0.0], [0.0, 0.0, 14.0]]),  # edges >= 10.4 Å, perpendicular width < 10.4
    ],
    ids=["short_edge", "skewed_thin"],
)
def test_box_shorter_than_twice_cutoff_raises(cell):
    """A box narrower than 2 x cutoff (perpendicular width) raises ValueError, in check_box and in the model."""
    assert min(np.linalg.norm(cell, axis=1)) >= 10.3
    with pytest.raises(ValueError, match="box"):
        neighbors.check_box(torch.tensor(cell), 5.2)
    model = openmm_ani.models.load("ani1ccx")
    z = torch.tensor([[8, 1, 1]])
    x = torch.tensor([[[1.0, 1.0, 1.0], [1.96, 1.0, 1.0], [0.76, 1.93, 1.0]]], dtype=torch.float64)
    with pytest.raises(ValueError, match="box"):
        model(z, x, torch.tensor(cell))


def test_box_of_exactly_sufficient_width_is_accepted():
    """The boundary case: widths of 2 x cutoff + 1e-6 Å are accepted (the error is not over-eager)."""
    neighbors.check_box(torch.tensor(np.diag([10.400001, 10.5, 11.0])), 5.2)
