"""openmm-ani's native model format and the construction of :class:`~openmm_ani.model.ANIModel`.

A model file is a NumPy ``.npz`` archive (no pickle) holding

* ``metadata``: a JSON string with ``format`` (``"openmm-ani-model"``), ``version``, ``name``,
  ``elements``, the AEV hyper-parameters (Å), ``self_energies`` (Ha per element),
  per-element layer ``activations`` (NeuroChem codes) and free-form ``provenance``;
* ``<element>.<layer>.weight``: ``[M, in, out]`` float32 weights (``y = x @ W + b``);
* ``<element>.<layer>.bias``: ``[M, out]`` float32 biases.

``M`` is the number of ensemble members. The NeuroChem reader, the bundled models and
the training subpackage all produce :class:`ModelSpec` and store it in this format.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

from .aev import AEVComputer, AEVParameters
from .model import ANIModel
from .networks import AtomicNetworks, ElementNetwork, StackedLinear
from .shifter import SelfEnergies

FORMAT_NAME = "openmm-ani-model"
FORMAT_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class LayerSpec:
    """One dense layer of one element's networks, all ensemble members stacked.

    Attributes
    ----------
    weight
        ``[M, in, out]`` float32 array.
    bias
        ``[M, out]`` float32 array.
    activation
        NeuroChem activation code (5 Gaussian, 6 identity, 9 CELU).
    """

    weight: np.ndarray
    bias: np.ndarray
    activation: int


@dataclass
class ModelSpec:
    """Everything that defines an ANI model, independent of PyTorch.

    Attributes
    ----------
    name
        Model name.
    elements
        Element symbols in the model's order.
    aev
        AEV hyper-parameters.
    self_energies
        Self-atomic energy of each element, Ha.
    layers
        For each element symbol, its layers from input to output.
    provenance
        Where the model came from (free-form, stored as JSON).
    """

    name: str
    elements: List[str]
    aev: AEVParameters
    self_energies: List[float]
    layers: Dict[str, List[LayerSpec]]
    provenance: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_models(self) -> int:
        """Number of ensemble members."""
        return int(self.layers[self.elements[0]][0].weight.shape[0])

    def validate(self) -> None:
        """Raise ``ValueError`` if the parts do not fit together."""
        if len(self.self_energies) != len(self.elements):
            raise ValueError(f"{len(self.self_energies)} self energies for {len(self.elements)} elements")
        if self.aev.num_species != len(self.elements):
            raise ValueError(f"AEV built for {self.aev.num_species} elements, model has {len(self.elements)}")
        for element in self.elements:
            if element not in self.layers:
                raise ValueError(f"no network for element {element}")
            width = self.aev.length
            for k, layer in enumerate(self.layers[element]):
                if layer.weight.ndim != 3 or layer.weight.shape[1] != width:
                    raise ValueError(
                        f"element {element} layer {k}: weight shape {layer.weight.shape} does not take input width {width}"
                    )
                if layer.bias.shape != (layer.weight.shape[0], layer.weight.shape[2]):
                    raise ValueError(f"element {element} layer {k}: bias shape {layer.bias.shape} does not fit")
                if layer.weight.shape[0] != self.num_models:
                    raise ValueError(f"element {element} layer {k}: {layer.weight.shape[0]} members, expected {self.num_models}")
                width = layer.weight.shape[2]
            if width != 1:
                raise ValueError(f"element {element}: the last layer has {width} outputs, expected 1")


def build_model(spec: ModelSpec, model_index: Optional[int] = None, dtype: torch.dtype = torch.float64) -> ANIModel:
    """Build an :class:`ANIModel` from a :class:`ModelSpec`.

    Parameters
    ----------
    spec
        The model definition.
    model_index
        ``None`` for the whole ensemble, or the index of one member.
    dtype
        ``torch.float64`` or ``torch.float32``.
    """
    spec.validate()
    m = spec.num_models
    if model_index is not None and not 0 <= model_index < m:
        raise ValueError(f"model_index must be None or in 0..{m - 1} for {spec.name!r}, got {model_index}")
    members = slice(None) if model_index is None else slice(model_index, model_index + 1)
    networks = []
    for element in spec.elements:
        layers = [
            StackedLinear(
                torch.from_numpy(np.ascontiguousarray(layer.weight[members])).to(dtype),
                torch.from_numpy(np.ascontiguousarray(layer.bias[members])).to(dtype),
                layer.activation,
                shared_input=(k == 0),
            )
            for k, layer in enumerate(spec.layers[element])
        ]
        networks.append(ElementNetwork(layers))
    model = ANIModel(
        list(spec.elements), AEVComputer(spec.aev), AtomicNetworks(networks), SelfEnergies(spec.self_energies),
        name=spec.name if model_index is None else f"{spec.name}[{model_index}]",
    )
    return model.to(dtype)


def spec_from_model(model: ANIModel, name: Optional[str] = None, provenance: Optional[Dict[str, Any]] = None) -> ModelSpec:
    """The :class:`ModelSpec` of an :class:`ANIModel` (weights stored as float32)."""
    layers: Dict[str, List[LayerSpec]] = {}
    for element, network in zip(model.elements, model.networks.networks):
        layers[element] = [
            LayerSpec(
                layer.stacked_weight().detach().cpu().to(torch.float32).numpy().copy(),
                layer.stacked_bias().detach().cpu().to(torch.float32).numpy().copy(),
                int(layer.activation),
            )
            for layer in network.layers
        ]
    energies = model.self_energies.energies[:-1].detach().cpu().tolist()
    return ModelSpec(
        name or model.name, list(model.elements), model.aev.parameters, [float(e) for e in energies], layers,
        dict(provenance or {}),
    )


def save(spec: ModelSpec, path: PathLike) -> None:
    """Write ``spec`` to ``path`` in the native ``.npz`` format (atomically)."""
    spec.validate()
    p = spec.aev
    metadata = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": spec.name,
        "elements": list(spec.elements),
        "aev": {
            "radial_cutoff": p.radial_cutoff, "angular_cutoff": p.angular_cutoff,
            "radial_eta": list(p.radial_eta), "radial_shifts": list(p.radial_shifts),
            "angular_eta": list(p.angular_eta), "angular_zeta": list(p.angular_zeta),
            "angular_shifts": list(p.angular_shifts), "angle_sections": list(p.angle_sections),
        },
        "self_energies": [float(e) for e in spec.self_energies],
        "activations": {e: [int(layer.activation) for layer in spec.layers[e]] for e in spec.elements},
        "provenance": spec.provenance,
    }
    arrays: Dict[str, np.ndarray] = {"metadata": np.array(json.dumps(metadata, sort_keys=True))}
    for element in spec.elements:
        for k, layer in enumerate(spec.layers[element]):
            arrays[f"{element}.{k}.weight"] = np.asarray(layer.weight, dtype=np.float32)
            arrays[f"{element}.{k}.bias"] = np.asarray(layer.bias, dtype=np.float32)
    path = os.fspath(path)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_spec(path: PathLike) -> ModelSpec:
    """Read a native model file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not an openmm-ani model file, or a key is missing (the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several types for a file that is not an archive
        raise ValueError(f"{path} is not an openmm-ani model file (.npz): {error}") from error
    with archive:
        if "metadata" not in archive.files:
            raise ValueError(f"{path} is not an openmm-ani model file: key 'metadata' is missing")
        metadata = json.loads(str(archive["metadata"]))
        if metadata.get("format") != FORMAT_NAME:
            raise ValueError(f"{path} is not an openmm-ani model file (format {metadata.get('format')!r})")
        if int(metadata.get("version", -1)) > FORMAT_VERSION:
            raise ValueError(f"{path} has format version {metadata['version']}, newer than {FORMAT_VERSION}")
        try:
            a = metadata["aev"]
            elements = list(metadata["elements"])
            aev = AEVParameters(
                float(a["radial_cutoff"]), float(a["angular_cutoff"]),
                tuple(a["radial_eta"]), tuple(a["radial_shifts"]), tuple(a["angular_eta"]),
                tuple(a["angular_zeta"]), tuple(a["angular_shifts"]), tuple(a["angle_sections"]), len(elements),
            )
            layers: Dict[str, List[LayerSpec]] = {}
            for element in elements:
                codes = metadata["activations"][element]
                layers[element] = []
                for k, code in enumerate(codes):
                    for key in (f"{element}.{k}.weight", f"{element}.{k}.bias"):
                        if key not in archive.files:
                            raise ValueError(f"{path}: key {key!r} is missing")
                    layers[element].append(
                        LayerSpec(archive[f"{element}.{k}.weight"], archive[f"{element}.{k}.bias"], int(code))
                    )
            spec = ModelSpec(
                str(metadata["name"]), elements, aev, [float(e) for e in metadata["self_energies"]], layers,
                dict(metadata.get("provenance", {})),
            )
        except KeyError as error:
            raise ValueError(f"{path}: metadata key {error} is missing") from error
    spec.validate()
    return spec
