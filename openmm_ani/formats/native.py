"""openmm-ani's native model file: one NumPy ``.npz`` archive (no pickle).

The archive holds

* ``metadata``: a JSON string with ``format`` (``"openmm-ani-model"``), ``version``, ``name``,
  ``elements``, the AEV hyper-parameters (Å, see
  :meth:`~openmm_ani.model.AEVParameters.to_dict`), ``self_energies`` (Ha per element),
  per-element layer ``activations`` (NeuroChem codes) and free-form ``provenance``;
* ``<element>.<layer>.weight``: ``[M, in, out]`` float32 weights (``y = x @ W + b``);
* ``<element>.<layer>.bias``: ``[M, out]`` float32 biases.

``M`` is the number of ensemble members.
"""

import json
import os
import zipfile
from typing import Dict, List

import numpy as np

from ..files import atomic_write
from ..model import AEVParameters
from .spec import LayerSpec, ModelSpec, PathLike

FORMAT_NAME = "openmm-ani-model"
FORMAT_VERSION = 1


def save(spec: ModelSpec, path: PathLike) -> None:
    """Write ``spec`` to ``path`` in the native ``.npz`` format (atomically).

    Raises
    ------
    ValueError
        If the spec is inconsistent or holds non-finite numbers.
    FileNotFoundError, PermissionError
        If the folder of ``path`` does not exist or cannot be written.
    """
    spec.validate()
    metadata = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": spec.name,
        "elements": list(spec.elements),
        "aev": spec.aev.to_dict(),
        "self_energies": [float(e) for e in spec.self_energies],
        "activations": {e: [int(layer.activation) for layer in spec.layers[e]] for e in spec.elements},
        "provenance": spec.provenance,
    }
    arrays: Dict[str, np.ndarray] = {"metadata": np.array(json.dumps(metadata, sort_keys=True))}
    for element in spec.elements:
        for k, layer in enumerate(spec.layers[element]):
            arrays[f"{element}.{k}.weight"] = np.asarray(layer.weight, dtype=np.float32)
            arrays[f"{element}.{k}.bias"] = np.asarray(layer.bias, dtype=np.float32)
    with atomic_write(path, "wb") as stream:
        np.savez_compressed(stream, **arrays)


def load_spec(path: PathLike) -> ModelSpec:
    """Read a native model file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        One line naming the file and what is wrong: not an ``.npz`` archive, a corrupt
        archive (bad CRC), metadata that is not JSON, a missing key, a newer format version,
        or weights and hyper-parameters that cannot define a model (NaN weights, a negative
        cutoff...).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not an openmm-ani model file (.npz): not a zip archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable openmm-ani model file (.npz): {error}") from None
    if "metadata" not in arrays:
        raise ValueError(f"{path} is not an openmm-ani model file: key 'metadata' is missing")
    try:
        metadata = json.loads(str(arrays["metadata"]))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the metadata is not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise ValueError(f"{path} is not an openmm-ani model file (format {found!r})")
    if int(metadata.get("version", -1)) > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {metadata['version']}, newer than {FORMAT_VERSION}")
    try:
        elements = [str(e) for e in metadata["elements"]]
        aev = AEVParameters.from_dict(metadata["aev"], len(elements))
        layers: Dict[str, List[LayerSpec]] = {}
        for element in elements:
            layers[element] = []
            for k, code in enumerate(metadata["activations"][element]):
                for key in (f"{element}.{k}.weight", f"{element}.{k}.bias"):
                    if key not in arrays:
                        raise ValueError(f"array {key!r} is missing")
                layers[element].append(LayerSpec(arrays[f"{element}.{k}.weight"], arrays[f"{element}.{k}.bias"], int(code)))
        spec = ModelSpec(
            str(metadata["name"]), elements, aev, [float(e) for e in metadata["self_energies"]], layers,
            dict(metadata.get("provenance", {})),
        )
        spec.validate()
    except KeyError as error:
        raise ValueError(f"{path}: metadata key {error} is missing") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    return spec
