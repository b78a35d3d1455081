"""File helpers shared by every layer: atomic writes and file fingerprints.

Every file openmm-ani writes for a user (model files, TorchScript files, results, checkpoints,
training data, CSV tables) goes through :func:`atomic_write`: the data is written to a
uniquely named temporary file in the target folder, flushed to disk, and moved over the target
with :func:`os.replace`. A reader therefore sees either the old file or the complete new one,
and two processes writing the same target never share a temporary file.
"""

import contextlib
import hashlib
import os
import tempfile
from typing import IO, Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Bytes read at a time when hashing a file.
_HASH_BLOCK = 1 << 20


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``.

    Parameters
    ----------
    path
        The target file. Its folder must exist.
    mode
        ``"w"`` (text) or ``"wb"`` (binary).
    **open_kwargs
        Passed to :func:`open` (``newline=""`` for CSV, ``encoding``...).

    Yields
    ------
    file object
        The open temporary file. Writers that need a path (``torch.save``, ``h5py``) may
        write to ``stream.name`` instead, before the ``with`` block ends.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist (naming it).
    IsADirectoryError
        If ``path`` is a folder.
    PermissionError, OSError
        If the folder is not writable.

    Notes
    -----
    On any exception inside the block the temporary file is removed and ``path`` is left as
    it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {os.fspath(path)}: folder {directory} does not exist")
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot write {os.fspath(path)}: it is a folder")
    handle, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(target) + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **open_kwargs) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        _copy_permissions(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _copy_permissions(target: str, tmp: str) -> None:
    """Give ``tmp`` the mode ``target`` has (or a new file would get): mkstemp makes it 0600."""
    if os.path.exists(target):
        os.chmod(tmp, os.stat(target).st_mode & 0o777)
        return
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w", encoding="utf-8") as stream:
        stream.write(text)


def sha256_of(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (the fingerprint stored with resumable results).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
