"""Ctrl-C in long jobs: finish the piece of work under way, save, then stop.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the interpreter happens to be: inside a
reporter writing a trajectory frame, between the write of a checkpoint and of the files it
refers to, in the middle of an openmmtools iteration. :func:`deferred_interrupts` replaces that,
for the duration of a job's main loop, with a request the loop polls at its next consistent
point (between MD steps, at a replica-exchange checkpoint, after a switch); the loop then saves
and stops. A second Ctrl-C raises ``KeyboardInterrupt`` at once, for a job that does not reach
such a point soon enough.

The helper changes nothing where it must not:

* outside the main thread (Python installs signal handlers only there) SIGINT keeps its
  behaviour and the request is never set;
* when SIGINT is ignored on entry (``SIG_IGN``: a shell starts background jobs and ``nohup``
  commands that way) it stays ignored, as the user asked;
* on exit the handler found on entry is restored.

This module is part of the bottom layer (no other openmm_ani import), so every layer, training
included, may use it. Combining the requests of MPI ranks is the caller's business
(:func:`openmm_ani.freeenergy.interrupt.stop_requested`).
"""

import contextlib
import logging
import signal
import threading
import types
from types import FrameType
from typing import Iterator, Optional

logger = logging.getLogger(__name__)


class InterruptRequest:
    """Whether the user pressed Ctrl-C since the job's loop started.

    Attributes
    ----------
    requested
        Set by the first SIGINT.
    active
        Whether the deferring handler is installed (false outside the main thread and when
        SIGINT was ignored on entry: then the request is never set).
    """

    def __init__(self) -> None:
        self.requested = False
        self.active = False

    def __call__(self) -> bool:
        """``requested``, so that the request itself can serve as a loop's stop flag."""
        return self.requested


@contextlib.contextmanager
def deferred_interrupts(notice: Optional[str] = None) -> Iterator[InterruptRequest]:
    """Turn the first SIGINT into a request the caller polls; the second raises ``KeyboardInterrupt``.

    Parameters
    ----------
    notice
        Logged as a warning on the first SIGINT (e.g. how long the stop may take). ``None``
        logs at debug level only, for a job that stops soon and reports the stop itself.

    Yields
    ------
    InterruptRequest
        Poll ``request.requested`` (or call ``request()``) at consistent points.
    """
    request = InterruptRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # inherited "ignore" (background job, nohup): keep it
        yield request
        return

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True
        if notice is None:
            logger.debug("SIGINT: stopping at the next consistent point")
        else:
            logger.warning("%s", notice)

    signal.signal(signal.SIGINT, handler)
    request.active = True
    try:
        yield request
    finally:
        # None: the previous handler was not installed from Python; Python's own is the best guess
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        request.active = False


def import_deferring_interrupts(name: str) -> types.ModuleType:
    """``importlib.import_module(name)`` with Ctrl-C deferred until the import is done, then raised.

    A ``KeyboardInterrupt`` raised inside an extension module's import can leave it half
    initialised, and CPython 3.11 then ends the process by SIGINT at exit (status -2) even after
    the interrupt was caught. Deferred, the interrupt is raised here, in Python code, after the
    import (which takes well under a second), as ``KeyboardInterrupt``.
    """
    import importlib

    with deferred_interrupts() as request:
        module = importlib.import_module(name)
    if request.requested:
        raise KeyboardInterrupt
    return module
