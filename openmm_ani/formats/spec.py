"""The format-independent description of an ANI model, and building the PyTorch model from it.

:class:`ModelSpec` holds everything that defines a model (elements, AEV hyper-parameters, self
energies, the stacked weights of every element network) as NumPy arrays. The readers of the
native file (:mod:`.native`) and of NeuroChem folders (:mod:`.neurochem`), the registry of bundled
models and the training subpackage all produce or consume it; :func:`build_model` turns it into
an :class:`~openmm_ani.model.ANIModel`.
"""

from numbers import Integral
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

from ..model import AEVComputer, AEVParameters, ANIModel, AtomicNetworks, ElementNetwork, SelfEnergies, StackedLinear

PathLike = Union[str, "os.PathLike[str]"]


def check_member_index(model_index: Any, num_models: int, name: str = "model") -> Optional[int]:
    """Validate a ``model_index`` argument: ``None`` (the ensemble) or a member's integer index.

    Parameters
    ----------
    model_index
        The value given by the user.
    num_models
        Members in the ensemble.
    name
        The model's name, for the message.

    Returns
    -------
    int or None
        The index as a plain ``int``.

    Raises
    ------
    ValueError
        For booleans, non-integers (``1.5``, ``"2"``) and indices outside ``0..num_models-1``.
    """
    if model_index is None:
        return None
    if isinstance(model_index, bool) or not isinstance(model_index, Integral):
        raise ValueError(f"model_index must be None or an integer in 0..{num_models - 1} for {name!r}, got {model_index!r}")
    index = int(model_index)
    if not 0 <= index < num_models:
        raise ValueError(f"model_index must be None or in 0..{num_models - 1} for {name!r}, got {index}")
    return index


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
        if not all(np.isfinite(e) for e in self.self_energies):
            raise ValueError(f"self energies must be finite, got {list(self.self_energies)}")
        self.aev.validate()
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
                for what, array in (("weight", layer.weight), ("bias", layer.bias)):
                    if not np.isfinite(array).all():
                        bad = int((~np.isfinite(array)).sum())
                        raise ValueError(f"element {element} layer {k}: {bad} {what} value(s) are NaN or infinite")
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
    model_index = check_member_index(model_index, spec.num_models, spec.name)
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
    return ModelSpec(
        name or model.name, list(model.elements), model.aev.parameters, model.self_energies.values(), layers,
        dict(provenance or {}),
    )
