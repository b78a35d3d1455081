"""The training loop: epochs of optimiser steps, validation, schedule, checkpoints.

:class:`Trainer` trains one ensemble member (a one-member :class:`ANIModel`). Each epoch
it shuffles the training set with the seed ``seed * 1_000_003 + epoch`` (so an epoch's
batches do not depend on what ran before), takes one AdamW (weights) + SGD (biases) step
per batch, evaluates the validation RMSE, steps ``ReduceLROnPlateau``, keeps the best
parameters and writes a checkpoint atomically. A run interrupted at any point resumes
from the last completed epoch and, on CPU with the same seed, ends with the same
parameters as an uninterrupted run.
"""

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from tqdm.auto import tqdm

from openmm_ani.model import ANIModel

from .build import self_energy_list, set_self_energies
from .checkpoint import PathLike, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import Batch, Dataset
from .device import select_device
from .distributed import DistributedContext, loss_scale, shard_batch
from .losses import EnergyModule, LossTerms, batch_loss, network_energies, reference_residuals
from .optim import OptimizerConfig, Schedule, build_optimizers

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class TrainConfig:
    """Settings of one training run.

    Attributes
    ----------
    max_epochs
        Upper limit on epochs.
    batch_size
        Conformations per optimiser step (the global batch in distributed training).
    force_coefficient
        Weight of the force loss (0 = energies only; TorchANI's example uses 0.1).
    seed
        Seed of the shuffles.
    device
        ``None``/``"auto"`` (CUDA if present) or an explicit device.
    dtype
        ``"float32"`` or ``"float64"``.
    optimizer
        Learning rates, decay, schedule and early stopping.
    progress
        Show tqdm progress bars.
    restore_best
        Load the best validation parameters into the model at the end.
    """

    max_epochs: int = 100
    batch_size: int = 256
    force_coefficient: float = 0.0
    seed: int = 0
    device: Optional[str] = None
    dtype: str = "float32"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    progress: bool = True
    restore_best: bool = True

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["optimizer"] = self.optimizer.to_dict()
        return data


@dataclass
class EpochRecord:
    """One line of the learning curve (energies in Ha)."""

    epoch: int
    train_loss: float
    train_rmse: float
    valid_rmse: float
    valid_mae: float
    lr: float
    seconds: float


Callback = Callable[["Trainer", EpochRecord], None]


class Trainer:
    """Train a one-member :class:`ANIModel`.

    Parameters
    ----------
    model
        The model; moved to the configured device and dtype (self energies stay float64).
    train, valid
        Training and validation data (energies in Ha, forces in Ha/Å).
    config
        Run settings.
    checkpoint
        Path of the checkpoint file; if it exists, :meth:`fit` resumes from it.
    callbacks
        Called as ``callback(trainer, record)`` after each epoch's checkpoint is written.
    distributed
        The data-parallel context (see :mod:`openmm_ani.training.distributed`), or None.
    """

    def __init__(
        self,
        model: ANIModel,
        train: Dataset,
        valid: Dataset,
        config: TrainConfig,
        checkpoint: Optional[PathLike] = None,
        callbacks: Sequence[Callback] = (),
        distributed: Optional[DistributedContext] = None,
    ) -> None:
        if config.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {config.dtype!r}")
        if len(train) == 0 or len(valid) == 0:
            raise ValueError(f"empty data: {len(train)} training and {len(valid)} validation conformations")
        if config.force_coefficient > 0 and train.forces is None:
            raise ValueError("force_coefficient > 0 but the training data has no forces")
        self.config = config
        self.distributed = distributed
        local_rank = distributed.local_rank if distributed is not None else None
        self.device = select_device(config.device, local_rank)
        self.dtype = DTYPES[config.dtype]
        energies = self_energy_list(model)
        self.model = model.to(device=self.device, dtype=self.dtype)
        set_self_energies(self.model, energies)
        self.train_data, self.valid_data = train, valid
        self.checkpoint = checkpoint
        self.callbacks = list(callbacks)
        self.energy_module: torch.nn.Module = EnergyModule(self.model)
        if distributed is not None:
            _own_buffer_memory(self.model)
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            # A rank's shard may lack an element, leaving that element's network without gradient there.
            self.energy_module = torch.nn.parallel.DistributedDataParallel(
                self.energy_module, device_ids=device_ids, find_unused_parameters=True)
        self.optimizers = build_optimizers(self.model, config.optimizer)
        self.schedule = Schedule(self.optimizers, config.optimizer)
        self.history: List[EpochRecord] = []
        self.best_state: Dict[str, torch.Tensor] = self._state_copy()
        self.epoch = 0  # epochs completed
        self.stop_reason: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.distributed is None or self.distributed.is_main

    def _state_copy(self) -> Dict[str, torch.Tensor]:
        return {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                for k, v in self.model.state_dict().items()}

    def step(self, batch: Batch) -> Optional[Tuple[LossTerms, torch.Tensor]]:
        """One optimiser step on ``batch`` (the global batch; sharded here when distributed).

        Returns the loss terms and this rank's energy errors ``[b]`` (Ha), or None if the
        batch had fewer conformations than ranks.
        """
        global_size = int(batch.energies.shape[0])
        local = batch if self.distributed is None else shard_batch(batch, self.distributed)
        if local is None:
            logger.debug("batch of %d conformations skipped: fewer than the %d ranks", global_size,
                         self.distributed.world_size if self.distributed else 1)
            return None
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        terms, error = batch_loss(self.energy_module, self.model, local.atomic_numbers, local.coordinates,
                              local.energies, local.num_atoms, local.forces, self.config.force_coefficient)
        scale = loss_scale(int(local.energies.shape[0]), global_size, self.distributed)
        (terms.total * scale).backward()
        for optimizer in self.optimizers:
            optimizer.step()
        return terms, error

    def evaluate(self, dataset: Dataset, batch_size: Optional[int] = None) -> Dict[str, float]:
        """Energy RMSE and MAE (Ha) of the current model on ``dataset``."""
        squared, absolute, count = 0.0, 0.0, 0
        with torch.no_grad():
            for batch in dataset.batches(batch_size or self.config.batch_size, shuffle=False, dtype=self.dtype,
                                         device=self.device):
                species = self.model.species(batch.atomic_numbers)
                predicted = network_energies(self.model, species, batch.coordinates)[0].to(torch.float64)
                error = predicted - reference_residuals(self.model, species, batch.energies)
                squared += float((error * error).sum())
                absolute += float(error.abs().sum())
                count += int(error.shape[0])
        return {"rmse": math.sqrt(squared / count), "mae": absolute / count}

    def _epoch_batches(self, epoch: int) -> List[Batch]:
        seed = self.config.seed * 1_000_003 + epoch
        return list(self.train_data.batches(self.config.batch_size, shuffle=True, seed=seed, dtype=self.dtype,
                                            device=self.device))

    def state_dict(self) -> Dict[str, Any]:
        """Everything a checkpoint holds."""
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "best_state": self.best_state,
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "schedule": self.schedule.state_dict(),
            "history": [asdict(r) for r in self.history],
            "rng": rng_state(),
            "config": self.config.to_dict(),
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (e.g. from a checkpoint)."""
        self.model.load_state_dict(state["model"])
        self.best_state = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in state["best_state"].items()}
        for optimizer, s in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(s)
        self.schedule.load_state_dict(state["schedule"])
        self.history = [EpochRecord(**r) for r in state["history"]]
        self.epoch = int(state["epoch"])
        self.stop_reason = state.get("stop_reason")
        set_rng_state(state["rng"])

    def save(self) -> None:
        """Write the checkpoint (main rank only)."""
        if self.checkpoint is not None and self.is_main:
            save_checkpoint(self.state_dict(), self.checkpoint)

    def fit(self, resume: bool = True) -> List[EpochRecord]:
        """Train until ``max_epochs``, early stopping or a minimum learning rate.

        Parameters
        ----------
        resume
            Continue from the checkpoint file when it exists.

        Returns
        -------
        list of EpochRecord
            The learning curve (all epochs, including those before a resume).
        """
        if resume and self.checkpoint is not None and os.path.isfile(self.checkpoint):
            state = load_checkpoint(self.checkpoint, map_location=self.device)
            try:
                self.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError, TypeError) as error:  # shapes or layout of another model
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ValueError(f"{self.checkpoint} does not fit this model and optimiser ({first[:200]}); "
                                 "start afresh with a new work directory (or --overwrite)") from None
            logger.info("resumed from %s after epoch %d", self.checkpoint, self.epoch)
        while self.epoch < self.config.max_epochs and self.stop_reason is None:
            self._run_epoch()
        if self.stop_reason:
            logger.info("stopped: %s", self.stop_reason)
        if self.config.restore_best:
            self.model.load_state_dict(self.best_state)
        return self.history

    def _run_epoch(self) -> None:
        start = time.perf_counter()
        epoch = self.epoch + 1
        batches = self._epoch_batches(epoch)
        total_loss, weight, squared = 0.0, 0, 0.0
        bar = tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=not (self.config.progress and self.is_main))
        for batch in bar:
            result = self.step(batch)
            if result is None:
                continue
            terms, error = result
            size = int(error.shape[0])
            total_loss += float(terms.total.detach()) * size
            squared += float((error * error).sum())
            weight += size
            bar.set_postfix(loss=f"{float(terms.total.detach()):.3e}")
        valid = self.evaluate(self.valid_data)
        improved = self.schedule.step(valid["rmse"], epoch)
        if improved:
            self.best_state = self._state_copy()
        self.epoch = epoch
        record = EpochRecord(epoch, total_loss / max(weight, 1), math.sqrt(squared / max(weight, 1)),
                             valid["rmse"], valid["mae"], self.schedule.learning_rate(), time.perf_counter() - start)
        self.history.append(record)
        self.stop_reason = self.schedule.should_stop(epoch)
        self.save()
        if self.is_main:
            logger.info("epoch %d: loss %.3e, valid RMSE %.4g Ha, lr %.3g%s", epoch, record.train_loss,
                        record.valid_rmse, record.lr, " (best)" if improved else "")
        for callback in self.callbacks:
            callback(self, record)


def _own_buffer_memory(model: torch.nn.Module) -> None:
    """Give every buffer its own memory (some AEV constants are stride-0 views, which DDP cannot broadcast)."""
    for module in model.modules():
        for name, buffer in list(module.named_buffers(recurse=False)):
            setattr(module, name, buffer.clone(memory_format=torch.contiguous_format))


def copy_model(model: ANIModel) -> ANIModel:
    """A deep copy of a model (parameters and self energies)."""
    return copy.deepcopy(model)
