"""Ctrl-C for long free-energy runs: stop at the next checkpoint, or now on a second Ctrl-C.

With the ANI force in openmm-torch's C++ ``TorchForce`` no Python runs inside an MD step, so
Python's ``KeyboardInterrupt`` is raised between OpenMM calls. Raised in the middle of an
openmmtools iteration it would leave the reporter file at its last checkpoint (still valid,
the iterations since are redone), but it would waste them; :class:`GracefulInterrupt` therefore
turns the first SIGINT into a request that the loops honour at their next checkpoint (replica
exchange) or after the current switch (switching), after which they save and raise
``KeyboardInterrupt``. A second SIGINT raises at once. The physics of a run never depends on
when it was interrupted: a resumed run continues from saved states.

Under MPI every rank receives the signal; :func:`stop_requested` combines the ranks' flags
so that all ranks stop at the same point.
"""

import logging
import signal
import threading
from types import FrameType
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)


class GracefulInterrupt:
    """Context manager deferring the first Ctrl-C (SIGINT) to the caller's next safe point.

    Outside the main thread (where signal handlers cannot be installed) it does nothing and
    Ctrl-C raises ``KeyboardInterrupt`` as usual.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("interrupt: stopping at the next checkpoint (press Ctrl-C again to stop now)")

    def __enter__(self) -> "GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


#: A callable telling a loop to stop at its next safe point (e.g. ``GracefulInterrupt``'s flag).
StopFlag = Callable[[], bool]


def never() -> bool:
    """The stop flag of a run without an interrupt handler."""
    return False


def stop_requested(flag: StopFlag) -> bool:
    """``flag()`` on any MPI rank (all ranks get the same answer; a collective call under MPI)."""
    import mpiplus

    local = bool(flag())
    comm = mpiplus.get_mpicomm()
    if comm is None or comm.size == 1:
        return local
    return bool(comm.allreduce(int(local)))
