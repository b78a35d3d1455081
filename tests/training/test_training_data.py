"""Training data: release-layout reading, NaN handling, errors, streaming, splits, batches, self energies.

References are independent of the code under test: files are written here with h5py directly,
expected values are the arrays the test put in, and the self-energy truth is the synthetic
per-element energies used to build the data.
"""

import os

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py", reason="h5py is part of the training extra")

from openmm_ani.training.data import Dataset, concatenate, iter_h5, read_h5, write_h5  # noqa: E402
from openmm_ani.training.selfenergy import fit_self_energies, subtract_self_energies  # noqa: E402

Z = {"H": 1, "C": 6, "N": 7, "O": 8}


def _release_file(path, rng):
    """Two formula groups written with raw h5py, NaN labels at known places."""
    water_e = np.array([-76.1, -76.2, np.nan, -76.4, -76.5])
    water_f = rng.normal(size=(5, 3, 3))
    water_f[3, 1, 2] = np.nan  # forces missing for conformation 3 only
    ch4_e = np.array([-40.1, -40.2, -40.3])
    ch4_cc = np.array([np.nan, -40.25, np.nan])
    with h5py.File(path, "w") as h5:
        g = h5.create_group("H2O")
        g["atomic_numbers"] = np.array([8, 1, 1])
        g["coordinates"] = rng.normal(size=(5, 3, 3))
        g["wb97x_dz.energy"] = water_e
        g["wb97x_dz.forces"] = water_f
        g["ccsd(t)_cbs.energy"] = np.full(5, np.nan)
        g = h5.create_group("CH4")
        g["atomic_numbers"] = np.array([6, 1, 1, 1, 1])
        g["coordinates"] = rng.normal(size=(3, 5, 3))
        g["wb97x_dz.energy"] = ch4_e
        g["wb97x_dz.forces"] = rng.normal(size=(3, 5, 3))
        g["ccsd(t)_cbs.energy"] = ch4_cc
    with h5py.File(path, "r") as h5:
        return {k: {a: h5[k][a][()] for a in h5[k]} for k in h5}


def test_release_layout_nan_labels_skipped_per_key(tmp_path):
    path = str(tmp_path / "release.h5")
    raw = _release_file(path, np.random.default_rng(1))

    energy_only = read_h5(path, "wb97x_dz.energy")
    # groups in name order: CH4 (3) then H2O without the NaN energy at index 2
    assert list(energy_only.group) == ["CH4"] * 3 + ["H2O"] * 4
    assert list(energy_only.index) == [0, 1, 2, 0, 1, 3, 4]
    np.testing.assert_array_equal(energy_only.energies, [-40.1, -40.2, -40.3, -76.1, -76.2, -76.4, -76.5])

    with_forces = read_h5(path, "wb97x_dz.energy", "wb97x_dz.forces")
    assert list(with_forces.index) == [0, 1, 2, 0, 1, 4]  # water 3 has a NaN force
    np.testing.assert_array_equal(with_forces.forces[5, :3], raw["H2O"]["wb97x_dz.forces"][4])
    np.testing.assert_array_equal(with_forces.forces[5, 3:], 0.0)  # padding of water to 5 atoms
    np.testing.assert_array_equal(with_forces.coordinates[3, :3], raw["H2O"]["coordinates"][0])
    np.testing.assert_array_equal(with_forces.atomic_numbers[3], [8, 1, 1, 0, 0])

    cc = read_h5(path, "ccsd(t)_cbs.energy")  # water has no CC label at all, CH4 only one
    assert list(cc.group) == ["CH4"] and list(cc.index) == [1]
    np.testing.assert_array_equal(cc.energies, [-40.25])

    carbon_free = read_h5(path, "wb97x_dz.energy", elements=["H", "O"])
    assert set(carbon_free.group) == {"H2O"}


def test_missing_key_and_corrupt_file_raise_clear_errors(tmp_path):
    path = str(tmp_path / "release.h5")
    _release_file(path, np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"ccsd\(t\)_dz\.energy"):
        read_h5(path, "ccsd(t)_dz.energy")
    with pytest.raises(ValueError, match="wb97x_dz.force'"):
        read_h5(path, "wb97x_dz.energy", "wb97x_dz.force")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(np.random.default_rng(3).bytes(4096))
    with pytest.raises(ValueError, match="corrupt.h5"):
        read_h5(str(corrupt), "wb97x_dz.energy")
    with pytest.raises(ValueError, match="corrupt.h5"):
        next(iter_h5(str(corrupt), "wb97x_dz.energy"))
    empty = str(tmp_path / "empty.h5")
    with h5py.File(empty, "w") as h5:
        h5.create_group("nothing")
    with pytest.raises(ValueError, match="atomic_numbers"):
        read_h5(empty, "wb97x_dz.energy")
    bad_shape = str(tmp_path / "bad_shape.h5")
    with h5py.File(bad_shape, "w") as h5:
        g = h5.create_group("H2O")
        g["atomic_numbers"] = np.array([8, 1, 1])
        g["coordinates"] = np.zeros((2, 3, 3))
        g["wb97x_dz.energy"] = np.zeros(3)
    with pytest.raises(ValueError, match="H2O"):
        read_h5(bad_shape, "wb97x_dz.energy")


def test_simple_user_format_with_per_conformation_numbers(tmp_path):
    path = str(tmp_path / "user.h5")
    z = np.array([[8, 1, 1, 0], [6, 1, 1, 8]])  # water padded, formaldehyde
    x = np.random.default_rng(4).normal(size=(2, 4, 3))
    with h5py.File(path, "w") as h5:
        h5["atomic_numbers"] = z
        h5["coordinates"] = x
        h5["energies"] = np.array([-76.0, -114.0])
    d = read_h5(path, "energies")
    np.testing.assert_array_equal(d.atomic_numbers, z)
    np.testing.assert_array_equal(d.coordinates[1], x[1])
    np.testing.assert_array_equal(d.coordinates[0, 3], 0.0)  # padding coordinates zeroed
    np.testing.assert_array_equal(d.num_atoms(), [3, 4])
    np.testing.assert_array_equal(d.energies, [-76.0, -114.0])


def _random_molecules(rng, sizes=(3, 4, 5, 6, 9), per=(7, 5, 11, 4, 6)):
    mols = {}
    for n, c in zip(sizes, per):
        z = rng.choice([1, 6, 7, 8], size=n)
        mols[f"M{n}"] = {
            "atomic_numbers": z,
            "coordinates": rng.normal(size=(c, n, 3)),
            "wb97x_dz.energy": rng.normal(size=c),
            "wb97x_dz.forces": rng.normal(size=(c, n, 3)),
        }
    return mols


def test_write_read_round_trip_and_streaming_chunks(tmp_path):
    rng = np.random.default_rng(5)
    mols = _random_molecules(rng)
    path = str(tmp_path / "rt.h5")
    write_h5(path, mols)
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]  # atomic write leaves no temporary
    full = read_h5(path, "wb97x_dz.energy", "wb97x_dz.forces")
    assert len(full) == sum(m["coordinates"].shape[0] for m in mols.values())
    for name, m in mols.items():
        sel = full.group == name
        n = len(m["atomic_numbers"])
        np.testing.assert_array_equal(full.coordinates[sel][:, :n], m["coordinates"])
        np.testing.assert_array_equal(full.forces[sel][:, :n], m["wb97x_dz.forces"])
        np.testing.assert_array_equal(full.energies[sel], m["wb97x_dz.energy"])
        expected_z = np.broadcast_to(m["atomic_numbers"], (sel.sum(), n))
        np.testing.assert_array_equal(full.atomic_numbers[sel][:, :n], expected_z)
    for chunk_size in (1, 4, 10, 1000):
        chunks = list(iter_h5(path, "wb97x_dz.energy", "wb97x_dz.forces", chunk_size=chunk_size))
        assert all(len(c) <= chunk_size for c in chunks)
        assert all(len(c) == chunk_size for c in chunks[:-1])
        joined = concatenate(chunks)
        np.testing.assert_array_equal(joined.energies, full.energies)
        np.testing.assert_array_equal(joined.coordinates, full.coordinates[:, : joined.coordinates.shape[1]])
        np.testing.assert_array_equal(joined.forces, full.forces[:, : joined.forces.shape[1]])
        np.testing.assert_array_equal(joined.index, full.index)


def _tagged_dataset(rng, c=203):
    """Conformations of 2-9 atoms whose energies are their unique ids."""
    n = rng.integers(2, 10, size=c)
    z = np.zeros((c, 9), dtype=np.int64)
    x = np.zeros((c, 9, 3))
    for i, k in enumerate(n):
        z[i, :k] = rng.choice([1, 6, 7, 8], size=k)
        x[i, :k] = rng.normal(size=(k, 3))
    return Dataset(z, x, np.arange(c, dtype=np.float64), forces=x * 2.0)


def test_splits_are_deterministic_disjoint_and_complete():
    d = _tagged_dataset(np.random.default_rng(6))
    a = d.split([0.8, 0.1, 0.1], seed=11)
    b = d.split([0.8, 0.1, 0.1], seed=11)
    c = d.split([0.8, 0.1, 0.1], seed=12)
    assert [len(p) for p in a] == [162, 21, 20]  # rounded cumulative bounds: 162.4 -> 162, 182.7 -> 183
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.energies, q.energies)
    assert not np.array_equal(a[0].energies, c[0].energies)
    ids = np.concatenate([p.energies for p in a])
    np.testing.assert_array_equal(np.sort(ids), np.arange(len(d)))  # disjoint and complete
    for p in a:  # each part keeps its conformations intact
        orig = d.subset(p.energies.astype(int))
        np.testing.assert_array_equal(p.coordinates, orig.coordinates)
    with pytest.raises(ValueError, match="sum to 1"):
        d.split([0.5, 0.4], seed=0)


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_cover_every_conformation_once_with_correct_padding(shuffle):
    d = _tagged_dataset(np.random.default_rng(7))
    seen = []
    mixed = 0
    for b in d.batches(8, shuffle=shuffle, seed=3, dtype=torch.float64):
        assert b.energies.dtype == torch.float64 and b.atomic_numbers.dtype == torch.long
        assert b.coordinates.shape[1] == int(b.num_atoms.max())  # padded to the batch's largest molecule
        for row, cid in enumerate(b.energies.long().tolist()):
            k = int(d.num_atoms()[cid])
            assert int(b.num_atoms[row]) == k
            np.testing.assert_array_equal(b.atomic_numbers[row, :k].numpy(), d.atomic_numbers[cid, :k])
            np.testing.assert_array_equal(b.coordinates[row, :k].numpy(), d.coordinates[cid, :k])
            np.testing.assert_array_equal(b.forces[row, :k].numpy(), d.forces[cid, :k])
            assert (b.atomic_numbers[row, k:] == 0).all() and (b.coordinates[row, k:] == 0).all()
            assert (b.forces[row, k:] == 0).all()
        seen.extend(b.energies.long().tolist())
        mixed += int(b.num_atoms.max() - b.num_atoms.min() > 1)
    assert sorted(seen) == list(range(len(d)))
    # sizes 2..9 over 203 conformations: sorting within buckets of 128 leaves few batches spanning > 2 sizes
    assert mixed <= 8
    order1 = [b.energies.tolist() for b in d.batches(8, shuffle=shuffle, seed=3)]
    order2 = [b.energies.tolist() for b in d.batches(8, shuffle=shuffle, seed=3)]
    assert order1 == order2


def test_batches_handle_padding_in_the_middle():
    z = np.array([[1, 0, 8, 1], [6, 1, 1, 1]])
    x = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    b = Dataset(z, x, np.zeros(2)).make_batch([0, 1], dtype=torch.float64)
    np.testing.assert_array_equal(b.atomic_numbers.numpy(), [[1, 8, 1, 0], [6, 1, 1, 1]])
    np.testing.assert_array_equal(b.coordinates[0, :3].numpy(), x[0, [0, 2, 3]])
    np.testing.assert_array_equal(b.coordinates[0, 3].numpy(), 0.0)


def _synthetic_energies(rng, truth, c=400, noise=1e-5):
    elements = list(truth)
    n = rng.integers(2, 12, size=c)
    z = np.zeros((c, 11), dtype=np.int64)
    for i, k in enumerate(n):
        z[i, :k] = rng.choice([Z[e] for e in elements], size=k)
    e = sum((z == Z[s]).sum(axis=1) * v for s, v in truth.items()) + rng.normal(scale=noise, size=c)
    return Dataset(z, np.zeros((c, 11, 3)), e)


def test_self_energy_fit_recovers_known_values_and_keeps_fixed_ones():
    truth = {"H": -0.60, "C": -38.08, "N": -54.71, "O": -75.19}
    d = _synthetic_energies(np.random.default_rng(8), truth)
    fitted = fit_self_energies(d, ["H", "C", "N", "O"])
    for e in truth:
        assert abs(fitted[e] - truth[e]) < 1e-5, (e, fitted[e], truth[e])
    residual = subtract_self_energies(d, fitted)
    assert np.sqrt(np.mean(residual**2)) < 2e-5  # only the added noise remains

    fixed_h = -0.5  # deliberately wrong: returned unchanged, others fitted to the remainder
    fitted_fixed = fit_self_energies(d, ["H", "C", "N", "O"], fixed={"H": fixed_h})
    assert fitted_fixed["H"] == fixed_h
    # with H fixed the others absorb the error only through composition: compare with an explicit solve
    counts = np.stack([(d.atomic_numbers == Z[s]).sum(axis=1) for s in "HCNO"], axis=1).astype(float)
    explicit, *_ = np.linalg.lstsq(counts[:, 1:], d.energies - counts[:, 0] * fixed_h, rcond=None)
    for e, v in zip("CNO", explicit):
        assert abs(fitted_fixed[e] - v) < 1e-9

    exact = fit_self_energies(d, ["H", "C", "N", "O"], fixed={"H": truth["H"], "O": truth["O"]})
    assert exact["H"] == truth["H"] and exact["O"] == truth["O"]
    assert abs(exact["C"] - truth["C"]) < 1e-5 and abs(exact["N"] - truth["N"]) < 1e-5

    with pytest.raises(ValueError, match="not in elements"):
        fit_self_energies(d, ["H", "C", "N"])
    with pytest.raises(ValueError, match="S"):
        fit_self_energies(d, ["H", "C", "N", "O"], fixed={"S": -397.0})
