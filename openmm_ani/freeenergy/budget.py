"""The wall-clock budget of one leg in one call (``max_time_s``, ``fe-correct --max-time``).

The budget runs from the start of :func:`~openmm_ani.freeenergy.workflow.run_leg` and covers
everything the leg does in that call: building the ML/MM System, minimising the start, the
pilot, the replica-exchange and switching Contexts and their MD, the analysis (MBAR, TI, BAR's
bootstrap, the model uncertainty, the plots). It is shared out as

* set-up and pilot: until :data:`PILOT_TIME_FRACTION` of the budget has passed; the pilot
  shortens each pilot window's equilibration and sampling evenly to fit (at least
  :data:`~openmm_ani.freeenergy.schedule.MIN_PILOT_SAMPLES` samples each) and says so in
  ``schedule.json``;
* the analysis: the last :data:`ANALYSIS_TIME_FRACTION` of the budget, or the analysis time an
  earlier call of the leg measured if that is longer (at most half the budget);
* sampling, the rest: replica exchange until ``equilibrium_time_fraction`` of it has passed
  when switching runs too, switching until its end.

Each part checks the clock after every iteration or switch and does not start a switch it
expects to end past its deadline; the switching chains' end-state equilibration stops at the
deadline and is continued by the next call. So a leg overruns its budget by at most one
iteration or one switch (and the part of the pilot's minimum that did not fit). Replica exchange also
stops at a checkpoint when the next checkpoint would fall past its deadline: a rerun resumes
from a checkpoint, so the iterations after the last one would be run twice.

The clock is a parameter (``time.monotonic`` by default) so that tests can run a leg on a
clock that advances with the MD steps and check the iterations and switches it allows.
"""

import time
from typing import Callable, Optional

#: A clock in seconds (monotonic; only differences are used).
Clock = Callable[[], float]

#: Share of the budget for building the System, minimising and the pilot.
PILOT_TIME_FRACTION = 0.2
#: Share of the budget kept for the analysis when no earlier call measured it for longer.
ANALYSIS_TIME_FRACTION = 0.1
#: The largest share of the budget the analysis reserve may take.
MAX_ANALYSIS_FRACTION = 0.5


class LegBudget:
    """The deadlines of one leg's parts in one call.

    Parameters
    ----------
    total_s
        The budget, s; ``None``: no limit (every deadline is ``None``).
    equilibrium_fraction
        Share of the sampling time for replica exchange when switching runs too.
    switching
        Whether the leg runs switching after replica exchange.
    analysis_s
        The analysis time an earlier call measured, s (0 when none).
    clock
        The clock; it starts the budget when the object is made.
    """

    def __init__(self, total_s: Optional[float], equilibrium_fraction: float, switching: bool, analysis_s: float = 0.0,
                 clock: Clock = time.monotonic) -> None:
        self.total_s = total_s
        self.clock = clock
        self.started = clock()
        self.equilibrium_fraction = equilibrium_fraction
        self.switching = switching
        self.analysis_reserve_s = 0.0 if total_s is None else min(max(ANALYSIS_TIME_FRACTION * total_s, analysis_s),
                                                                  MAX_ANALYSIS_FRACTION * total_s)

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return self.clock() - self.started

    def _left_until(self, end_s: float) -> float:
        return end_s - self.elapsed()

    def pilot_s(self) -> Optional[float]:
        """Seconds left for set-up and the pilot (may be negative), or ``None`` without a budget."""
        return None if self.total_s is None else self._left_until(PILOT_TIME_FRACTION * self.total_s)

    def sampling_end_s(self) -> float:
        """When sampling must end, s after the start (the analysis reserve before the end of the budget)."""
        assert self.total_s is not None
        return self.total_s - self.analysis_reserve_s

    def equilibrium_s(self) -> Optional[float]:
        """Seconds for replica exchange from now: its share of the sampling time left, or ``None``."""
        if self.total_s is None:
            return None
        left = self._left_until(self.sampling_end_s())
        return left * self.equilibrium_fraction if self.switching else left

    def switching_s(self) -> Optional[float]:
        """Seconds for switching from now (the sampling time left), or ``None``."""
        return None if self.total_s is None else self._left_until(self.sampling_end_s())
