"""Training data: HDF5 readers/writers, splits, padding and similar-size batches.

Two on-disk layouts are read (both documented in ``docs/training-data.md``):

* the **ANI-1x / ANI-1ccx release layout**: one HDF5 group per molecular formula
  holding ``atomic_numbers`` ``[N]`` (int), ``coordinates`` ``[C, N, 3]`` (Å) and
  one array per label named ``<level of theory>.<property>``, e.g.
  ``wb97x_dz.energy`` ``[C]`` (Ha), ``wb97x_dz.forces`` ``[C, N, 3]`` (Ha/Å),
  ``ccsd(t)_cbs.energy`` ``[C]`` (Ha). NaN marks a missing label; a conformation
  whose requested labels contain NaN is skipped for that request only;
* the **simple user format**: the same arrays, but ``atomic_numbers`` may be
  per conformation, ``[C, N]`` with 0 as padding, and the arrays may sit in the
  file's root group instead of one group per molecule.

Inside a :class:`Dataset` everything is numpy (float64, Å, Ha); torch tensors
are made only when batching. h5py is imported inside the functions that read
or write files so that importing this module stays light.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from openmm_ani.species import atomic_number_of

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Name of the data set shipped with the package (release layout).
SHIPPED_DATASET = "chno_labels.h5"


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


# ----------------------------------------------------------------------------------------------------------------
# HDF5 reading
# ----------------------------------------------------------------------------------------------------------------


def _open_h5(path: PathLike) -> Any:
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"training data file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err


def _molecule_groups(h5: Any) -> List[Tuple[str, Any]]:
    """All groups (root included) that hold an ``atomic_numbers`` dataset, sorted by name."""
    import h5py

    found: List[Tuple[str, Any]] = []

    def visit(name: str, group: Any) -> None:
        if "atomic_numbers" in group and isinstance(group["atomic_numbers"], h5py.Dataset):
            found.append((name, group))
        for key in sorted(group.keys()):
            child = group.get(key, getlink=False)
            if isinstance(child, h5py.Group):
                visit(f"{name}/{key}" if name != "/" else f"/{key}", child)

    visit("/", h5)
    return found


def _check_key(path: str, gname: str, group: Any, key: str) -> Any:
    if key not in group:
        available = sorted(k for k in group.keys() if k not in ("atomic_numbers", "coordinates"))
        raise ValueError(f"{path}: group {gname!r} has no label {key!r} (available: {available})")
    return group[key]


def _element_filter(elements: Optional[Sequence[str]]) -> Optional[np.ndarray]:
    if elements is None:
        return None
    return np.array([atomic_number_of(e) for e in elements], dtype=np.int64)


def _group_chunks(
    path: str,
    gname: str,
    group: Any,
    energy_key: str,
    force_key: Optional[str],
    chunk_size: int,
    allowed: Optional[np.ndarray],
) -> Iterator[Dataset]:
    """Read one molecule group in slices of ``chunk_size`` conformations, dropping NaN labels."""
    try:
        z_all = np.asarray(group["atomic_numbers"][()], dtype=np.int64)
        coords = _check_key(path, gname, group, "coordinates")
        energies = _check_key(path, gname, group, energy_key)
        forces = _check_key(path, gname, group, force_key) if force_key is not None else None
    except (OSError, KeyError, RuntimeError) as err:
        raise ValueError(f"{path}: group {gname!r} could not be read ({err})") from err
    if z_all.ndim not in (1, 2):
        raise ValueError(f"{path}: group {gname!r}: atomic_numbers must be [N] or [C, N], got {z_all.shape}")
    n = z_all.shape[-1]
    c = coords.shape[0] if len(coords.shape) == 3 else -1
    if coords.shape != (c, n, 3):
        raise ValueError(f"{path}: group {gname!r}: coordinates must be [C, {n}, 3], got {coords.shape}")
    if z_all.ndim == 2 and z_all.shape[0] != c:
        raise ValueError(f"{path}: group {gname!r}: atomic_numbers {z_all.shape} vs coordinates {coords.shape}")
    if energies.shape != (c,):
        raise ValueError(f"{path}: group {gname!r}: {energy_key!r} must be [{c}], got {energies.shape}")
    if forces is not None and forces.shape != (c, n, 3):
        raise ValueError(f"{path}: group {gname!r}: {force_key!r} must be [{c}, {n}, 3], got {forces.shape}")
    if allowed is not None:
        present = np.unique(z_all[z_all > 0])
        if not np.all(np.isin(present, allowed)):
            return
    for start in range(0, c, chunk_size):
        stop = min(c, start + chunk_size)
        try:
            e = np.asarray(energies[start:stop], dtype=np.float64)
            x = np.asarray(coords[start:stop], dtype=np.float64)
            f = None if forces is None else np.asarray(forces[start:stop], dtype=np.float64)
        except (OSError, RuntimeError) as err:
            raise ValueError(f"{path}: group {gname!r}: data could not be read ({err})") from err
        keep = np.isfinite(e)
        if f is not None:
            keep &= np.isfinite(f).all(axis=(1, 2))
        if not keep.any():
            continue
        z = np.broadcast_to(z_all, (c, n))[start:stop] if z_all.ndim == 1 else z_all[start:stop]
        z = z[keep]
        xk = np.where((z > 0)[..., None], x[keep], 0.0)
        if not np.isfinite(xk).all():
            raise ValueError(f"{path}: group {gname!r}: non-finite coordinates")
        fk = None if f is None else np.where((z > 0)[..., None], f[keep], 0.0)
        yield Dataset(
            atomic_numbers=np.array(z, dtype=np.int64),
            coordinates=xk,
            energies=e[keep],
            forces=fk,
            group=np.full(int(keep.sum()), gname.lstrip("/") or "/"),
            index=np.arange(start, stop, dtype=np.int64)[keep],
        )


def iter_h5(
    path: PathLike,
    energy_key: str,
    force_key: Optional[str] = None,
    chunk_size: int = 10000,
    elements: Optional[Sequence[str]] = None,
) -> Iterator[Dataset]:
    """Stream a data file in chunks of at most ``chunk_size`` conformations.

    Only one chunk of each array is read from disk at a time, so files larger
    than memory can be processed. Chunks follow the file order (groups sorted by
    name, conformations in stored order); their concatenation equals
    :func:`read_h5`.

    Parameters
    ----------
    path : str or path-like
        HDF5 file in the release layout or the simple user format.
    energy_key : str
        Name of the energy array, e.g. ``"wb97x_dz.energy"`` (Ha).
    force_key : str, optional
        Name of the force array, e.g. ``"wb97x_dz.forces"`` (Ha/Å).
    chunk_size : int
        Maximum conformations per yielded :class:`Dataset`.
    elements : sequence of str, optional
        Element symbols; molecules containing any other element are skipped.

    Yields
    ------
    Dataset
        Conformations whose requested labels are all finite (NaN = missing).

    Raises
    ------
    ValueError
        Corrupt/unreadable file (names the file), a group without the requested
        key (names file, group and key), inconsistent shapes, or no molecule
        groups at all.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    path = os.fspath(path)
    allowed = _element_filter(elements)
    h5 = _open_h5(path)
    with h5:
        try:
            groups = _molecule_groups(h5)
        except (OSError, RuntimeError, KeyError) as err:
            raise ValueError(f"{path}: HDF5 structure could not be read ({err})") from err
        if not groups:
            raise ValueError(f"{path}: no group with an 'atomic_numbers' dataset (not a training data file)")
        pending: List[Dataset] = []
        count = 0
        for gname, group in groups:
            for part in _group_chunks(path, gname, group, energy_key, force_key, chunk_size, allowed):
                while len(part):
                    take = min(len(part), chunk_size - count)
                    pending.append(part.subset(np.arange(take)) if take < len(part) else part)
                    count += take
                    part = part.subset(np.arange(take, len(part))) if take < len(part) else part.subset([])
                    if count == chunk_size:
                        yield concatenate(pending)
                        pending, count = [], 0
        if pending:
            yield concatenate(pending)


def read_h5(
    path: PathLike,
    energy_key: str,
    force_key: Optional[str] = None,
    elements: Optional[Sequence[str]] = None,
) -> Dataset:
    """Read a whole data file (release layout or simple user format) into memory.

    Parameters
    ----------
    path : str or path-like
        HDF5 file.
    energy_key : str
        Energy array name, e.g. ``"wb97x_dz.energy"`` or ``"ccsd(t)_cbs.energy"`` (Ha).
    force_key : str, optional
        Force array name, e.g. ``"wb97x_dz.forces"`` (Ha/Å).
    elements : sequence of str, optional
        Keep only molecules made of these elements.

    Returns
    -------
    Dataset
        Conformations whose requested labels are finite; ``group``/``index``
        record where each came from.

    Raises
    ------
    ValueError
        As :func:`iter_h5`; also when no conformation has finite labels.
    """
    parts = list(iter_h5(path, energy_key, force_key, chunk_size=1 << 62, elements=elements))
    if not parts:
        raise ValueError(f"{os.fspath(path)}: no conformation with finite {energy_key!r}"
                         + (f"/{force_key!r}" if force_key else "") + " labels")
    return parts[0] if len(parts) == 1 else concatenate(parts)


def available_keys(path: PathLike) -> Dict[str, int]:
    """Label keys in a data file and how many finite conformations each has (over all groups)."""
    path = os.fspath(path)
    out: Dict[str, int] = {}
    with _open_h5(path) as h5:
        for _, group in _molecule_groups(h5):
            for key in group.keys():
                if key in ("atomic_numbers", "coordinates"):
                    continue
                arr = np.asarray(group[key][()])
                finite = np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1) if arr.ndim else np.array([])
                out[key] = out.get(key, 0) + int(finite.sum())
    return out


# ----------------------------------------------------------------------------------------------------------------
# HDF5 writing
# ----------------------------------------------------------------------------------------------------------------


def write_h5(path: PathLike, molecules: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write molecules in the release layout, atomically (temporary file + ``os.replace``).

    Parameters
    ----------
    path : str or path-like
        Output file.
    molecules : mapping
        Group name (e.g. the formula ``"CH4O"``) -> arrays: ``atomic_numbers``
        ``[N]`` int, ``coordinates`` ``[C, N, 3]`` Å, and any labels such as
        ``wb97x_dz.energy`` ``[C]`` Ha or ``wb97x_dz.forces`` ``[C, N, 3]`` Ha/Å,
        with NaN for missing labels. Every array's first axis (except
        ``atomic_numbers``) must have length C.
    """
    import h5py

    path = os.fspath(path)
    for name, arrays in molecules.items():
        if "atomic_numbers" not in arrays or "coordinates" not in arrays:
            raise ValueError(f"molecule {name!r} needs 'atomic_numbers' and 'coordinates'")
        c = np.asarray(arrays["coordinates"]).shape[0]
        for key, value in arrays.items():
            if key != "atomic_numbers" and np.asarray(value).shape[:1] != (c,):
                raise ValueError(f"molecule {name!r}: {key!r} has shape {np.shape(value)}, expected first axis {c}")
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as h5:
            for name in sorted(molecules):
                group = h5.create_group(name)
                for key, value in molecules[name].items():
                    arr = np.asarray(value)
                    if key == "atomic_numbers":
                        arr = arr.astype(np.int64)
                    elif arr.dtype.kind == "f":
                        arr = arr.astype(np.float64)
                    group.create_dataset(key, data=arr)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def shipped_dataset_path() -> str:
    """Path of the ωB97X/6-31G* + CCSD(T) CHNO data set shipped in ``training/resources``."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", SHIPPED_DATASET)
