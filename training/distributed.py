"""Data-parallel training with ``torch.distributed`` (one process per GPU, launched by ``torchrun``).

Every process holds the same model; each global batch (the same on every rank, cut by the
same seeded shuffle) is split by conformation, ``rank::world_size``, and
``DistributedDataParallel`` averages gradients. The per-rank loss is scaled by
``local_size * world_size / global_size``, so the averaged gradient is exactly the
gradient of the loss on the whole batch, as single-process training computes it.
On CPU the ``gloo`` backend is used, on CUDA ``nccl``.

Launch, e.g. with two GPUs::

    torchrun --nproc_per_node=2 -m openmm_ani.cli train pretrain --distributed ...
"""

import logging
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

from .data import Batch

logger = logging.getLogger(__name__)


@dataclass
class DistributedContext:
    """This process's place in a data-parallel job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes checkpoints."""
        return self.rank == 0


def init_from_env(backend: Optional[str] = None) -> DistributedContext:
    """Join the process group described by ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``, ...).

    Parameters
    ----------
    backend
        ``"gloo"``, ``"nccl"`` or None (nccl when CUDA is available, gloo otherwise).

    Raises
    ------
    ValueError
        If the environment variables of a ``torchrun`` launch are missing.
    """
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(f"distributed training needs a torchrun launch; environment variables {missing} are not set")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    context = DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    logger.info("rank %d of %d (backend %s)", context.rank, context.world_size, backend)
    return context


def shard_batch(batch: Batch, context: DistributedContext) -> Optional[Batch]:
    """This rank's conformations ``rank::world_size`` of a global batch (None if it has none)."""
    size = int(batch.energies.shape[0])
    if size < context.world_size:
        return None
    index = torch.arange(context.rank, size, context.world_size, device=batch.energies.device)
    width = int(batch.num_atoms.index_select(0, index).max())
    return Batch(
        batch.atomic_numbers.index_select(0, index)[:, :width],
        batch.coordinates.index_select(0, index)[:, :width],
        batch.energies.index_select(0, index),
        None if batch.forces is None else batch.forces.index_select(0, index)[:, :width],
        batch.num_atoms.index_select(0, index),
    )


def loss_scale(local_size: int, global_size: int, context: Optional[DistributedContext]) -> float:
    """Factor that makes DDP's gradient average equal the whole-batch gradient."""
    if context is None:
        return 1.0
    return local_size * context.world_size / global_size
