"""Export trained members as one ensemble in openmm-ani's native model format.

Members are stacked along the ensemble axis of every layer (``[K, in, out]``). The
file holds one set of self energies, so members whose self energies differ (e.g.
fitted on different splits) have the difference folded into the bias of their linear
output layer, which adds exactly one value per atom of each element: the exported
ensemble gives the same energies as the members did.
"""

import logging
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from openmm_ani.model import ANIModel
from openmm_ani.files import PathLike
from openmm_ani.formats import LayerSpec, ModelSpec, save, spec_from_model
from openmm_ani.model.networks import IDENTITY

logger = logging.getLogger(__name__)


def stack_specs(specs: Sequence[ModelSpec], name: str, provenance: Optional[Dict[str, Any]] = None) -> ModelSpec:
    """One ensemble :class:`ModelSpec` from member specs of the same architecture.

    Parameters
    ----------
    specs
        Member specs (each may itself hold several members).
    name
        Name of the ensemble.
    provenance
        Free-form provenance stored in the file.

    Raises
    ------
    ValueError
        If the members' elements, AEV parameters or layer shapes differ (the message names which).
    """
    if not specs:
        raise ValueError("no members to stack")
    first = specs[0]
    common = [float(e) for e in first.self_energies]
    layers: Dict[str, List[LayerSpec]] = {}
    for index, spec in enumerate(specs):
        spec.validate()
        if spec.elements != first.elements:
            raise ValueError(f"member {index} has elements {spec.elements}, member 0 has {first.elements}")
        if spec.aev != first.aev:
            raise ValueError(f"member {index} has different AEV parameters from member 0")
        for element in first.elements:
            shapes = [layer.weight.shape[1:] for layer in spec.layers[element]]
            expected = [layer.weight.shape[1:] for layer in first.layers[element]]
            if shapes != expected:
                raise ValueError(f"member {index}, element {element}: layer shapes {shapes} differ from {expected}")
    for e_index, element in enumerate(first.elements):
        stacked: List[LayerSpec] = []
        depth = len(first.layers[element])
        for k in range(depth):
            weights = [spec.layers[element][k].weight for spec in specs]
            biases = []
            for spec in specs:
                bias = np.asarray(spec.layers[element][k].bias, dtype=np.float64)
                if k == depth - 1:
                    if spec.layers[element][k].activation != IDENTITY:
                        raise ValueError(f"element {element}: the output layer is not linear; cannot fold self energies")
                    bias = bias + (float(spec.self_energies[e_index]) - common[e_index])
                biases.append(bias)
            stacked.append(LayerSpec(np.concatenate(weights).astype(np.float32),
                                     np.concatenate(biases).astype(np.float32),
                                     first.layers[element][k].activation))
        layers[element] = stacked
    return ModelSpec(name, list(first.elements), first.aev, common, layers, dict(provenance or {}))


def export_models(models: Sequence[ANIModel], path: PathLike, name: str = "ani-trained",
                  provenance: Optional[Dict[str, Any]] = None) -> ModelSpec:
    """Save trained models as one ensemble file loadable by ``openmm_ani.models.load(path)``
    and ``openmm_ani.ANIPotential(path)``.

    Parameters
    ----------
    models
        Trained :class:`ANIModel` members (self energies in Ha).
    path
        Output ``.npz`` file (written atomically).
    name, provenance
        Stored in the file's metadata.

    Returns
    -------
    ModelSpec
        The saved ensemble.
    """
    spec = stack_specs([spec_from_model(m) for m in models], name,
                       {"generated_by": "openmm_ani.training.export", "members": len(models), **(provenance or {})})
    save(spec, path)
    logger.info("exported %d-member ensemble %r to %s", spec.num_models, name, path)
    return spec
