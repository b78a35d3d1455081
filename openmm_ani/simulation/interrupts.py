"""Ctrl-C in long jobs: finish the piece of work under way, save, then stop.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the interpreter happens to be: inside a
reporter writing a trajectory frame, between the write of a checkpoint and of the files it
refers to. :func:`deferred_interrupts` replaces that, for the duration of a job's main loop,
with a flag the loop polls between steps, so the job stops at a point where its files are
consistent and the state it saves is the state it reached. A second Ctrl-C stops at once
(the usual ``KeyboardInterrupt``), for a job that does not reach such a point soon enough.
"""

import contextlib
import logging
import signal
import threading
from typing import Any, Iterator

logger = logging.getLogger(__name__)


class InterruptRequest:
    """Set when the user pressed Ctrl-C; polled by the job's loop (``requested``)."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[InterruptRequest]:
    """Turn the first SIGINT into a request the caller polls; the second raises ``KeyboardInterrupt``.

    Outside the main thread (where Python cannot install signal handlers) the request is never
    set and SIGINT keeps its usual behaviour.

    Yields
    ------
    InterruptRequest
    """
    request = InterruptRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True
        logger.warning("interrupted: stopping at the next consistent point (press Ctrl-C again to stop at once)")

    signal.signal(signal.SIGINT, handler)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
