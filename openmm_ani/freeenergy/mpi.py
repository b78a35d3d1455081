"""Every MPI call of :mod:`openmm_ani.freeenergy`: the communicator, rank 0, broadcasts, agreement.

Under ``mpirun`` (mpi4py through openmmtools' ``mpiplus``) the pilot, replica exchange and
switching spread their work over the ranks; rank 0 owns the output directory. Without MPI (or
with one rank) every function here is a no-op answer: rank 0 of 1, the value itself.
"""

from typing import Any, Dict, List, Tuple


def comm() -> Any:
    """The MPI communicator, or ``None`` without MPI."""
    import mpiplus

    return mpiplus.get_mpicomm()


def rank_and_size() -> Tuple[int, int]:
    """``(rank, number of ranks)``; ``(0, 1)`` without MPI."""
    communicator = comm()
    return (0, 1) if communicator is None else (int(communicator.rank), int(communicator.size))


def is_root() -> bool:
    """True on MPI rank 0 (or without MPI)."""
    return rank_and_size()[0] == 0


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every MPI rank (``value`` itself without MPI)."""
    communicator = comm()
    return value if communicator is None or communicator.size == 1 else communicator.bcast(value, root=0)


def any_rank(value: bool) -> bool:
    """True on every rank when ``value`` is true on any rank (a collective call under MPI)."""
    communicator = comm()
    if communicator is None or communicator.size == 1:
        return bool(value)
    return bool(communicator.allreduce(int(bool(value))))


def gather_all(value: Any) -> List[Any]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` without MPI)."""
    communicator = comm()
    return [value] if communicator is None or communicator.size == 1 else list(communicator.allgather(value))


def merge_all(local: Dict[Any, Any]) -> Dict[Any, Any]:
    """The union of every rank's dict, on every rank."""
    merged: Dict[Any, Any] = {}
    for part in gather_all(local):
        merged.update(part)
    return merged
