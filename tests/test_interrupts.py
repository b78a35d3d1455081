"""The package's one Ctrl-C helper (``openmm_ani.interrupts``), with real signals sent to this process.

Each test sets SIGINT's handler itself first (Python's ``KeyboardInterrupt`` handler, or
``SIG_IGN``), so the tests mean the same whether pytest runs in a terminal or in the
background with SIGINT ignored, and puts the one it found back afterwards.
"""

import os
import signal
import threading
from types import FrameType
from typing import Iterator, List, Optional

import pytest

from openmm_ani.interrupts import deferred_interrupts


@pytest.fixture
def python_handler() -> Iterator[None]:
    """SIGINT raises ``KeyboardInterrupt`` (as in an interactive Python) during the test."""
    found = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, found)


def send_sigint(how: str) -> None:
    """SIGINT to this process; the Python-level handler runs before this returns."""
    if how == "raise_signal":
        signal.raise_signal(signal.SIGINT)
    else:
        os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):  # os.kill: the handler runs at the next bytecode boundary, at the latest here
        pass


@pytest.mark.parametrize("how", ["raise_signal", "kill"])
def test_first_sigint_is_a_request_the_second_stops_at_once(python_handler, how):
    with deferred_interrupts() as interrupt:
        assert interrupt.active and not interrupt.requested and not interrupt()
        send_sigint(how)
        assert interrupt.requested and interrupt()  # no KeyboardInterrupt: the job decides when to stop
        with pytest.raises(KeyboardInterrupt):
            send_sigint(how)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_helper_sigint_raises_again(python_handler):
    with deferred_interrupts() as interrupt:
        pass
    assert not interrupt.active
    with pytest.raises(KeyboardInterrupt):
        send_sigint("raise_signal")


def test_previous_handler_is_restored_after_a_normal_exit_and_after_keyboardinterrupt(python_handler):
    seen: List[int] = []

    def own(signum: int, frame: Optional[FrameType]) -> None:
        seen.append(signum)

    signal.signal(signal.SIGINT, own)
    with deferred_interrupts():
        assert signal.getsignal(signal.SIGINT) is not own
    assert signal.getsignal(signal.SIGINT) is own
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            send_sigint("raise_signal")
            send_sigint("raise_signal")
    assert signal.getsignal(signal.SIGINT) is own
    send_sigint("raise_signal")
    assert seen == [signal.SIGINT]  # the restored handler really receives the signal


def test_inherited_ignore_is_kept(python_handler):
    """SIGINT ignored on entry (background job, nohup): the helper installs nothing over it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with deferred_interrupts() as interrupt:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and not interrupt.active
        send_sigint("raise_signal")
        send_sigint("kill")
        assert not interrupt.requested
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_outside_the_main_thread_nothing_changes(python_handler):
    results = {}

    def job() -> None:
        with deferred_interrupts() as interrupt:
            results["handler"] = signal.getsignal(signal.SIGINT)
            results["active"] = interrupt.active

    thread = threading.Thread(target=job)
    thread.start()
    thread.join(timeout=30)
    assert results == {"handler": signal.default_int_handler, "active": False}


def test_notice_is_logged_on_the_first_sigint_only(python_handler, caplog):
    with caplog.at_level("DEBUG", logger="openmm_ani.interrupts"):
        with deferred_interrupts("stopping at the next checkpoint") as interrupt:
            send_sigint("raise_signal")
        with deferred_interrupts() as quiet:
            send_sigint("raise_signal")
    assert interrupt.requested and quiet.requested
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.levelname == "WARNING"] == [
        ("WARNING", "stopping at the next checkpoint")]
