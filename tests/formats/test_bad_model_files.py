"""Damaged and nonsensical model files are refused with one line naming the file (issue 9, items 6, 14, 16).

The old code loaded a model with NaN weights (NaN energies) or a negative cutoff (an energy
52 kJ/mol off) and ran it; a CRC-corrupt archive escaped as ``zipfile.BadZipFile``; bad JSON
metadata did not name the file; ``model_index`` 1.5 or "2" gave a raw ``TypeError`` and ``True``
was taken as member 1.
"""

import json
import re
import zipfile

import numpy as np
import pytest

import openmm_ani
from openmm_ani import formats
from openmm_ani.openmm.potential import ANIPotential


def bundled_arrays(name: str = "ani1x") -> dict:
    with np.load(openmm_ani.models.bundled_path(name)) as archive:
        return {key: archive[key] for key in archive.files}


def rewrite(path, arrays: dict, **metadata_changes) -> str:
    """Write ``arrays`` (uncompressed) to ``path`` with ``metadata_changes`` applied; return the path."""
    arrays = dict(arrays)
    metadata = json.loads(str(arrays["metadata"]))
    for key, value in metadata_changes.items():
        if key == "aev":
            metadata["aev"].update(value)
        else:
            metadata[key] = value
    arrays["metadata"] = np.array(json.dumps(metadata))
    np.savez(str(path), **arrays)
    return str(path)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text.strip(), text
    return text


def test_nan_weights_are_refused(tmp_path):
    arrays = bundled_arrays()
    weight = arrays["C.1.weight"].copy()
    weight[3, 5, 7] = np.nan
    arrays["C.1.weight"] = weight
    path = rewrite(tmp_path / "nan_weights.npz", arrays)
    with pytest.raises(ValueError) as info:
        openmm_ani.models.load(path)
    assert re.search(r"nan_weights\.npz: element C layer 1: 1 weight value\(s\) are NaN or infinite", one_line(info.value))
    with pytest.raises(ValueError, match="nan_weights.npz"):
        ANIPotential(path)


def test_infinite_bias_and_self_energy_are_refused(tmp_path):
    arrays = bundled_arrays()
    bias = arrays["H.3.bias"].copy()
    bias[0, 0] = np.inf
    arrays["H.3.bias"] = bias
    with pytest.raises(ValueError, match=r"inf_bias\.npz: element H layer 3: 1 bias value"):
        openmm_ani.models.load(rewrite(tmp_path / "inf_bias.npz", arrays))
    with pytest.raises(ValueError, match=r"nan_self\.npz: self energies must be finite"):
        openmm_ani.models.load(rewrite(tmp_path / "nan_self.npz", bundled_arrays(), self_energies=[0.0, float("nan"), 0.0, 0.0]))


@pytest.mark.parametrize("change, message", [
    ({"radial_cutoff": -5.2}, r"radial_cutoff must be a positive length in Å, got -5\.2"),
    ({"angular_cutoff": 0.0}, r"angular_cutoff must be a positive length in Å, got 0\.0"),
    ({"angular_cutoff": 6.0}, r"angular_cutoff 6\.0 Å exceeds radial_cutoff 5\.2 Å"),
    ({"radial_eta": [-16.0]}, r"radial_eta must be positive"),
    ({"radial_shifts": []}, r"radial_shifts must be a non-empty list"),
])
def test_nonsensical_aev_parameters_are_refused(tmp_path, change, message):
    path = rewrite(tmp_path / "bad_aev.npz", bundled_arrays(), aev=change)
    with pytest.raises(ValueError) as info:
        openmm_ani.models.load(path)
    assert "bad_aev.npz" in one_line(info.value)
    assert re.search(message, str(info.value)), str(info.value)


def test_crc_corrupt_archive_is_one_line(tmp_path):
    """Flip one byte inside a stored weight array: the zip's CRC check fails when the member is read."""
    path = rewrite(tmp_path / "corrupt.npz", bundled_arrays())
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("C.0.weight.npy")
    header = 30 + len(info.filename.encode()) + len(info.extra)
    position = info.header_offset + header + info.compress_size // 2
    data[position] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError) as error:
        openmm_ani.models.load(path)
    text = one_line(error.value)
    assert "corrupt.npz" in text and "CRC" in text


def test_metadata_that_is_not_json_names_the_file(tmp_path):
    arrays = bundled_arrays()
    arrays["metadata"] = np.array('{"format": "openmm-ani-model", "elements": [')
    np.savez(str(tmp_path / "badjson.npz"), **arrays)
    with pytest.raises(ValueError) as info:
        openmm_ani.models.load(str(tmp_path / "badjson.npz"))
    assert re.search(r"badjson\.npz: the metadata is not valid JSON", one_line(info.value))


@pytest.mark.parametrize("index", [1.5, "2", True, np.float64(1.0)])
def test_model_index_must_be_an_integer(index):
    with pytest.raises(ValueError, match=r"model_index must be None or an integer in 0\.\.7"):
        openmm_ani.models.load("ani1ccx", model_index=index)
    with pytest.raises(ValueError, match="model_index"):
        ANIPotential("ani1ccx", model_index=index)


def test_numpy_integer_model_index_is_accepted():
    assert openmm_ani.models.load("ani1ccx", model_index=np.int64(2)).num_models == 1
    assert formats.check_member_index(np.int32(7), 8) == 7
