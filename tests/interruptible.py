"""Start a command that a test interrupts with a real SIGINT, wherever the test suite runs.

A shell starts background jobs (``make test &``, ``nohup``, many CI runners) with SIGINT
ignored; the ignore is inherited by every child, and Python keeps an inherited ignore, so a
child started plainly would never see the signal. :func:`start` therefore sets the child's
SIGINT disposition to the default action before ``exec`` (Python then installs its
``KeyboardInterrupt`` handler), and reads its output in background threads, so that a test can
wait for an explicit readiness event (:meth:`Child.wait_for_line`, :meth:`Child.wait_until`)
with a bounded deadline instead of sleeping for a fixed time, and then :meth:`Child.interrupt`.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

#: How long a test waits for a readiness event, or for the child to end, by default (s).
DEADLINE = 300.0


def _default_sigint() -> None:
    """In the child between fork and exec: SIGINT ends it / raises KeyboardInterrupt, whatever the parent had."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """A running command with its stdout and stderr lines collected as they come."""

    def __init__(self, command: Sequence[str], env: Optional[Dict[str, str]] = None) -> None:
        environment = dict(os.environ if env is None else env)
        environment.setdefault("OMP_NUM_THREADS", "1")
        self.started = time.monotonic()
        self.process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=environment, preexec_fn=_default_sigint)
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: List[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, accept: Callable[[str], bool], timeout: float = DEADLINE) -> str:
        """The first stdout line that ``accept``s, waiting at most ``timeout`` seconds.

        Raises
        ------
        AssertionError
            If the child ends first or the deadline passes (with its stderr).
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.stdout if accept(line)]
                if found:
                    return found[0]
                if self.process.poll() is not None and not any(reader.is_alive() for reader in self._readers):
                    raise AssertionError(f"the command ended ({self.process.returncode}) before the line: "
                                         + "\n".join(self.stderr[-20:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such line within {timeout} s; stdout so far: {self.stdout[-5:]}")
                self._changed.wait(min(left, 0.5))

    def wait_until(self, ready: Callable[[], bool], timeout: float = DEADLINE, poll: float = 0.05) -> None:
        """Poll ``ready()`` (a file appearing, a checkpoint's step) until it holds, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                self.wait(timeout)
                raise AssertionError(f"the command ended ({self.process.returncode}) before it was ready: "
                                     + "\n".join(self.stderr[-20:]))
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready within {timeout} s")
            time.sleep(poll)

    def wait(self, timeout: float = DEADLINE) -> Tuple[int, str, str]:
        """Exit status, stdout and stderr once the child has ended (killed after ``timeout`` s, failing the test)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the command did not end within {timeout} s: " + "\n".join(self.stderr[-20:]))
        for reader in self._readers:
            reader.join(timeout=30)
        return self.process.returncode, "\n".join(self.stdout) + "\n", "\n".join(self.stderr) + "\n"

    def interrupt(self, timeout: float = DEADLINE) -> Tuple[int, str, str]:
        """Send SIGINT (the child must still run) and wait for the end: exit status, stdout, stderr."""
        assert self.process.poll() is None, "the command ended before the interrupt: " + "\n".join(self.stderr[-20:])
        self.process.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def interrupt_at(self, seconds: float, timeout: float = DEADLINE) -> Tuple[int, str, str]:
        """SIGINT ``seconds`` after the start (a probe of whatever the command is doing then), then wait."""
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))
        return self.interrupt(timeout)

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start(*arguments: str, env: Optional[Dict[str, str]] = None) -> Child:
    """``python -m openmm_ani <arguments>`` (or ``arguments`` as a command line if the first is a path)."""
    command = list(arguments) if arguments and os.path.isabs(arguments[0]) else [sys.executable, "-m", "openmm_ani", *arguments]
    return Child(command, env=env)
