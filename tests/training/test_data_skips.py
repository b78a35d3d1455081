"""Training data files: nothing is skipped without a count, and impossible atomic numbers are errors (issue 9, item 7).

The old reader dropped molecules with unsupported elements or without ``atomic_numbers``
silently (210 -> 196 conformations), treated a negative atomic number as padding while keeping
the full molecule's energy, and dropped NaN energies and forces without a count. The expected
counts below follow from how the file is built here.
"""

import logging

import h5py
import numpy as np
import pytest

from openmm_ani.training.data import iter_h5, read_h5, write_h5

from test_training_support import MOLECULES, analytic_energy_forces

LOGGER = "openmm_ani.training.data.h5"


def molecule(name, count, rng):
    z, x0 = MOLECULES[name]
    xs = x0 + rng.normal(0, 0.05, size=(count,) + x0.shape)
    labels = [analytic_energy_forces(z, x, x0) for x in xs]
    return {"atomic_numbers": np.array(z), "coordinates": xs, "wb97x_dz.energy": np.array([e for e, _ in labels]),
            "wb97x_dz.forces": np.array([f for _, f in labels])}


@pytest.fixture()
def mixed_file(tmp_path):
    """210 conformations: 196 CHNO, 7 in a molecule with sulfur, 7 in a group without atomic_numbers."""
    rng = np.random.default_rng(1)
    molecules = {f"{name}_{k}": molecule(name, 14, rng) for k in range(3) for name in ("H2O", "CH4", "NH3", "CH2O")}
    molecules.update({"CH3OH": molecule("CH3OH", 14, rng), "CH3OH_b": molecule("CH3OH", 14, rng)})
    assert sum(len(m["coordinates"]) for m in molecules.values()) == 196
    sulfur = molecule("H2O", 7, rng)
    sulfur["atomic_numbers"] = np.array([16, 1, 1])
    molecules["H2S"] = sulfur
    path = tmp_path / "mixed.h5"
    write_h5(str(path), molecules)
    with h5py.File(path, "a") as h5:
        group = h5.create_group("unnamed")
        arrays = molecule("NH3", 7, rng)
        for key in ("coordinates", "wb97x_dz.energy", "wb97x_dz.forces"):
            group.create_dataset(key, data=arrays[key])
    return str(path)


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_skipped_molecules_are_counted(mixed_file, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = read_h5(mixed_file, "wb97x_dz.energy", "wb97x_dz.forces", elements=["H", "C", "N", "O"])
    assert len(data) == 196
    messages = warnings_of(caplog)
    assert len(messages) == 2, messages
    assert "skipped 1 molecule(s) (7 conformations) with elements outside H,C,N,O (atomic numbers [16]): H2S" in messages[0]
    assert "skipped 1 group(s) (7 conformations) that have coordinates but no 'atomic_numbers': unnamed" in messages[1]
    assert all(m.startswith(mixed_file) for m in messages)


def test_streaming_reports_the_same_counts(mixed_file, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        chunks = list(iter_h5(mixed_file, "wb97x_dz.energy", chunk_size=50, elements=["H", "C", "N", "O"]))
    assert sum(len(c) for c in chunks) == 196
    assert len(warnings_of(caplog)) == 2


def test_nan_labels_are_counted_per_reason(tmp_path, caplog):
    rng = np.random.default_rng(2)
    water = molecule("H2O", 10, rng)
    water["wb97x_dz.energy"][[1, 4, 7]] = np.nan
    water["wb97x_dz.forces"][[2, 4]] = np.nan  # 4 is already counted as a missing energy
    water["wb97x_dz.forces"][9, 0, 0] = np.inf
    path = str(tmp_path / "nan.h5")
    write_h5(path, {"H2O": water})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = read_h5(path, "wb97x_dz.energy", "wb97x_dz.forces")
    assert len(data) == 10 - 3 - 2
    assert sorted(data.index.tolist()) == [0, 3, 5, 6, 8]
    messages = warnings_of(caplog)
    assert "skipped 3 conformation(s) whose 'wb97x_dz.energy' is NaN or infinite (NaN marks a missing label)" in messages[0]
    assert "skipped 2 conformation(s) whose 'wb97x_dz.forces' has NaN or infinite values" in messages[1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert len(read_h5(path, "wb97x_dz.energy")) == 7  # forces not requested: only the energy gaps count
    assert len(warnings_of(caplog)) == 1


def test_a_clean_file_reads_without_warnings(tmp_path, caplog):
    path = str(tmp_path / "clean.h5")
    write_h5(path, {"CH4": molecule("CH4", 5, np.random.default_rng(3))})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert len(read_h5(path, "wb97x_dz.energy", "wb97x_dz.forces", elements=["H", "C", "N", "O"])) == 5
    assert warnings_of(caplog) == []


def test_negative_atomic_number_is_an_error(tmp_path):
    """The old reader took -1 as padding and kept the whole molecule's energy for the remaining atoms."""
    methane = molecule("CH4", 4, np.random.default_rng(4))
    methane["atomic_numbers"] = np.array([6, 1, 1, 1, -1])
    path = str(tmp_path / "negative.h5")
    write_h5(path, {"CH4": methane})
    with pytest.raises(ValueError, match=r"negative\.h5: group '/CH4': negative atomic numbers \[-1\]"):
        read_h5(path, "wb97x_dz.energy")
