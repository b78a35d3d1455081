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
uncertainty reaches the target or the time budget is spent. pymbar's BAR gives the free energy
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
from .interrupt import StopFlag, never, stop_requested
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
                 rank: int, done: int, record_atoms: Sequence[int] = ()) -> None:
        self.settings = settings
        self.record_atoms = [int(i) for i in record_atoms]
        #: ligand positions and box (nm) of the latest reverse switch's start (with record_atoms)
        self.reverse_start: Optional[Dict[str, Any]] = None
        self.integrator, self.switches = _integrator(settings, settings.seed + 7919 * (rank + 1) + 13 * done)
        platform = settings.platform
        self.context = (openmm.Context(system, self.integrator, openmm.Platform.getPlatformByName(platform)) if platform
                        else openmm.Context(system, self.integrator))
        self.paths = {name: f"{store}.{name}.rank{rank}.xml" if store else None for name, _, _ in DIRECTIONS}
        self.states: Dict[str, openmm.State] = {}
        for name, lam, _ in DIRECTIONS:
            path = self.paths[name]
            if path and os.path.exists(path):
                with open(path) as stream:
                    self.states[name] = openmm.XmlSerializer.deserialize(stream.read())
                continue
            if box_vectors is not None:
                self.context.setPeriodicBoxVectors(*box_vectors)
            self.context.setPositions(positions)
            self.context.setParameter(LAMBDA_PARAMETER, lam)
            self.context.setVelocitiesToTemperature(settings.temperature, settings.seed + 31 * rank + int(lam))
            self.integrator.setCurrentIntegrator(0)
            self.integrator.step(settings.equilibration_steps)
            self.states[name] = self.context.getState(getPositions=True, getVelocities=True)

    def switch(self, name: str, lam: float, index: int) -> float:
        """Advance the chain, switch from its new configuration, return the work (kT)."""
        self.context.setState(self.states[name])
        self.context.setParameter(LAMBDA_PARAMETER, lam)
        self.integrator.setCurrentIntegrator(0)
        self.integrator.step(self.settings.steps_between_switches)
        self.states[name] = self.context.getState(getPositions=True, getVelocities=True)
        if name == "reverse" and self.record_atoms:
            self.reverse_start = _start_sample(self.states[name], self.record_atoms)
        neq = self.switches[index - 1]
        self.integrator.setCurrentIntegrator(index)
        neq.setGlobalVariableByName("step", 0)  # step 0 resets the protocol work and lambda
        self.integrator.step(self.settings.switching_steps)
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
        Wall-clock budget of this call, s (checked after each block).
    stop
        Polled after each switch; when true the run saves and raises ``KeyboardInterrupt``.
    record_atoms
        Atoms (the ligand) whose positions at each reverse switch's start go into ``store``.

    Returns
    -------
    SwitchingResult or None
        On MPI rank 0; ``None`` on other ranks.
    """
    import mpiplus
    from tqdm import tqdm

    settings.validate()
    if settings.n_switches < 1:
        raise ValueError("n_switches must be at least 1 for the switching leg")
    comm = mpiplus.get_mpicomm()
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    works = _load(store)
    if comm is not None and size > 1:
        works = comm.bcast(works, root=0)
    starts = _load_starts(store, len(works["reverse"])) if rank == 0 else []
    start = time.monotonic()
    chains: Optional[_Chains] = None
    bar = tqdm(total=settings.n_switches, initial=min(len(works["forward"]), len(works["reverse"])), desc=description,
               disable=not (progress and rank == 0))
    interrupted = False
    while min(len(works["forward"]), len(works["reverse"])) < settings.n_switches:
        # checked before each block, so that a resumed run whose target is already met runs no switch
        if _target_met(works, target_error_kt, settings.seed, description):
            break
        block = min(settings.check_interval, settings.n_switches - min(len(v) for v in works.values()))
        mine = block // size + (1 if rank < block % size else 0)
        local: Dict[str, List[Any]] = {"forward": [], "reverse": [], "starts": []}
        if chains is None:  # built only when there are switches to run (a Context loads the TorchForce)
            chains = _Chains(system, positions, box_vectors, settings, store, rank, len(works["forward"]), record_atoms)
        for _ in range(mine):
            for name, lam, index in DIRECTIONS:
                local[name].append(chains.switch(name, lam, index))
            local["starts"].append(chains.reverse_start)
            if size == 1:
                bar.update(1)
            # one process: stop between switch pairs (under MPI the ranks agree after each block)
            if size == 1 and (stop() or (max_time_s is not None and time.monotonic() - start >= max_time_s)):
                break
        chains.save()
        parts = [local] if comm is None or size == 1 else comm.allgather(local)
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
        if max_time_s is not None and _agree(comm, time.monotonic() - start >= max_time_s):
            break
    bar.close()
    del chains
    if interrupted:
        raise KeyboardInterrupt
    if rank != 0:
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


def _agree(comm: Any, value: bool) -> bool:
    """Rank 0's ``value`` on every rank."""
    return value if comm is None or comm.size == 1 else bool(comm.bcast(value, root=0))
