"""The time budget on a clock that advances with the MD: iterations, switches and pilot samples it allows.

Every MD step of the runs below costs exactly 1/8 s on :class:`StepClock` (the free-energy code
runs its MD through ``run_steps``, which the tests wrap to advance the clock), so the numbers of
iterations, switches and pilot samples a budget allows follow by hand, and no assertion depends
on the speed of the machine. The system is the analytic one of test_freeenergy (two particles
in wells whose stiffness lambda interpolates), on the Reference platform.
"""

import numpy as np
import openmm
import pytest
from openmm import unit

import openmm_ani.freeenergy.md as md
import openmm_ani.freeenergy.schedule as schedule
import openmm_ani.freeenergy.switching as switching
from openmm_ani.freeenergy.budget import ANALYSIS_TIME_FRACTION, PILOT_TIME_FRACTION, LegBudget
from openmm_ani.freeenergy.equilibrium import run_replica_exchange
from openmm_ani.freeenergy.schedule import pilot_schedule
from openmm_ani.freeenergy.settings import ProtocolSettings
from openmm_ani.freeenergy.switching import run_switching

#: Seconds per MD step on the test clock (a binary fraction: the sums below are exact).
STEP_S = 0.125
#: Steps of one chunk of MD on the test clock (1 s).
CHUNK = 8
POSITIONS = np.full((2, 3), 0.01) * unit.nanometer


class StepClock:
    """A clock that only advances when :meth:`advance` is called."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> StepClock:
    """A StepClock advanced by STEP_S for every MD step that pilot, replica exchange or switching runs.

    The MD runs in chunks of CHUNK steps, the stop flag polled before each (as md.run_steps does).
    """
    clock = StepClock()
    original = md.run_steps

    def counted(integrator, n_steps, stop=md.never):
        for done in range(0, n_steps, CHUNK):
            if stop():
                raise md.Stopped
            steps = min(CHUNK, n_steps - done)
            original(integrator, steps)
            clock.advance(steps * STEP_S)

    for module in (md, schedule, switching):
        monkeypatch.setattr(module, "run_steps", counted)
    return clock


def system() -> openmm.System:
    s = openmm.System()
    r2 = openmm.CustomExternalForce("x^2+y^2+z^2")
    for i in range(2):
        s.addParticle(10.0)
        r2.addParticle(i, [])
    force = openmm.CustomCVForce("0.5*(200 + lambda_interpolate*600)*r2")
    force.addCollectiveVariable("r2", r2)
    force.addGlobalParameter("lambda_interpolate", 1.0)
    force.addEnergyParameterDerivative("lambda_interpolate")
    s.addForce(force)
    return s


def settings(**overrides) -> ProtocolSettings:
    values = dict(schedule="equal", n_states=3, n_iterations=100, steps_per_iteration=8, timestep_fs=10.0, collision_rate_per_ps=10.0,
                  temperature_k=300.0, n_switches=100, switching_steps=8, equilibration_steps=8, steps_between_switches=8,
                  platform="Reference", minimize=False, check_interval=5, n_bootstrap=0, seed=3)
    values.update(overrides)
    return ProtocolSettings(**values)


def iterations(path) -> int:
    from openmmtools import multistate

    reporter = multistate.MultiStateReporter(str(path), open_mode="r")
    try:
        return int(reporter.read_last_iteration(last_checkpoint=False))
    finally:
        reporter.close()


def test_replica_exchange_stops_at_the_last_checkpoint_that_fits(tmp_path, clock):
    # an iteration: 3 replicas x 8 steps = 3 s. At the checkpoint of iteration 5 (15 s) the next
    # one (30 s) fits 40 s; at iteration 10 the next (45 s) does not: it stops there, under budget.
    run_replica_exchange(system(), POSITIONS, settings(), str(tmp_path / "re.nc"), progress=False, max_time_s=40.0, clock=clock)
    assert iterations(tmp_path / "re.nc") == 10 and clock.now == 30.0


def test_replica_exchange_overruns_by_one_iteration_at_most(tmp_path, clock):
    # no checkpoint before 50 iterations: it stops after the iteration that spends the budget (42 s >= 40 s)
    run_replica_exchange(system(), POSITIONS, settings(check_interval=50), str(tmp_path / "re.nc"), progress=False, max_time_s=40.0,
                         clock=clock)
    assert iterations(tmp_path / "re.nc") == 14 and 40.0 <= clock.now < 40.0 + 3.0
    # a budget already spent (the pilot overran it) still runs one iteration
    clock.now = 0.0
    run_replica_exchange(system(), POSITIONS, settings(check_interval=50), str(tmp_path / "late.nc"), progress=False,
                         max_time_s=-5.0, clock=clock)
    assert iterations(tmp_path / "late.nc") == 1


@pytest.mark.parametrize("budget, expected", [(29.0, 6), (31.0, 7)])
def test_switching_starts_no_pair_it_expects_past_the_budget(tmp_path, clock, budget, expected):
    # chains: 2 x 8 equilibration steps = 2 s; a pair: 2 x (8 + 8) steps = 4 s, the k-th ending at 2 + 4 k
    store = str(tmp_path / "switching.json")
    result = run_switching(system(), POSITIONS, settings(), progress=False, store=store, max_time_s=budget, clock=clock)
    assert len(result.forward_work) == len(result.reverse_work) == expected
    assert clock.now == 2.0 + 4.0 * expected <= budget
    # a rerun whose budget is spent before it starts builds no chains and runs no switch
    clock.now = 0.0
    again = run_switching(system(), POSITIONS, settings(), progress=False, store=store, max_time_s=-1.0, clock=clock)
    assert again.forward_work == result.forward_work and clock.now == 0.0


def test_chain_equilibration_cut_by_the_budget_is_continued_by_the_next_call(tmp_path, clock):
    # 40 equilibration steps (5 s) per chain: the forward chain ends at 5 s, the reverse one stops at 7 s
    # after 16 steps; no switch runs, and the part-equilibrated chains are saved
    store = str(tmp_path / "switching.json")
    assert run_switching(system(), POSITIONS, settings(equilibration_steps=40, n_switches=3), progress=False, store=store,
                         max_time_s=7.0, clock=clock) is None
    assert clock.now == 7.0
    with open(f"{store}.reverse.rank0.xml") as stream:
        assert openmm.XmlSerializer.deserialize(stream.read()).getStepCount() == 16
    # the next call runs the reverse chain's 24 missing steps (3 s), then 3 pairs of 4 s
    clock.now = 0.0
    result = run_switching(system(), POSITIONS, settings(equilibration_steps=40, n_switches=3), progress=False, store=store,
                           max_time_s=100.0, clock=clock)
    assert len(result.forward_work) == 3 and clock.now == 3.0 + 3 * 4.0


def test_pilot_is_shortened_evenly_to_its_share(clock):
    # each of 3 pilot lambdas gets 30 s / 3 = 10 s: equilibration 10 s x 16 / 176 -> one piece of 8 steps (1 s),
    # then samples of 8 steps (1 s) until 10 s are spent: 9 samples of the 20 asked for
    pilot = settings(schedule="auto", pilot_lambdas=[0.0, 0.5, 1.0], pilot_samples=20, pilot_steps_per_sample=8,
                     pilot_equilibration_steps=16)
    result = pilot_schedule(system(), POSITIONS, pilot, progress=False, max_time_s=30.0, clock=clock)
    assert result.pilot_samples_taken == [9, 9, 9] and result.pilot_equilibration_taken == [8, 8, 8]
    assert result.pilot_shortened and result.pilot_steps == 3 * (8 + 9 * 8) and clock.now == 30.0
    full = pilot_schedule(system(), POSITIONS, pilot, progress=False, clock=StepClock())
    assert full.pilot_samples_taken == [20, 20, 20] and not full.pilot_shortened


def test_leg_budget_shares():
    clock = StepClock()
    budget = LegBudget(100.0, 0.5, switching=True, clock=clock)
    assert budget.pilot_s() == PILOT_TIME_FRACTION * 100.0
    clock.advance(30.0)  # set-up and pilot overran their 20 s: the sampling time left is shared
    sampling_left = 100.0 * (1 - ANALYSIS_TIME_FRACTION) - 30.0
    assert budget.equilibrium_s() == pytest.approx(0.5 * sampling_left) and budget.switching_s() == pytest.approx(sampling_left)
    assert LegBudget(100.0, 0.5, switching=False, clock=clock).equilibrium_s() == pytest.approx(100.0 * (1 - ANALYSIS_TIME_FRACTION))
    # an earlier call's analysis took 25 s: that much is held back (at most half the budget)
    assert LegBudget(100.0, 0.5, True, analysis_s=25.0, clock=clock).analysis_reserve_s == 25.0
    assert LegBudget(100.0, 0.5, True, analysis_s=80.0, clock=clock).analysis_reserve_s == 50.0
    unlimited = LegBudget(None, 0.5, True, clock=clock)
    assert unlimited.pilot_s() is None and unlimited.equilibrium_s() is None and unlimited.switching_s() is None


def test_md_chunks_do_not_change_the_trajectory():
    """run_steps's chunks give the trajectory of one integrator.step (which is why a chunk's size may follow the clock)."""
    states = []
    for chunked in (False, True):
        integrator = openmm.LangevinMiddleIntegrator(300.0, 10.0, 0.01)
        integrator.setRandomNumberSeed(5)
        context = md.make_context(system(), integrator, "Reference", POSITIONS)
        context.setVelocitiesToTemperature(300.0, 5)
        md.run_steps(integrator, 257) if chunked else integrator.step(257)
        states.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    np.testing.assert_array_equal(states[0], states[1])


def test_run_steps_stops_between_chunks():
    integrator = openmm.VerletIntegrator(0.001)
    context = md.make_context(system(), integrator, "Reference", POSITIONS)
    polls = []

    def stop() -> bool:
        polls.append(context.getStepCount())
        return len(polls) > 2

    with pytest.raises(md.Stopped):
        md.run_steps(integrator, 10**6, stop)
    assert polls[0] == 0 and 0 < polls[1] < polls[2] == context.getStepCount() < 10**6  # stopped at the third poll
