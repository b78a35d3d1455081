"""Ctrl-C for long free-energy runs: stop at the next checkpoint, or now on a second Ctrl-C.

With the ANI force in openmm-torch's C++ ``TorchForce`` no Python runs inside an MD step, so
Python's ``KeyboardInterrupt`` is raised between OpenMM calls. Raised in the middle of an
openmmtools iteration it would leave the reporter file at its last checkpoint (still valid,
the iterations since are redone), but it would waste them; the workflow therefore runs its legs
under :func:`openmm_ani.interrupts.deferred_interrupts`, whose first SIGINT is a request the
loops honour at their next checkpoint (replica exchange) or after the current switch
(switching), after which they save and raise ``KeyboardInterrupt``. A second SIGINT raises at
once. The physics of a run never depends on when it was interrupted: a resumed run continues
from saved states.

Under MPI every rank receives the signal; :func:`stop_requested` combines the ranks' flags
so that all ranks stop at the same point.
"""

from typing import Callable

#: A callable telling a loop to stop at its next safe point (e.g. an
#: :class:`openmm_ani.interrupts.InterruptRequest`).
StopFlag = Callable[[], bool]

#: What the workflow logs on the first Ctrl-C (the next checkpoint may be minutes away).
NOTICE = "interrupt: stopping at the next checkpoint (press Ctrl-C again to stop now)"


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
