"""Ctrl-C for long free-energy runs: stop within about a second, or now on a second Ctrl-C.

With the ANI force in openmm-torch's C++ ``TorchForce`` no Python runs inside an MD step, so
Python's ``KeyboardInterrupt`` is raised between OpenMM calls. Raised in the middle of an
openmmtools iteration it would leave the reporter file at its last checkpoint, but it could
also land in the middle of a write; the workflow therefore runs its legs under
:func:`openmm_ani.interrupts.deferred_interrupts`, whose first SIGINT is a request the MD polls
between chunks of steps (:func:`openmm_ani.freeenergy.md.run_steps`, about every
:data:`~openmm_ani.freeenergy.md.POLL_INTERVAL_S`), and the loops after every iteration and
switch. The MD then raises :class:`Stopped`; the loops save what is complete and raise
``KeyboardInterrupt``: replica exchange resumes from its last checkpoint (the iterations since
are redone), an interrupted switch is discarded and redone. A second SIGINT raises at once.
The physics of a run never depends on when it was interrupted: a resumed run continues from
saved states.

Under MPI every rank receives the signal; :func:`stop_requested` combines the ranks' flags
so that all ranks stop at the same point, and the MD of a rank is not stopped on its own.
"""

from typing import Callable

#: A callable telling a loop to stop at its next safe point (e.g. an
#: :class:`openmm_ani.interrupts.InterruptRequest`).
StopFlag = Callable[[], bool]

#: What the workflow logs on the first Ctrl-C.
NOTICE = "interrupt: stopping after the MD steps under way (press Ctrl-C again to stop now)"


class Stopped(KeyboardInterrupt):
    """Raised between two chunks of MD steps when the stop flag is set (a ``KeyboardInterrupt``:
    openmmtools' retry on ``Exception`` lets it through, and uncaught it ends the program like Ctrl-C)."""


def never() -> bool:
    """The stop flag of a run without an interrupt handler."""
    return False


def stop_requested(flag: StopFlag) -> bool:
    """``flag()`` on any MPI rank (all ranks get the same answer; a collective call under MPI)."""
    from .mpi import any_rank

    return any_rank(bool(flag()))
