"""Random initialisation of a trainable one-member :class:`~openmm_ani.model.ANIModel`.

A trainable model is an ordinary ``ANIModel`` with one ensemble member; its parameters
are the weights and biases of the stacked layers of :mod:`openmm_ani.networks`.
Weights are drawn from a Kaiming (He) normal distribution with the gain of a linear unit
(``std = 1/sqrt(fan_in)``), biases start at zero, as in TorchANI's training example.
"""

import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from openmm_ani.model import ANIModel
from openmm_ani.formats import LayerSpec, ModelSpec, build_model

from .config import ModelConfig


def random_spec(config: ModelConfig, seed: int, self_energies: Optional[Sequence[float]] = None,
                name: str = "ani-trained") -> ModelSpec:
    """A one-member :class:`ModelSpec` with random weights.

    Parameters
    ----------
    config
        The architecture.
    seed
        Seed of the weight draw (the same seed gives the same weights).
    self_energies
        Self energy of each element in ``config.elements`` order, Ha (default zeros).
    name
        Model name.
    """
    config.validate()
    generator = np.random.default_rng(seed)
    layers: Dict[str, List[LayerSpec]] = {}
    for element in config.elements:
        sizes = config.layer_sizes(element)
        codes = config.activations(element)
        layers[element] = []
        for k in range(len(sizes) - 1):
            fan_in, fan_out = sizes[k], sizes[k + 1]
            weight = generator.normal(0.0, 1.0 / math.sqrt(fan_in), size=(1, fan_in, fan_out)).astype(np.float32)
            layers[element].append(LayerSpec(weight, np.zeros((1, fan_out), dtype=np.float32), codes[k]))
    energies = [0.0] * len(config.elements) if self_energies is None else [float(e) for e in self_energies]
    if len(energies) != len(config.elements):
        raise ValueError(f"{len(energies)} self energies given for elements {config.elements}")
    return ModelSpec(name, list(config.elements), config.aev, energies, layers,
                     {"generated_by": "openmm_ani.training.build.random_spec", "seed": int(seed)})


def build_random_model(config: ModelConfig, seed: int, self_energies: Optional[Sequence[float]] = None,
                       dtype: torch.dtype = torch.float32, name: str = "ani-trained") -> ANIModel:
    """A trainable one-member :class:`ANIModel` with random weights (see :func:`random_spec`)."""
    model = build_model(random_spec(config, seed, self_energies, name), dtype=dtype)
    set_self_energies(model, self_energy_list(model) if self_energies is None else self_energies)
    return model


def set_self_energies(model: ANIModel, energies: Sequence[float]) -> None:
    """Replace the self energies (Ha, in ``model.elements`` order) of a model in place.

    The buffer is kept in float64 whatever the model's dtype, so that a float32 model
    does not round self energies of tens of Ha to float32.
    """
    values = [float(e) for e in energies]
    if len(values) != len(model.elements):
        raise ValueError(f"{len(values)} self energies given for elements {model.elements}")
    model.self_energies.set_values(values)


def self_energy_list(model: ANIModel) -> List[float]:
    """The model's self energies (Ha) in ``model.elements`` order."""
    return model.self_energies.values()


def layers_of(model: ANIModel) -> List[List[torch.nn.Module]]:
    """``result[k]`` lists layer ``k`` of every element network (input layer first)."""
    depth = {len(network.layers) for network in model.networks.networks}
    if len(depth) != 1:
        raise ValueError(f"element networks have different depths {sorted(depth)}")
    return [[network.layers[k] for network in model.networks.networks] for k in range(depth.pop())]
