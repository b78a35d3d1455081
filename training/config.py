"""Architecture configuration of a trainable ANI model.

A :class:`ModelConfig` names the elements, the AEV hyper-parameters (Å) and the hidden
layer widths of each element's network; every hidden layer uses CELU with
``alpha = 0.1`` (NeuroChem activation code 9) and the output layer is linear. The
default, :func:`ani1x_config`, is the ANI-1x architecture (Smith et al., J. Chem. Phys.
148, 241733 (2018)); :func:`small_config` and :func:`tiny_config` are reduced versions for
demonstrations and tests. Configurations round-trip through JSON (:meth:`ModelConfig.to_dict`).
"""

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence

from openmm_ani.model.aev_parameters import AEVParameters
from openmm_ani.formats import ModelSpec
from openmm_ani.model.networks import CELU, IDENTITY

#: Elements of ANI-1x and ANI-1ccx, in their order.
CHNO: List[str] = ["H", "C", "N", "O"]


@dataclass
class ModelConfig:
    """Architecture of an ANI model.

    Attributes
    ----------
    elements
        Element symbols in the model's order.
    aev
        AEV hyper-parameters (lengths in Å).
    hidden
        Hidden-layer widths of each element's network, input side first (the output
        layer of width 1 is implied).
    activation
        NeuroChem activation code of the hidden layers (9 = CELU, alpha 0.1).
    """

    elements: List[str]
    aev: AEVParameters
    hidden: Dict[str, List[int]]
    activation: int = CELU

    def validate(self) -> None:
        """Raise ``ValueError`` if the configuration is inconsistent (naming the part)."""
        if len(set(self.elements)) != len(self.elements) or not self.elements:
            raise ValueError(f"elements must be a non-empty list of distinct symbols, got {self.elements}")
        if self.aev.num_species != len(self.elements):
            raise ValueError(f"AEV built for {self.aev.num_species} elements, config has {len(self.elements)}")
        for element in self.elements:
            if element not in self.hidden:
                raise ValueError(f"no hidden-layer widths for element {element!r}")
            widths = self.hidden[element]
            if not widths or any(int(w) < 1 for w in widths):
                raise ValueError(f"element {element!r}: hidden widths must be positive integers, got {widths}")

    def layer_sizes(self, element: str) -> List[int]:
        """Widths ``[aev_length, hidden..., 1]`` of one element's network."""
        return [self.aev.length] + [int(w) for w in self.hidden[element]] + [1]

    def activations(self, element: str) -> List[int]:
        """NeuroChem activation codes of one element's layers (hidden ..., identity)."""
        return [self.activation] * len(self.hidden[element]) + [IDENTITY]

    @property
    def num_layers(self) -> int:
        """Number of dense layers per element network (the same for all elements)."""
        counts = {len(self.hidden[e]) + 1 for e in self.elements}
        if len(counts) != 1:
            raise ValueError(f"element networks have different depths {sorted(counts)}")
        return counts.pop()

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "elements": list(self.elements),
            "aev": self.aev.to_dict(),
            "hidden": {e: [int(w) for w in self.hidden[e]] for e in self.elements},
            "activation": int(self.activation),
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; a missing key raises ``ValueError`` naming it."""
        try:
            elements = list(data["elements"])
            aev = AEVParameters.from_dict(data["aev"], len(elements))
            config = ModelConfig(elements, aev, {e: list(w) for e, w in data["hidden"].items()},
                                 int(data.get("activation", CELU)))
        except KeyError as error:
            raise ValueError(f"model configuration: key {error} is missing") from error
        config.validate()
        return config


def make_aev(
    elements: Sequence[str], radial_cutoff: float, angular_cutoff: float, num_radial: int,
    num_angular_shifts: int, num_sections: int, radial_eta: float = 16.0, angular_eta: float = 8.0,
    zeta: float = 32.0,
) -> AEVParameters:
    """AEV parameters laid out as NeuroChem's ANI-1x files do.

    Radial shifts are ``0.9 + i (Rcr - 0.9) / num_radial`` Å, angular distance shifts
    ``0.9 + i (Rca - 0.9) / num_angular_shifts`` Å, and the angle sections
    ``(2 i + 1) pi / (2 num_sections)`` rad.
    """
    radial = tuple(0.9 + i * (radial_cutoff - 0.9) / num_radial for i in range(num_radial))
    angular = tuple(0.9 + i * (angular_cutoff - 0.9) / num_angular_shifts for i in range(num_angular_shifts))
    sections = tuple((2 * i + 1) * math.pi / (2 * num_sections) for i in range(num_sections))
    return AEVParameters(float(radial_cutoff), float(angular_cutoff), (float(radial_eta),), radial, (float(angular_eta),),
                         (float(zeta),), angular, sections, len(elements))


def ani1x_config() -> ModelConfig:
    """The ANI-1x architecture: AEV length 384, H 160-128-96, C 144-112-96, N/O 128-112-96, CELU."""
    aev = make_aev(CHNO, 5.2, 3.5, 16, 4, 8)
    hidden = {"H": [160, 128, 96], "C": [144, 112, 96], "N": [128, 112, 96], "O": [128, 112, 96]}
    return ModelConfig(list(CHNO), aev, hidden)


def small_config(elements: Sequence[str] = CHNO) -> ModelConfig:
    """A reduced ANI-1x-like architecture for demonstrations: AEV length 192, 64-48-32 networks."""
    aev = make_aev(elements, 5.2, 3.5, 8, 4, 4)
    return ModelConfig(list(elements), aev, {e: [64, 48, 32] for e in elements})


def tiny_config(elements: Sequence[str] = CHNO) -> ModelConfig:
    """A very small architecture for tests: AEV length 56 (for CHNO), 16-12-8 networks (four layers)."""
    aev = make_aev(elements, 5.2, 3.5, 4, 2, 2)
    return ModelConfig(list(elements), aev, {e: [16, 12, 8] for e in elements})


#: Named configurations accepted by :func:`get_config`.
NAMED_CONFIGS = {"ani1x": ani1x_config, "small": small_config, "tiny": tiny_config}


def get_config(name_or_path: str) -> ModelConfig:
    """A named configuration (``ani1x``, ``small``, ``tiny``) or one read from a JSON file."""
    if name_or_path in NAMED_CONFIGS:
        return NAMED_CONFIGS[name_or_path]()
    if os.path.isfile(name_or_path):
        with open(name_or_path) as handle:
            try:
                data = json.load(handle)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ValueError(f"{name_or_path}: not a JSON model configuration ({error})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{name_or_path}: a model configuration is a JSON object, got {type(data).__name__}")
        try:
            return ModelConfig.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{name_or_path}: {error}") from None
    raise ValueError(f"unknown model configuration {name_or_path!r}: not one of {sorted(NAMED_CONFIGS)} or a JSON file")


def config_from_spec(spec: ModelSpec) -> ModelConfig:
    """The architecture of an existing model (e.g. the published ANI-1x)."""
    hidden = {e: [int(layer.weight.shape[2]) for layer in spec.layers[e][:-1]] for e in spec.elements}
    activation = int(spec.layers[spec.elements[0]][0].activation)
    return ModelConfig(list(spec.elements), spec.aev, hidden, activation)
