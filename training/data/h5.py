"""Training data files (HDF5): the ANI release layout and the simple user format.

Two on-disk layouts are read (both documented in ``docs/training-data.md``):

* the **ANI-1x / ANI-1ccx release layout**: one HDF5 group per molecular formula
  holding ``atomic_numbers`` ``[N]`` (int), ``coordinates`` ``[C, N, 3]`` (Å) and
  one array per label named ``<level of theory>.<property>``, e.g.
  ``wb97x_dz.energy`` ``[C]`` (Ha), ``wb97x_dz.forces`` ``[C, N, 3]`` (Ha/Å),
  ``ccsd(t)_cbs.energy`` ``[C]`` (Ha). NaN marks a missing label; a conformation
  whose requested labels contain NaN is skipped for that request only (and counted in a
  warning);
* the **simple user format**: the same arrays, but ``atomic_numbers`` may be
  per conformation, ``[C, N]`` with 0 as padding, and the arrays may sit in the
  file's root group instead of one group per molecule.

Files are read into :class:`~.dataset.Dataset` objects. h5py is imported inside the
functions that read or write files so that importing this module stays light.

Nothing is dropped without a word: after reading, one warning per reason (logger
``openmm_ani.training.data.h5``) says how many molecules and conformations were skipped —
molecules with elements outside the requested set, groups with coordinates but no
``atomic_numbers``, conformations whose energy or forces are NaN. Negative atomic numbers are
an error (0 is padding; a negative number is neither an element nor padding).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from openmm_ani.files import PathLike, atomic_write
from openmm_ani.model.species import atomic_number_of

from .dataset import Dataset, concatenate

logger = logging.getLogger(__name__)

#: Name of the data set shipped with the package (release layout).
SHIPPED_DATASET = "chno_labels.h5"


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


@dataclass
class _Skipped:
    """What a read left out, by reason: molecule (group) names and conformation counts."""

    elements: Dict[str, int] = field(default_factory=dict)  # group -> conformations, elements outside the set
    unlabelled_groups: Dict[str, int] = field(default_factory=dict)  # group -> conformations, no atomic_numbers
    nan_energy: int = 0
    nan_forces: int = 0
    foreign: Dict[str, List[int]] = field(default_factory=dict)  # group -> atomic numbers outside the set

    def report(self, path: str, energy_key: str, force_key: Optional[str], elements: Optional[Sequence[str]]) -> None:
        """One warning per reason, with counts and the first few molecules."""

        def names(groups: Mapping[str, Any]) -> str:
            shown = [g.lstrip("/") or "/" for g in list(groups)[:5]]
            return ", ".join(shown) + (f" and {len(groups) - 5} more" if len(groups) > 5 else "")

        if self.elements:
            found = sorted({z for zs in self.foreign.values() for z in zs})
            logger.warning("%s: skipped %d molecule(s) (%d conformations) with elements outside %s (atomic numbers %s): %s",
                           path, len(self.elements), sum(self.elements.values()), ",".join(elements or []), found,
                           names(self.elements))
        if self.unlabelled_groups:
            logger.warning("%s: skipped %d group(s) (%d conformations) that have coordinates but no 'atomic_numbers': %s",
                           path, len(self.unlabelled_groups), sum(self.unlabelled_groups.values()),
                           names(self.unlabelled_groups))
        if self.nan_energy:
            logger.warning("%s: skipped %d conformation(s) whose %r is NaN or infinite (NaN marks a missing label)",
                           path, self.nan_energy, energy_key)
        if self.nan_forces:
            logger.warning("%s: skipped %d conformation(s) whose %r has NaN or infinite values", path, self.nan_forces,
                           force_key)


def _molecule_groups(h5: Any, skipped: Optional[_Skipped] = None) -> List[Tuple[str, Any]]:
    """All groups (root included) that hold an ``atomic_numbers`` dataset, sorted by name.

    Groups with a ``coordinates`` dataset but no ``atomic_numbers`` are recorded in ``skipped``.
    """
    import h5py

    found: List[Tuple[str, Any]] = []

    def visit(name: str, group: Any) -> None:
        if "atomic_numbers" in group and isinstance(group["atomic_numbers"], h5py.Dataset):
            found.append((name, group))
        elif skipped is not None and "coordinates" in group and isinstance(group["coordinates"], h5py.Dataset):
            shape = group["coordinates"].shape
            skipped.unlabelled_groups[name] = int(shape[0]) if shape else 0
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
    skipped: _Skipped,
) -> Iterator[Dataset]:
    """Read one molecule group in slices of ``chunk_size`` conformations, dropping (and counting) NaN labels."""
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
    if (z_all < 0).any():
        negative = sorted(set(z_all[z_all < 0].tolist()))
        raise ValueError(f"{path}: group {gname!r}: negative atomic numbers {negative} (elements are >= 1, 0 marks padding)")
    if allowed is not None:
        present = np.unique(z_all[z_all > 0])
        if not np.all(np.isin(present, allowed)):
            skipped.elements[gname] = c
            skipped.foreign[gname] = [int(z) for z in present[~np.isin(present, allowed)]]
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
        skipped.nan_energy += int((~keep).sum())
        if f is not None:
            real = (np.broadcast_to(z_all, (c, n))[start:stop] if z_all.ndim == 1 else z_all[start:stop]) > 0
            finite_forces = np.isfinite(np.where(real[..., None], f, 0.0)).all(axis=(1, 2))
            skipped.nan_forces += int((keep & ~finite_forces).sum())
            keep &= finite_forces
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
        What was skipped, and why, is logged as warnings once the file is read.

    Raises
    ------
    ValueError
        Corrupt/unreadable file (names the file), a group without the requested
        key (names file, group and key), inconsistent shapes, negative atomic
        numbers, or no molecule groups at all.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    path = os.fspath(path)
    allowed = _element_filter(elements)
    h5 = _open_h5(path)
    skipped = _Skipped()
    with h5:
        try:
            groups = _molecule_groups(h5, skipped)
        except (OSError, RuntimeError, KeyError) as err:
            raise ValueError(f"{path}: HDF5 structure could not be read ({err})") from err
        if not groups:
            raise ValueError(f"{path}: no group with an 'atomic_numbers' dataset (not a training data file)")
        pending: List[Dataset] = []
        count = 0
        for gname, group in groups:
            for part in _group_chunks(path, gname, group, energy_key, force_key, chunk_size, allowed, skipped):
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
    skipped.report(path, energy_key, force_key, elements)


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

    for name, arrays in molecules.items():
        if "atomic_numbers" not in arrays or "coordinates" not in arrays:
            raise ValueError(f"molecule {name!r} needs 'atomic_numbers' and 'coordinates'")
        c = np.asarray(arrays["coordinates"]).shape[0]
        for key, value in arrays.items():
            if key != "atomic_numbers" and np.asarray(value).shape[:1] != (c,):
                raise ValueError(f"molecule {name!r}: {key!r} has shape {np.shape(value)}, expected first axis {c}")
    with atomic_write(path, "wb") as stream:
        with h5py.File(stream, "w") as h5:
            for name in sorted(molecules):
                group = h5.create_group(name)
                for key, value in molecules[name].items():
                    arr = np.asarray(value)
                    if key == "atomic_numbers":
                        arr = arr.astype(np.int64)
                    elif arr.dtype.kind == "f":
                        arr = arr.astype(np.float64)
                    group.create_dataset(key, data=arr)


def shipped_dataset_path() -> str:
    """Path of the ωB97X/6-31G* + CCSD(T) CHNO data set shipped in ``training/resources``."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", SHIPPED_DATASET)
