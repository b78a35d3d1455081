"""In-memory training data: :class:`Dataset` (numpy, float64, Å, Ha), splits, padded :class:`Batch` es.

Conformations of different molecules share one array padded to the largest molecule
(atomic number 0 marks padding); torch tensors are made only when batching.
"""


from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Conformations with energies (and optionally forces) at one level of theory.

    Attributes
    ----------
    atomic_numbers : numpy.ndarray
        ``[C, N]`` int64 atomic numbers; 0 marks padding.
    coordinates : numpy.ndarray
        ``[C, N, 3]`` float64 positions in Å (padding rows are 0).
    energies : numpy.ndarray
        ``[C]`` float64 total energies in Ha.
    forces : numpy.ndarray or None
        ``[C, N, 3]`` float64 forces in Ha/Å (padding rows are 0), or None.
    group : numpy.ndarray or None
        ``[C]`` str: name of the HDF5 group each conformation came from (the
        molecule); None for data not read from a file.
    index : numpy.ndarray or None
        ``[C]`` int64: position of each conformation within its group in the
        file, so that the same conformation can be matched across levels of
        theory; None for data not read from a file.
    """

    atomic_numbers: np.ndarray
    coordinates: np.ndarray
    energies: np.ndarray
    forces: Optional[np.ndarray] = None
    group: Optional[np.ndarray] = None
    index: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.atomic_numbers = np.asarray(self.atomic_numbers, dtype=np.int64)
        self.coordinates = np.asarray(self.coordinates, dtype=np.float64)
        self.energies = np.asarray(self.energies, dtype=np.float64)
        if self.atomic_numbers.ndim != 2:
            raise ValueError(f"atomic_numbers must be [C, N], got shape {self.atomic_numbers.shape}")
        c, n = self.atomic_numbers.shape
        if self.coordinates.shape != (c, n, 3):
            raise ValueError(f"coordinates must be [C, N, 3] = {(c, n, 3)}, got {self.coordinates.shape}")
        if self.energies.shape != (c,):
            raise ValueError(f"energies must be [C] = {(c,)}, got {self.energies.shape}")
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64)
            if self.forces.shape != (c, n, 3):
                raise ValueError(f"forces must be [C, N, 3] = {(c, n, 3)}, got {self.forces.shape}")
        if self.group is not None:
            self.group = np.asarray(self.group, dtype=str)
            if self.group.shape != (c,):
                raise ValueError(f"group must be [C] = {(c,)}, got {self.group.shape}")
        if self.index is not None:
            self.index = np.asarray(self.index, dtype=np.int64)
            if self.index.shape != (c,):
                raise ValueError(f"index must be [C] = {(c,)}, got {self.index.shape}")

    def __len__(self) -> int:
        return int(self.energies.shape[0])

    def num_atoms(self) -> np.ndarray:
        """Number of real (non-padding) atoms per conformation, ``[C]`` int64."""
        return (self.atomic_numbers > 0).sum(axis=1).astype(np.int64)

    def subset(self, indices: Union[Sequence[int], np.ndarray]) -> "Dataset":
        """The conformations at ``indices`` (any order, repeats allowed), trimmed to their largest molecule."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = int(self.num_atoms()[idx].max()) if idx.size else 0
        n = max(n, _last_real_column(self.atomic_numbers[idx]))
        return Dataset(
            atomic_numbers=self.atomic_numbers[idx, :n],
            coordinates=self.coordinates[idx, :n],
            energies=self.energies[idx],
            forces=None if self.forces is None else self.forces[idx, :n],
            group=None if self.group is None else self.group[idx],
            index=None if self.index is None else self.index[idx],
        )

    def split(self, fractions: Sequence[float], seed: int) -> List["Dataset"]:
        """Random disjoint split into parts of the given fractions, deterministic given ``seed``.

        Parameters
        ----------
        fractions : sequence of float
            Non-negative fractions summing to 1 (within 1e-6). Part sizes are
            rounded from the cumulative fractions, so every conformation is in
            exactly one part.
        seed : int
            Seed of the permutation (numpy ``default_rng``).

        Returns
        -------
        list of Dataset
            One data set per fraction, in the given order.
        """
        fr = np.asarray(list(fractions), dtype=np.float64)
        if fr.ndim != 1 or fr.size == 0 or np.any(fr < 0) or abs(fr.sum() - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
        order = np.random.default_rng(seed).permutation(len(self))
        bounds = np.rint(np.cumsum(fr) * len(self)).astype(np.int64)
        bounds[-1] = len(self)
        starts = np.concatenate([[0], bounds[:-1]])
        return [self.subset(order[a:b]) for a, b in zip(starts, bounds)]

    def batches(
        self,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: Union[str, torch.device] = "cpu",
    ) -> Iterator["Batch"]:
        """Batches of conformations of similar size, each padded to its own largest molecule.

        With ``shuffle`` the conformations are permuted (``seed``), cut into
        buckets of 16 batches, sorted by atom count within each bucket, cut
        into batches, and the batches are yielded in a permuted order; without
        ``shuffle`` the conformations are sorted by atom count (stable) and cut
        in order. Either way every conformation appears exactly once.

        Parameters
        ----------
        batch_size : int
            Conformations per batch (the last batch of a bucket may be smaller).
        shuffle : bool
            Permute as described above.
        seed : int
            Seed of the permutations.
        dtype : torch.dtype
            Floating type of coordinates and forces (energies stay float64).
        device : str or torch.device
            Device of the tensors.

        Yields
        ------
        Batch
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for idx in self.batch_indices(batch_size, shuffle, seed):
            yield self.make_batch(idx, dtype=dtype, device=device)

    def batch_indices(self, batch_size: int, shuffle: bool = True, seed: int = 0) -> List[np.ndarray]:
        """The conformation indices of each batch :meth:`batches` yields, in order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        sizes = self.num_atoms()
        if not shuffle:
            order = np.argsort(sizes, kind="stable")
            return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(self))
        bucket = 16 * batch_size
        out: List[np.ndarray] = []
        for b in range(0, len(perm), bucket):
            part = perm[b : b + bucket]
            part = part[np.argsort(sizes[part], kind="stable")]
            out.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
        return [out[i] for i in rng.permutation(len(out))]

    def make_batch(
        self,
        indices: Union[Sequence[int], np.ndarray],
        dtype: torch.dtype = torch.float32,
        device: Union[str, torch.device] = "cpu",
    ) -> "Batch":
        """One padded :class:`Batch` of the conformations at ``indices``.

        Real atoms are moved to the front of each row, so padding is always at
        the end and the batch is only as wide as its largest molecule.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        z = self.atomic_numbers[idx]
        real = z > 0
        counts = real.sum(axis=1)
        n = int(counts.max()) if idx.size else 0
        # stable sort puts real atoms first, preserving their order
        order = np.argsort(~real, axis=1, kind="stable")[:, :n]
        rows = np.arange(idx.size)[:, None]
        zb = np.where(real[rows, order], z[rows, order], 0)
        xb = np.where(real[rows, order][..., None], self.coordinates[idx][rows, order], 0.0)
        fb = None
        if self.forces is not None:
            fb = np.where(real[rows, order][..., None], self.forces[idx][rows, order], 0.0)
        return Batch(
            atomic_numbers=torch.as_tensor(zb, dtype=torch.long, device=device),
            coordinates=torch.as_tensor(xb, dtype=dtype, device=device),
            energies=torch.as_tensor(self.energies[idx], dtype=torch.float64, device=device),
            forces=None if fb is None else torch.as_tensor(fb, dtype=dtype, device=device),
            num_atoms=torch.as_tensor(counts, dtype=torch.long, device=device),
        )


class Batch(NamedTuple):
    """A padded batch of conformations (torch tensors).

    Attributes
    ----------
    atomic_numbers : Tensor
        ``[B, n]`` long, 0 = padding (always after the real atoms).
    coordinates : Tensor
        ``[B, n, 3]`` Å, of the requested dtype.
    energies : Tensor
        ``[B]`` float64 Ha.
    forces : Tensor or None
        ``[B, n, 3]`` Ha/Å, of the requested dtype.
    num_atoms : Tensor
        ``[B]`` long, real atoms per conformation.
    """

    atomic_numbers: Tensor
    coordinates: Tensor
    energies: Tensor
    forces: Optional[Tensor]
    num_atoms: Tensor


def _last_real_column(z: np.ndarray) -> int:
    """Width needed to keep every real atom of ``z`` ``[C, N]`` (1 + last real column)."""
    if z.size == 0:
        return 0
    cols = np.nonzero((z > 0).any(axis=0))[0]
    return int(cols[-1]) + 1 if cols.size else 0


def _pad_to(a: np.ndarray, n: int) -> np.ndarray:
    """Pad axis 1 of ``a`` with zeros to width ``n``."""
    if a.shape[1] == n:
        return a
    width = [(0, 0)] * a.ndim
    width[1] = (0, n - a.shape[1])
    return np.pad(a, width)


def concatenate(datasets: Sequence[Dataset]) -> Dataset:
    """Join data sets (padding to the widest); forces/group/index kept only if every part has them."""
    parts = list(datasets)
    if not parts:
        raise ValueError("concatenate needs at least one Dataset")
    n = max(p.atomic_numbers.shape[1] for p in parts)
    has_forces = all(p.forces is not None for p in parts)
    if not has_forces and any(p.forces is not None for p in parts):
        logger.warning("concatenate: some parts have no forces; forces dropped")
    has_group = all(p.group is not None for p in parts)
    has_index = all(p.index is not None for p in parts)
    return Dataset(
        atomic_numbers=np.concatenate([_pad_to(p.atomic_numbers, n) for p in parts]),
        coordinates=np.concatenate([_pad_to(p.coordinates, n) for p in parts]),
        energies=np.concatenate([p.energies for p in parts]),
        forces=np.concatenate([_pad_to(p.forces, n) for p in parts]) if has_forces else None,  # type: ignore[arg-type]
        group=np.concatenate([p.group for p in parts]) if has_group else None,  # type: ignore[misc]
        index=np.concatenate([p.index for p in parts]) if has_index else None,  # type: ignore[misc]
    )
