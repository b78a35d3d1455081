"""Ensembles of K members trained on K different splits (cross-validation folds).

The data are cut once (seeded) into K folds; member ``k`` validates on fold ``k`` and
trains on the others, as ANI-1x's 8-fold ensemble. With ``K = 1`` a 90/10 split is used.
Members are independent, so they can train in one process (:func:`train_ensemble`) or as
K separate jobs (``openmm-ani train pretrain --member-index k``) whose member files are
combined afterwards (:func:`combine_member_files`).
"""

import logging
import os
from typing import Callable, List, Optional, Sequence, Tuple

from openmm_ani.model import ANIModel
from openmm_ani.formats import ModelSpec, load_spec, save
from openmm_ani.files import PathLike

from .data import Dataset, concatenate
from .distributed import DistributedContext
from .export import stack_specs
from .trainer import Callback, EpochRecord, TrainConfig, Trainer

logger = logging.getLogger(__name__)


def member_split(dataset: Dataset, num_members: int, member: int, seed: int) -> Tuple[Dataset, Dataset]:
    """Training and validation data of member ``member`` of ``num_members`` (deterministic given ``seed``)."""
    if not 0 <= member < num_members:
        raise ValueError(f"member index must be in 0..{num_members - 1}, got {member}")
    if num_members == 1:
        train, valid = dataset.split([0.9, 0.1], seed=seed)
        return train, valid
    folds = dataset.split([1.0 / num_members] * num_members, seed=seed)
    train = concatenate([f for i, f in enumerate(folds) if i != member])
    return train, folds[member]


def member_checkpoint(directory: PathLike, member: int) -> str:
    """Checkpoint path of member ``member`` in a work directory."""
    return os.path.join(os.fspath(directory), f"member_{member}.ckpt")


def member_model_file(directory: PathLike, member: int) -> str:
    """Model file of trained member ``member`` in a work directory."""
    return os.path.join(os.fspath(directory), f"member_{member}.npz")


def train_ensemble(
    make_model: Callable[[int], ANIModel],
    dataset: Dataset,
    num_members: int,
    config: TrainConfig,
    split_seed: int = 0,
    members: Optional[Sequence[int]] = None,
    work_dir: Optional[PathLike] = None,
    callbacks: Sequence[Callback] = (),
    distributed: Optional[DistributedContext] = None,
) -> Tuple[List[ANIModel], List[List[EpochRecord]]]:
    """Train ensemble members, each on its own fold split.

    Parameters
    ----------
    make_model
        ``make_model(k)`` returns the initial model of member ``k`` (random or pretrained).
    dataset
        All labelled data (Ha, Ha/Å).
    num_members
        K, the number of folds.
    config
        Run settings; member ``k`` uses ``seed = config.seed + k``.
    split_seed
        Seed of the fold split.
    members
        Which members to train (default all) — one index for a K-independent-jobs run.
    work_dir
        Directory of per-member checkpoints (resumed when present) and member model files.
    callbacks, distributed
        Passed to :class:`Trainer`.

    Returns
    -------
    (models, histories)
        The trained members (best validation parameters) and their learning curves.
    """
    from dataclasses import replace

    from openmm_ani.formats import spec_from_model

    chosen = list(range(num_members)) if members is None else list(members)
    models, histories = [], []
    for k in chosen:
        train, valid = member_split(dataset, num_members, k, split_seed)
        logger.info("member %d/%d: %d training, %d validation conformations", k, num_members, len(train), len(valid))
        checkpoint = member_checkpoint(work_dir, k) if work_dir is not None else None
        trainer = Trainer(make_model(k), train, valid, replace(config, seed=config.seed + k), checkpoint, callbacks,
                          distributed)
        histories.append(trainer.fit())
        models.append(trainer.model)
        if work_dir is not None and trainer.is_main:
            save(spec_from_model(trainer.model, provenance={"member": k, "of": num_members}),
                 member_model_file(work_dir, k))
    return models, histories


def combine_member_files(paths: Sequence[PathLike], name: str = "ani-trained") -> ModelSpec:
    """Stack member model files (from independent jobs) into one ensemble spec.

    Raises
    ------
    FileNotFoundError
        Naming the first missing member file.
    """
    for path in paths:
        if not os.path.isfile(os.fspath(path)):
            raise FileNotFoundError(f"member model file not found: {os.fspath(path)} (has that member finished?)")
    return stack_specs([load_spec(p) for p in paths], name, {"members": [os.path.basename(os.fspath(p)) for p in paths]})
