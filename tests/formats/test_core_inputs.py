"""Bad input to the ANI core raises clear errors that name what is wrong.

Unsupported elements (symbols and atom indices), non-finite coordinates, wrong shapes (the
expected shape), unknown model names (the available ones), bad model indices, and corrupt or
incomplete model files and NeuroChem folders (the file or key). Tests that apply to every
bundled model are parametrized over the registry, ``openmm_ani.models.available_models()``.
"""

import os
import re
import shutil

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani import formats
from openmm_ani.formats.neurochem import read_folder
from openmm_ani.openmm.module import ANIForceModule

from _neurochem_folder import write_folder

MODELS = openmm_ani.models.available_models()
WATER_Z = torch.tensor([[8, 1, 1]])
WATER_X = torch.tensor([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]], dtype=torch.float64)


@pytest.fixture(scope="module", params=MODELS)
def model(request) -> openmm_ani.ANIModel:
    return openmm_ani.models.load(request.param)


def test_registry_lists_the_published_models():
    assert {"ani1ccx", "ani1x"} <= set(MODELS)


def test_registered_models_load_with_expected_shape():
    """Every registered model: 8 members, elements H C N O, Rcr 5.2 Å (NeuroChem value, float32 allowed)."""
    for name in MODELS:
        m = openmm_ani.models.load(name)
        assert m.num_models == 8
        assert m.elements == ["H", "C", "N", "O"]
        assert m.cutoff == pytest.approx(5.2, abs=1e-6)
        assert m.aev.length == 384


# ---------------------------------------------------------------- elements


def test_unsupported_elements_are_named_with_indices(model):
    """S at atom 2 and Cl at atoms 4 and 6 -> ValueError naming S, Cl and the indices 2, 4, 6."""
    z = torch.tensor([[6, 1, 16, 1, 17, 1, 17]])
    x = torch.randn(1, 7, 3, dtype=torch.float64) * 2.0
    with pytest.raises(ValueError) as info:
        model(z, x)
    message = str(info.value)
    assert re.search(r"\bS\b", message) and re.search(r"\bCl\b", message), message
    assert re.search(r"2\D+4\D+6", message.split("indices")[-1]), message


def test_unsupported_element_in_second_molecule_of_batch(model):
    """The atom index reported is the index within its molecule; B (boron) named for the second molecule."""
    z = torch.tensor([[6, 1, 1, 1], [6, 1, 5, -1]])
    x = torch.randn(2, 4, 3, dtype=torch.float64) * 2.0
    with pytest.raises(ValueError, match=r"\bB\b.*2"):
        model(z, x)


def test_atomic_number_beyond_periodic_table(model):
    """An absurd atomic number gives ValueError (not an IndexError) mentioning it."""
    with pytest.raises(ValueError, match="200"):
        model(torch.tensor([[8, 1, 200]]), WATER_X)


def test_force_module_rejects_unsupported_elements_at_construction(model):
    with pytest.raises(ValueError, match=r"\bF\b"):
        ANIForceModule(model, [6, 9, 1, 1, 1])


# ---------------------------------------------------------------- coordinates


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_positions_raise(model, bad):
    x = WATER_X.clone()
    x[0, 1, 2] = bad
    with pytest.raises(ValueError, match="(?i)nan|inf"):
        model(WATER_Z, x)


def test_non_finite_padding_positions_are_ignored(model):
    """NaN at a padding atom is not an error and changes nothing: padding is ignored everywhere."""
    z = torch.tensor([[8, 1, 1, -1]])
    x = torch.cat([WATER_X, torch.full((1, 1, 3), float("nan"), dtype=torch.float64)], 1).requires_grad_(True)
    e = model(z, x)
    (grad,) = torch.autograd.grad(e.sum(), x)
    x0 = WATER_X.clone().requires_grad_(True)
    e0 = model(WATER_Z, x0)
    (grad0,) = torch.autograd.grad(e0.sum(), x0)
    assert abs(float(e.detach()) - float(e0.detach())) < 1e-10
    torch.testing.assert_close(grad[:, :3], grad0, rtol=0, atol=1e-10)


def test_non_finite_cell_raises(model):
    cell = torch.eye(3, dtype=torch.float64) * 20.0
    cell[1, 1] = float("nan")
    with pytest.raises(ValueError, match="(?i)nan|inf"):
        model(WATER_Z, WATER_X, cell)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "z,x,cell,expected",
    [
        (WATER_Z[0], WATER_X, None, r"\[B, N\]"),  # 1-D atomic numbers
        (WATER_Z, WATER_X[0], None, r"\[B, N, 3\]"),  # positions missing the batch axis
        (WATER_Z, WATER_X[..., :2], None, r"\[B, N, 3\]"),  # 2-D positions
        (torch.tensor([[8, 1]]), WATER_X, None, r"\[B, N, 3\]"),  # atom counts disagree
        (WATER_Z, WATER_X, torch.eye(3, dtype=torch.float64)[0] * 20, r"\[3, 3\]"),  # cell [3]
        (WATER_Z, WATER_X, torch.eye(3, dtype=torch.float64)[:2] * 20, r"\[3, 3\]"),  # cell [2, 3]
    ],
    ids=["z_1d", "x_2d", "x_last_axis_2", "atom_count_mismatch", "cell_vector", "cell_2x3"],
)
def test_wrong_shapes_state_the_expected_shape(model, z, x, cell, expected):
    with pytest.raises(ValueError, match=expected):
        model(z, x, cell)


def test_wrong_dtypes(model):
    with pytest.raises(ValueError, match="(?i)integer"):
        model(WATER_Z.double(), WATER_X)
    with pytest.raises(ValueError, match="(?i)floating"):
        model(WATER_Z, WATER_X.long())


# ---------------------------------------------------------------- registry and model files


def test_unknown_model_name_lists_available_models():
    with pytest.raises(ValueError) as info:
        openmm_ani.models.load("ani3zz")
    for name in MODELS:
        assert name in str(info.value)
    assert "ani3zz" in str(info.value)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("index", [-1, 8, 100])
def test_model_index_out_of_range(name, index):
    with pytest.raises(ValueError, match=r"model_index"):
        openmm_ani.models.load(name, model_index=index)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_index_loads_a_distinct_member(name):
    """model_index 0..7 give one-member models whose energies are the ensemble's member energies, in order."""
    ensemble = openmm_ani.models.load(name)
    with torch.no_grad():
        members = ensemble.member_energies(WATER_Z, WATER_X)[:, 0]
        singles = torch.stack([openmm_ani.models.load(name, model_index=i)(WATER_Z, WATER_X)[0] for i in range(8)])
    torch.testing.assert_close(singles, members, rtol=0, atol=1e-10)
    assert len(set(np.round(singles.numpy(), 8).tolist())) == 8


def test_missing_model_file_names_the_path(tmp_path):
    path = str(tmp_path / "nothere.npz")
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        formats.load_spec(path)
    with pytest.raises(ValueError, match="nothere.npz"):
        openmm_ani.models.load(path)


def test_corrupt_model_file_names_the_file(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive" * 10)
    with pytest.raises(ValueError, match="garbage.npz"):
        openmm_ani.models.load(str(path))


def _rewrite_without(source: str, target: str, drop: str) -> None:
    with np.load(source) as archive:
        arrays = {k: archive[k] for k in archive.files if k != drop}
    np.savez(target, **arrays)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("drop", ["C.1.weight", "O.3.bias", "metadata"])
def test_model_file_missing_key_names_the_key(tmp_path, name, drop):
    target = str(tmp_path / f"{name}_missing.npz")
    _rewrite_without(openmm_ani.models.bundled_path(name), target, drop)
    with pytest.raises(ValueError, match=re.escape(drop)):
        openmm_ani.models.load(target)


def test_model_file_round_trip_and_wrong_format(tmp_path):
    """save/load_spec round-trips a model exactly; a file with a foreign 'format' is refused by name."""
    spec = openmm_ani.models.load_model_spec("ani1x")
    path = str(tmp_path / "copy.npz")
    formats.save(spec, path)
    a, b = openmm_ani.models.load("ani1x"), openmm_ani.models.load(path)
    with torch.no_grad():
        assert float(a(WATER_Z, WATER_X)) == float(b(WATER_Z, WATER_X))
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["metadata"] = np.array(str(arrays["metadata"]).replace("openmm-ani-model", "something-else"))
    np.savez(str(tmp_path / "foreign.npz"), **arrays)
    with pytest.raises(ValueError, match="foreign.npz"):
        openmm_ani.models.load(str(tmp_path / "foreign.npz"))


# ---------------------------------------------------------------- NeuroChem folders


@pytest.fixture()
def folder(tmp_path) -> str:
    path = str(tmp_path / "nc")
    write_folder(path, members=2, hidden=(8,), activations=(9,))
    read_folder(path)  # the intact folder reads
    return path


def test_missing_neurochem_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        read_folder(str(tmp_path / "no_such_folder"))


def test_missing_weight_file_is_named(folder):
    victim = os.path.join(folder, "train1", "networks", "ANN-N.nnf-l2.wparam")
    os.remove(victim)
    with pytest.raises(FileNotFoundError, match=re.escape("ANN-N.nnf-l2.wparam")):
        read_folder(folder)


def test_truncated_weight_file_is_named(folder):
    victim = os.path.join(folder, "train0", "networks", "ANN-C.nnf-l1.wparam")
    with open(victim, "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(ValueError, match=re.escape("ANN-C.nnf-l1.wparam")):
        read_folder(folder)


def test_corrupt_nnf_is_named(folder):
    victim = os.path.join(folder, "train0", "networks", "ANN-O.nnf")
    with open(victim, "rb") as handle:
        raw = handle.read()
    with open(victim, "wb") as handle:
        handle.write(raw[:40] + b"\x00" * 30 + raw[70:])
    with pytest.raises(ValueError, match=re.escape("ANN-O.nnf")):
        read_folder(folder)


def test_nnf_without_header_is_named(folder):
    victim = os.path.join(folder, "train1", "networks", "ANN-H.nnf")
    with open(victim, "wb") as handle:
        handle.write(b"not a neurochem file")
    with pytest.raises(ValueError, match=re.escape("ANN-H.nnf")):
        read_folder(folder)


def test_missing_network_file_is_named(folder):
    os.remove(os.path.join(folder, "train0", "networks", "ANN-S.nnf"))
    with pytest.raises(FileNotFoundError, match=re.escape("ANN-S.nnf")):
        read_folder(folder)


def test_params_missing_key_is_named(folder):
    path = os.path.join(folder, "synthetic.params")
    with open(path) as handle:
        lines = [line for line in handle if not line.startswith("ShfA")]
    with open(path, "w") as handle:
        handle.writelines(lines)
    with pytest.raises(ValueError, match="ShfA"):
        read_folder(folder)


def test_self_energy_file_missing_element_is_named(folder):
    path = os.path.join(folder, "sae_linfit.dat")
    with open(path) as handle:
        lines = [line for line in handle if not line.startswith("F,")]
    with open(path, "w") as handle:
        handle.writelines(lines)
    with pytest.raises(ValueError, match=r"sae_linfit.dat.*\bF\b"):
        read_folder(folder)


def test_missing_self_energy_file_is_named(folder):
    os.remove(os.path.join(folder, "sae_linfit.dat"))
    with pytest.raises(FileNotFoundError, match="sae_linfit.dat"):
        read_folder(folder)


def test_folder_without_members(folder):
    for k in range(2):
        shutil.rmtree(os.path.join(folder, f"train{k}"))
    with pytest.raises(ValueError, match="networks"):
        read_folder(folder)
