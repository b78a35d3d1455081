"""Transfer learning from a pretrained ensemble to a new level of theory (the ANI-1ccx recipe).

Each member of the pretrained ensemble (a native model file, a NeuroChem folder or a
registered name such as ``"ani1x"``) becomes a trainable one-member model, then

1. its self energies are refitted by least squares to the new level of theory
   (:func:`openmm_ani.training.selfenergy.fit_self_energies`),
2. the chosen layers are frozen — default ``(0, 2)``, NeuroChem's ``freezelayer=0,2`` of
   the ANI-1ccx record: the first and third of four layers stay fixed,
3. it is trained on energies only with a lower learning rate (:func:`transfer_train_config`),
   optionally with discriminative fine-tuning: per-layer learning rates falling by a factor
   toward the input (Zaverkin et al. 2023).
"""

import logging
from typing import Dict, List, Optional, Sequence, Union

import torch

from openmm_ani.model import ANIModel
from openmm_ani.files import PathLike
from openmm_ani.formats import ModelSpec, build_model
from openmm_ani.models import load_model_spec

from .build import set_self_energies
from .data import Dataset
from .optim import OptimizerConfig, freeze_layers
from .trainer import TrainConfig

logger = logging.getLogger(__name__)

#: The ANI-1ccx record's ``freezelayer=0,2``.
DEFAULT_FROZEN_LAYERS = (0, 2)


def refit_self_energies(elements: Sequence[str], dataset: Dataset,
                        fixed: Optional[Dict[str, float]] = None) -> List[float]:
    """Least-squares self energies (Ha, in ``elements`` order) at the data set's level of theory.

    Elements absent from the data keep a value only if given in ``fixed``; otherwise the
    fit decides (see :func:`~openmm_ani.training.selfenergy.fit_self_energies`).
    """
    from .selfenergy import fit_self_energies

    fitted = fit_self_energies(dataset, list(elements), fixed=fixed)
    return [float(fitted[e]) for e in elements]


def pretrained_spec(source: Union[str, PathLike, ModelSpec]) -> ModelSpec:
    """The :class:`ModelSpec` of a pretrained ensemble: a spec, a registered name, a model file or a NeuroChem folder."""
    if isinstance(source, ModelSpec):
        return source
    return load_model_spec(source)


def transfer_member(
    source: Union[str, PathLike, ModelSpec],
    member: int,
    dataset: Dataset,
    frozen_layers: Sequence[int] = DEFAULT_FROZEN_LAYERS,
    self_energies: Optional[Sequence[float]] = None,
    dtype: torch.dtype = torch.float32,
) -> ANIModel:
    """A trainable copy of one pretrained member, ready for transfer learning.

    Parameters
    ----------
    source
        The pretrained ensemble.
    member
        Index of the member.
    dataset
        Data at the new level of theory (Ha); its self energies are fitted unless ``self_energies`` is given.
    frozen_layers
        Layer indices (0 = input layer) fixed during training.
    self_energies
        Already-fitted self energies (Ha, in the model's element order), to fit once for all members.
    dtype
        Training precision.
    """
    spec = pretrained_spec(source)
    model = build_model(spec, model_index=member, dtype=dtype)
    energies = list(self_energies) if self_energies is not None else refit_self_energies(spec.elements, dataset)
    set_self_energies(model, energies)
    freeze_layers(model, frozen_layers)
    logger.info("member %d of %s: self energies refitted %s; layers %s frozen", member, spec.name,
                dict(zip(spec.elements, energies)), list(frozen_layers))
    return model


def transfer_train_config(
    max_epochs: int = 200,
    batch_size: int = 64,
    lr: float = 1e-4,
    layer_lr_factor: Optional[float] = None,
    seed: int = 0,
    **kwargs: object,
) -> TrainConfig:
    """Training settings for transfer learning: energies only, a lower learning rate (1e-4 vs 1e-3).

    ``layer_lr_factor`` switches on discriminative fine-tuning (e.g. 0.5: each layer
    nearer the input learns at half the rate of the next). Other keyword arguments go
    to :class:`TrainConfig`.
    """
    optimizer = OptimizerConfig(lr=lr, bias_lr=lr, layer_lr_factor=layer_lr_factor)
    return TrainConfig(max_epochs=max_epochs, batch_size=batch_size, force_coefficient=0.0, seed=seed,
                       optimizer=optimizer, **kwargs)  # type: ignore[arg-type]
