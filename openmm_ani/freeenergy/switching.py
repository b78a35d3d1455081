"""Nonequilibrium switching between MM (lambda 0) and ML/MM (lambda 1), and BAR.

Start configurations come from Langevin MD chains at each end state; each switch changes
``lambda_interpolate`` linearly over ``switching_steps`` steps with openmmtools'
``AlchemicalNonequilibriumLangevinIntegrator``, which accumulates the protocol work, and the
chain then continues from the configuration the switch started from. One Context per process
holds a ``CompoundIntegrator`` (end-state MD, forward switch, reverse switch), so the ANI
``TorchForce`` is loaded once.

Switches are independent: under ``mpirun`` every rank runs its share with its own chains and
seeds, and rank 0 gathers the work values. The run goes in blocks of ``check_interval``
switches per direction; after each block the work values and every rank's chain states are
saved (``store``), so a rerun continues where it stopped, and the run stops early once the BAR
uncertainty reaches the target or the time budget is spent (checked before each switch pair). pymbar's BAR gives the free energy
(bootstrap uncertainty); forward and reverse Jarzynski estimates are diagnostics.

With ``record_atoms`` (the ligand) the store also keeps, for each reverse switch, the positions
of those atoms (nm) and the box (nm) of its lambda = 1 start configuration (``reverse_starts``,
``null`` for switches of a store written without them): equilibrium samples of the ML/MM end
state, used by :mod:`openmm_ani.freeenergy.model_uncertainty`.
"""

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import openmm

from ..files import write_text
from ..openmm.embedding import LAMBDA_PARAMETER
from .analysis import MIN_EFFECTIVE
from .budget import Clock
from .interrupt import StopFlag, Stopped, never, stop_requested
from .md import make_context, run_steps
from .mpi import any_rank, broadcast, gather_all, rank_and_size
from .settings import ProtocolSettings

logger = logging.getLogger(__name__)

#: Directions: name, start lambda, index in the CompoundIntegrator.
DIRECTIONS: Tuple[Tuple[str, float, int], ...] = (("forward", 0.0, 1), ("reverse", 1.0, 2))


@dataclass
class SwitchingResult:
    """Work values (kT) and free-energy estimates (kT) of one leg.

    Attributes
    ----------
    forward_work, reverse_work
        Protocol work of the MM -> ML/MM and ML/MM -> MM switches, kT.
    bar_delta_f_kt, bar_d_delta_f_kt
        BAR estimate and its bootstrap standard error.
    bar_analytic_d_delta_f_kt
        pymbar's asymptotic BAR uncertainty.
    jarzynski_forward_kt, jarzynski_reverse_kt
        Exponential averages of the forward work and of minus the reverse work.
    """

    forward_work: List[float]
    reverse_work: List[float]
    bar_delta_f_kt: float
    bar_d_delta_f_kt: float
    bar_analytic_d_delta_f_kt: float
    jarzynski_forward_kt: float
    jarzynski_reverse_kt: float

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def bar_estimate(forward_work: np.ndarray, reverse_work: np.ndarray, n_bootstrap: int, seed: int) -> Tuple[float, float, float]:
    """BAR free energy (kT) with bootstrap and analytic uncertainties (pymbar).

    Parameters
    ----------
    forward_work, reverse_work
        Work values of the forward and reverse switches, kT.
    n_bootstrap
        Bootstrap resamples (0: the bootstrap error is NaN).
    seed
        Random seed of the bootstrap.

    Returns
    -------
    (delta_f, bootstrap_error, analytic_error)
    """
    from pymbar import other_estimators

    forward_work = np.asarray(forward_work, dtype=float)
    reverse_work = np.asarray(reverse_work, dtype=float)
    constant = forward_work.mean()
    if np.allclose(forward_work, constant, rtol=0, atol=1e-8) and np.allclose(reverse_work, -constant, rtol=0, atol=1e-8):
        # Deterministic work (the end states differ by a constant): BAR's solution is that
        # constant with no error; pymbar's bracketing solver cannot handle zero variance.
        return float(constant), 0.0, 0.0
    with warnings.catch_warnings():
        # Too few work values give a negative asymptotic variance: numpy warns on its sqrt and the
        # analytic error is NaN, which the convergence verdict reports (too few switches).
        warnings.simplefilter("ignore", RuntimeWarning)
        result = other_estimators.bar(forward_work, reverse_work, uncertainty_method="BAR")
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(n_bootstrap):
        f = rng.choice(forward_work, size=forward_work.size, replace=True)
        r = rng.choice(reverse_work, size=reverse_work.size, replace=True)
        estimates.append(other_estimators.bar(f, r, compute_uncertainty=False)["Delta_f"])
    bootstrap = float(np.std(estimates, ddof=1)) if len(estimates) > 1 else float("nan")
    return float(result["Delta_f"]), bootstrap, float(result["dDelta_f"])


def summarize(forward: List[float], reverse: List[float], n_bootstrap: int, seed: int) -> SwitchingResult:
    """BAR and Jarzynski estimates of the work values (kT)."""
    from pymbar import other_estimators

    f, r = np.asarray(forward, dtype=float), np.asarray(reverse, dtype=float)
    delta_f, bootstrap, analytic = bar_estimate(f, r, n_bootstrap, seed)
    jf = float(other_estimators.exp(f, compute_uncertainty=False)["Delta_f"])
    jr = -float(other_estimators.exp(r, compute_uncertainty=False)["Delta_f"])
    return SwitchingResult(forward_work=f.tolist(), reverse_work=r.tolist(), bar_delta_f_kt=delta_f, bar_d_delta_f_kt=bootstrap,
                           bar_analytic_d_delta_f_kt=analytic, jarzynski_forward_kt=jf, jarzynski_reverse_kt=jr)


def _integrator(settings: ProtocolSettings, seed: int) -> Tuple[openmm.CompoundIntegrator, List[Any]]:
    """End-state Langevin MD (0), forward switch (1), reverse switch (2), and the two switching integrators."""
    from openmmtools.integrators import AlchemicalNonequilibriumLangevinIntegrator

    compound = openmm.CompoundIntegrator()
    md = openmm.LangevinMiddleIntegrator(settings.temperature, settings.collision_rate, settings.timestep)
    md.setRandomNumberSeed(seed)
    compound.addIntegrator(md)
    switches = []
    for k, expression in enumerate(("lambda", "1 - lambda")):
        neq = AlchemicalNonequilibriumLangevinIntegrator(
            alchemical_functions={LAMBDA_PARAMETER: expression}, splitting="O V R H R V O", nsteps_neq=settings.switching_steps,
            temperature=settings.temperature, collision_rate=settings.collision_rate, timestep=settings.timestep,
        )
        neq.setRandomNumberSeed(seed + 1 + k)
        compound.addIntegrator(neq)
        switches.append(neq)
    return compound, switches


class _Chains:
    """One process's Context and its two end-state MD chains (saved as OpenMM State XML)."""

    def __init__(self, system: openmm.System, positions: Any, box_vectors: Any, settings: ProtocolSettings, store: Optional[str],
                 rank: int, done: int, record_atoms: Sequence[int] = (), stop: StopFlag = never,
                 out_of_time: StopFlag = never) -> None:
        self.settings = settings
        #: polled between chunks of MD steps (raises Stopped; a chain's state is replaced only after its MD)
        self.stop = stop
        self.record_atoms = [int(i) for i in record_atoms]
        #: ligand positions and box (nm) of the latest reverse switch's start (with record_atoms)
        self.reverse_start: Optional[Dict[str, Any]] = None
        self.integrator, self.switches = _integrator(settings, settings.seed + 7919 * (rank + 1) + 13 * done)
        self.context = make_context(system, self.integrator, settings.platform)
        self.paths = {name: f"{store}.{name}.rank{rank}.xml" if store else None for name, _, _ in DIRECTIONS}
        self.states: Dict[str, openmm.State] = {}
        # A chain's state counts its steps (OpenMM's step count, 0 at the start of its equilibration): one
        # whose equilibration the time budget cut short is saved as it is and continued by the next call.
        self.ready = True
        for name, lam, _ in DIRECTIONS:
            path = self.paths[name]
            if path and os.path.exists(path):
                with open(path) as stream:
                    self.states[name] = openmm.XmlSerializer.deserialize(stream.read())
                if self.states[name].getStepCount() >= settings.equilibration_steps:
                    continue
                self.context.setState(self.states[name])
            else:
                if box_vectors is not None:
                    self.context.setPeriodicBoxVectors(*box_vectors)
                self.context.setPositions(positions)
                self.context.setParameter(LAMBDA_PARAMETER, lam)
                self.context.setVelocitiesToTemperature(settings.temperature, settings.seed + 31 * rank + int(lam))
                self.context.setStepCount(0)
            self.integrator.setCurrentIntegrator(0)
            try:
                run_steps(self.integrator, settings.equilibration_steps - self.context.getStepCount(), lambda: stop() or out_of_time())
            except Stopped:
                if stop():
                    raise
                self.ready = False  # out of time: saved part-equilibrated
            self.states[name] = self.context.getState(getPositions=True, getVelocities=True)

    def switch(self, name: str, lam: float, index: int) -> float:
        """Advance the chain, switch from its new configuration, return the work (kT)."""
        self.context.setState(self.states[name])
        self.context.setParameter(LAMBDA_PARAMETER, lam)
        self.integrator.setCurrentIntegrator(0)
        run_steps(self.integrator, self.settings.steps_between_switches, self.stop)
        self.states[name] = self.context.getState(getPositions=True, getVelocities=True)
        if name == "reverse" and self.record_atoms:
            self.reverse_start = _start_sample(self.states[name], self.record_atoms)
        neq = self.switches[index - 1]
        self.integrator.setCurrentIntegrator(index)
        neq.setGlobalVariableByName("step", 0)  # step 0 resets the protocol work and lambda
        run_steps(self.integrator, self.settings.switching_steps, self.stop)  # Stopped: this switch is discarded
        return float(neq.get_protocol_work(dimensionless=True))

    def save(self) -> None:
        for name, _, _ in DIRECTIONS:
            if self.paths[name]:
                write_text(self.paths[name], openmm.XmlSerializer.serialize(self.states[name]))


def _start_sample(state: openmm.State, atoms: List[int]) -> Dict[str, Any]:
    """Positions of ``atoms`` and the box vectors of ``state`` (nm; the box is used for periodic systems only), for JSON."""
    from openmm import unit

    positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)[atoms]
    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
    return {"positions_nm": np.round(positions, 8).tolist(), "box_nm": np.round(box, 8).tolist()}


def _load_starts(store: Optional[str], n_reverse: int) -> List[Optional[Dict[str, Any]]]:
    """The stored reverse-switch starts, ``None`` for each switch of an older store that has none."""
    starts: List[Optional[Dict[str, Any]]] = []
    if store and os.path.exists(store):
        with open(store) as stream:
            starts = list(json.load(stream).get("reverse_starts", []))
    return [None] * (n_reverse - len(starts)) + starts[:n_reverse]


def _load(store: Optional[str]) -> Dict[str, List[float]]:
    if store and os.path.exists(store):
        with open(store) as stream:
            data = json.load(stream)
        return {"forward": list(data["forward_work"]), "reverse": list(data["reverse_work"])}
    return {"forward": [], "reverse": []}


def run_switching(
    system: openmm.System,
    positions: Any,
    settings: ProtocolSettings,
    box_vectors: Optional[Any] = None,
    progress: bool = True,
    description: str = "switching",
    store: Optional[str] = None,
    target_error_kt: Optional[float] = None,
    max_time_s: Optional[float] = None,
    stop: StopFlag = never,
    record_atoms: Sequence[int] = (),
    clock: Clock = time.monotonic,
) -> Optional[SwitchingResult]:
    """Forward and reverse nonequilibrium switches (resumable, over MPI ranks) and their BAR estimate.

    Parameters
    ----------
    system
        An interpolating System (``lambda_interpolate``).
    positions
        Initial positions (Quantity or nm).
    settings
        Protocol settings (``n_switches`` per direction is the limit, ``switching_steps`` ...).
    box_vectors
        Initial box vectors of a periodic system.
    progress
        Show a progress bar (rank 0).
    description
        Label of the progress bar.
    store
        JSON file of the work values so far (with ``<store>.<direction>.rank<r>.xml`` chain
        states beside it); continued when present, rewritten after every block. ``None``: keep
        nothing.
    target_error_kt
        Stop once the BAR (analytic) uncertainty is at most this (kT), after at least 10
        switches per direction.
    max_time_s
        Wall-clock budget of this call, s, on ``clock``: no switch pair starts that is expected
        to end past it (the first of a call always does, once the chains are equilibrated), and
        the chains' equilibration stops at it (saved part-equilibrated, continued by the next
        call), so the run overruns it by one switch at most.
    stop
        Polled between chunks of MD steps (one process) and after each block; when true the
        run saves the completed switches (the one under way is discarded) and raises
        ``KeyboardInterrupt``.
    record_atoms
        Atoms (the ligand) whose positions at each reverse switch's start go into ``store``.
    clock
        The clock of ``max_time_s``, s.

    Returns
    -------
    SwitchingResult or None
        On MPI rank 0; ``None`` on other ranks.
    """
    from tqdm import tqdm

    settings.validate()
    if settings.n_switches < 1:
        raise ValueError("n_switches must be at least 1 for the switching leg")
    rank, size = rank_and_size()
    works = broadcast(_load(store) if rank == 0 else None)
    starts = _load_starts(store, len(works["reverse"])) if rank == 0 else []
    start = clock()
    chains: Optional[_Chains] = None
    bar = tqdm(total=settings.n_switches, initial=min(len(works["forward"]), len(works["reverse"])), desc=description,
               disable=not (progress and rank == 0))
    interrupted = False
    per_pair: Optional[float] = None  # seconds per forward + reverse switch, measured in this call
    while min(len(works["forward"]), len(works["reverse"])) < settings.n_switches:
        # checked before each block, so that a resumed run whose target is already met runs no switch
        if _target_met(works, target_error_kt, settings.seed, description):
            break
        if chains is None and works["forward"] and max_time_s is not None and clock() - start >= max_time_s:
            logger.info("%s: no time left in this call's budget for new switches (a rerun continues)", description)
            break
        block = min(settings.check_interval, settings.n_switches - min(len(v) for v in works.values()))
        mine = block // size + (1 if rank < block % size else 0)
        local: Dict[str, List[Any]] = {"forward": [], "reverse": [], "starts": []}
        if chains is None:  # built only when there are switches to run (a Context loads the TorchForce)
            # one process: the MD polls the stop flag between chunks of steps (under MPI the ranks agree after each block)
            chains = _Chains(system, positions, box_vectors, settings, store, rank, len(works["forward"]), record_atoms,
                             stop if size == 1 else never, lambda: max_time_s is not None and clock() - start >= max_time_s)
            if any_rank(not chains.ready):  # the budget ended their equilibration: the next call continues it
                chains.save()
                logger.warning("%s: the budget ended the end-state equilibration before any switch (a rerun continues it; "
                               "--max-time or a smaller --equilibration-steps lets switching start)", description)
                break
        for _ in range(mine):
            # each rank alone: no switch pair it expects to end past the budget (at least one per call)
            if max_time_s is not None and per_pair is not None and clock() - start + per_pair > max_time_s:
                break
            began = clock()
            try:
                pair = [chains.switch(name, lam, index) for name, lam, index in DIRECTIONS]
            except Stopped:  # the pair under way is discarded (a rerun redoes it); the completed ones are kept below
                break
            per_pair = clock() - began
            for (name, _, _), work in zip(DIRECTIONS, pair):
                local[name].append(work)
            local["starts"].append(chains.reverse_start)
            if size == 1:
                bar.update(1)
                if stop():  # one process: stop between switch pairs
                    break
        chains.save()
        parts = gather_all(local)
        for part in parts:
            for name in works:
                works[name].extend(part[name])
            starts.extend(part["starts"])
        if rank == 0 and store:
            write_text(store, json.dumps({"forward_work": works["forward"], "reverse_work": works["reverse"], "reverse_starts": starts}))
        if size > 1:
            bar.update(sum(len(p["forward"]) for p in parts))
        if stop_requested(stop):
            interrupted = True
            break
        if max_time_s is not None and broadcast(sum(len(p["forward"]) for p in parts) < block
                                                or clock() - start + (per_pair or 0.0) > max_time_s):
            logger.info("%s: time budget reached after %d switches per direction", description, len(works["forward"]))
            break
    bar.close()
    del chains
    if interrupted:
        raise KeyboardInterrupt
    if rank != 0 or not works["forward"]:
        return None
    return summarize(works["forward"], works["reverse"], settings.n_bootstrap, settings.seed)


def _target_met(works: Dict[str, List[float]], target_error_kt: Optional[float], seed: int, description: str) -> bool:
    """Whether BAR's error of ``works`` is within the target, with at least the verdict's least number of
    switches per direction (:data:`~.analysis.MIN_EFFECTIVE`). Every rank holds the same work values."""
    if target_error_kt is None or min(len(works["forward"]), len(works["reverse"])) < MIN_EFFECTIVE:
        return False
    error = bar_estimate(np.array(works["forward"]), np.array(works["reverse"]), 0, seed)[2]
    if error > target_error_kt:
        return False
    logger.info("%s: BAR error %.3f kT reached the target after %d switches", description, error, len(works["forward"]))
    return True

