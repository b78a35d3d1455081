"""Training data: in-memory data sets and batches (:mod:`.dataset`), HDF5 files (:mod:`.h5`).

Both file layouts are documented in ``docs/training-data.md``.
"""

from .dataset import Batch, Dataset, concatenate
from .h5 import SHIPPED_DATASET, available_keys, iter_h5, read_h5, shipped_dataset_path, write_h5

__all__ = [
    "Batch", "Dataset", "SHIPPED_DATASET", "available_keys", "concatenate", "iter_h5", "read_h5",
    "shipped_dataset_path", "write_h5",
]
