"""The one place where training picks its device: CUDA when present, CPU otherwise."""

import logging
from typing import Optional, Union

import torch

logger = logging.getLogger(__name__)


def select_device(requested: Optional[Union[str, torch.device]] = None, local_rank: Optional[int] = None) -> torch.device:
    """The training device.

    Parameters
    ----------
    requested
        ``None`` or ``"auto"`` (CUDA if available, else CPU), or an explicit device such as ``"cpu"``, ``"cuda:1"``.
    local_rank
        In a ``torchrun`` job, this process's local rank: selects ``cuda:<local_rank>``.

    Raises
    ------
    ValueError
        If CUDA is requested but not available.
    """
    if requested is None or str(requested) == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank or 0)
        else:
            device = torch.device("cpu")
    else:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        if device.type == "cuda" and local_rank is not None and device.index is None:
            device = torch.device("cuda", local_rank)
    logger.info("training on %s", device)
    return device
