"""The bundled model files equal a fresh conversion of the published NeuroChem folders.

The published ANI-1ccx_8x and ANI-1x_8x folders ship in the ``torchani==1.2`` wheel on PyPI.
This test downloads that wheel with pip (the pip cache makes repeats fast), converts it with
``scripts/bundle_models.py``'s ``convert()`` and compares every array and the metadata of
``openmm_ani/data/<name>.npz``. It is skipped only when the package index cannot be reached.
"""

import importlib.util
import json
import os
import subprocess
import sys
from typing import Dict

import numpy as np
import pytest

import openmm_ani

from paths import ROOT
SCRIPT = os.path.join(ROOT, "scripts", "bundle_models.py")


def _load_script():
    spec = importlib.util.spec_from_file_location("bundle_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    directory = str(tmp_path_factory.mktemp("wheel"))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", directory,
               "torchani==1.2"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("pip download torchani==1.2 timed out: the package index cannot be reached")
    if result.returncode != 0:
        pytest.skip("pip download torchani==1.2 failed (package index not reachable?): " + result.stderr[-500:])
    wheels = [f for f in os.listdir(directory) if f.endswith(".whl")]
    assert len(wheels) == 1, wheels
    return os.path.join(directory, wheels[0])


@pytest.fixture(scope="module")
def converted(wheel, tmp_path_factory) -> Dict[str, str]:
    out = str(tmp_path_factory.mktemp("converted"))
    return _load_script().convert(wheel, out)


def _read(path: str):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "metadata"}
        metadata = json.loads(str(archive["metadata"]))
    return arrays, metadata


def _without_dates(provenance: dict) -> dict:
    return {k: v for k, v in provenance.items() if "date" not in k.lower() and "time" not in k.lower()}


@pytest.mark.parametrize("name", ["ani1ccx", "ani1x"])
def test_fresh_conversion_equals_bundled_file(converted, name):
    """Every weight/bias array is bit-identical and the metadata (AEV, elements, self energies, activations) equal."""
    fresh_arrays, fresh_meta = _read(converted[name])
    bundled_arrays, bundled_meta = _read(openmm_ani.models.bundled_path(name))
    assert sorted(fresh_arrays) == sorted(bundled_arrays)
    assert len(bundled_arrays) == 4 * 4 * 2  # H C N O x 4 layers x (weight, bias)
    for key, array in bundled_arrays.items():
        assert array.dtype == fresh_arrays[key].dtype == np.float32, key
        assert array.shape == fresh_arrays[key].shape, key
        assert array.shape[0] == 8, key
        np.testing.assert_array_equal(array, fresh_arrays[key], err_msg=key)
    fresh_prov = _without_dates(fresh_meta.pop("provenance"))
    bundled_prov = _without_dates(bundled_meta.pop("provenance"))
    assert fresh_meta == bundled_meta
    assert fresh_prov == bundled_prov


def test_conversion_has_the_published_hyperparameters(converted):
    """The converted ANI-1ccx carries the published NeuroChem hyper-parameters and self energies."""
    _, meta = _read(converted["ani1ccx"])
    aev = meta["aev"]
    assert meta["elements"] == ["H", "C", "N", "O"]
    assert aev["radial_cutoff"] == pytest.approx(5.2, abs=1e-6)
    assert aev["angular_cutoff"] == pytest.approx(3.5, abs=1e-6)
    assert len(aev["radial_shifts"]) == 16 and aev["radial_eta"] == [16.0]
    assert len(aev["angular_shifts"]) == 4 and len(aev["angle_sections"]) == 8
    assert aev["angular_eta"] == [8.0] and aev["angular_zeta"] == [32.0]
    # sae_linfit.dat of ani-1ccx_8x (Ha)
    np.testing.assert_allclose(
        meta["self_energies"], [-0.5991501324919538, -38.03750806057356, -54.67448347695333, -75.16043537275567],
        rtol=0, atol=1e-12,
    )
