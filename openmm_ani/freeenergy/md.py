"""The one place :mod:`openmm_ani.freeenergy` builds an OpenMM Context, and MD that stops within a second.

:func:`make_context` builds every Context of the free-energy code (minimisation, start file,
pilot, switching chains); replica exchange gets its platform from :func:`platform` for
openmmtools' ``ContextCache``, which builds that Context itself.

:func:`run_steps` replaces ``integrator.step(n)``: it steps in chunks and polls a stop flag
between them, raising :class:`~.interrupt.Stopped` when it is set. ``integrator.step(a)``
followed by ``integrator.step(b)`` is the same trajectory as ``integrator.step(a + b)``, so the
chunking never changes a run; a chunk is sized from the previous one to last about
:data:`POLL_INTERVAL_S`, which bounds how long the first Ctrl-C waits for the MD under way.
"""

import time
from typing import Any, Optional

import openmm

from .interrupt import StopFlag, Stopped, never

#: Wall time one chunk of MD steps aims at (s): the longest wait of the stop flag, about.
POLL_INTERVAL_S = 0.5
#: Steps of the first chunk of a call, and the most steps of any chunk.
FIRST_CHUNK_STEPS, MAX_CHUNK_STEPS = 10, 1000


def platform(name: Optional[str]) -> Optional[openmm.Platform]:
    """The OpenMM Platform called ``name``; ``None`` (OpenMM picks the fastest) for ``None`` or ``""``."""
    return openmm.Platform.getPlatformByName(name) if name else None


def make_context(system: openmm.System, integrator: openmm.Integrator, platform_name: Optional[str] = None,
                 positions: Any = None, box_vectors: Any = None) -> openmm.Context:
    """A Context of ``system`` on the platform called ``platform_name`` (OpenMM's choice when ``None``).

    Parameters
    ----------
    system, integrator
        What the Context simulates, and how (the Context takes the integrator).
    platform_name
        ``"Reference"``, ``"CPU"``, ``"CUDA"``, ``"OpenCL"`` or ``None``.
    positions, box_vectors
        Set on the new Context when given (box vectors first).
    """
    chosen = platform(platform_name)
    context = openmm.Context(system, integrator) if chosen is None else openmm.Context(system, integrator, chosen)
    if box_vectors is not None:
        context.setPeriodicBoxVectors(*box_vectors)
    if positions is not None:
        context.setPositions(positions)
    return context


def run_steps(integrator: openmm.Integrator, n_steps: int, stop: StopFlag = never) -> None:
    """``integrator.step(n_steps)`` in chunks, polling ``stop`` before each one.

    Raises
    ------
    Stopped
        When ``stop()`` is true before a chunk; the steps done until then stay done.
    """
    done, chunk = 0, FIRST_CHUNK_STEPS
    while done < n_steps:
        if stop():
            raise Stopped(f"stopped after {done} of {n_steps} MD steps")
        steps = min(chunk, n_steps - done)
        started = time.perf_counter()
        integrator.step(steps)
        done += steps
        elapsed = time.perf_counter() - started
        # at most double the chunk each time, and keep it near POLL_INTERVAL_S of MD
        chunk = max(1, min(2 * steps, MAX_CHUNK_STEPS, int(steps * POLL_INTERVAL_S / max(elapsed, 1e-9))))


class ChunkedIntegrator:
    """An integrator whose ``step(n)`` is :func:`run_steps` (``stop`` polled between chunks); the rest is the integrator's.

    openmmtools' moves call ``integrator.step(n_steps)`` on what their ``ContextCache`` hands
    them; :class:`openmm_ani.freeenergy.equilibrium` hands them this wrapper.
    """

    def __init__(self, integrator: openmm.Integrator, stop: StopFlag) -> None:
        self._integrator = integrator
        self._stop = stop

    def step(self, n_steps: int) -> None:
        run_steps(self._integrator, int(n_steps), self._stop)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._integrator, name)
