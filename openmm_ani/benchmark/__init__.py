"""``openmm-ani benchmark``: MD speed (ms/step) of reference systems on the CPU platform, next to openmm-ml.

Cases (:mod:`.systems`, the project's one set of benchmark systems; Langevin, 0.5 fs, OpenMM CPU
platform), by default :data:`~.systems.CPU_CASES`: ``pxylene`` and ``alanine`` in vacuum (pure ANI),
``alanine-water`` (ANI solute in TIP3P water by MM, 2269 atoms) with the MM-only time of the same
system, and the periodic water boxes ``water-255``, ``water-1k``, ``water-3k``, ``water-10k`` (pure
ANI); ``t4-mlmm`` and ``water-2.5k`` on request.

Every case runs with one thread (``torch.set_num_threads(1)``, CPU platform ``Threads=1``) and with
the defaults (nothing set). The engines of a case — openmm-ani, openmm-ml 1.7 with TorchANI 2.2.4
when installed (up to ``peer_max_atoms``: TorchANI 2.2.4's periodic neighbour list is O(N^2)), and
MM only — each get a Context, then run alternately for ``rounds`` rounds, so that load from other
processes hits all of them; the table gives each engine's median and range over rounds, the summary the ratio
openmm-ml / openmm-ani of medians, the ML/MM cost over MM, and the energy difference at the start.
"""

import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

import torch

from ..thirdparty import stdout_to_debug
from .systems import CASES, CPU_CASES, Builder, Case, build_case, openmmml_available

TIMESTEP_FS = 0.5
WARMUP_STEPS = 10


@dataclass
class Timing:
    """The rounds of one engine on one case with one thread setting (ms/step each)."""

    case: str
    engine: str
    threads: str
    energy: float
    rounds: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def span(self) -> str:
        return f"{min(self.rounds):.2f}–{max(self.rounds):.2f}" if len(self.rounds) > 1 else f"{self.rounds[0]:.2f}"


def make_context(system: Any, positions: Any, threads: Optional[int]) -> Any:
    """A Langevin Context on the CPU platform (``threads=None``: OpenMM's default thread count)."""
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, TIMESTEP_FS * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    properties = {} if threads is None else {"Threads": str(threads)}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), properties)
    context.setPositions(positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    return context


def potential_energy(context: Any) -> float:
    from openmm import unit

    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def time_steps(context: Any, steps: int) -> float:
    """ms/step of ``steps`` steps (synchronised by an energy evaluation)."""
    start = time.perf_counter()
    context.getIntegrator().step(steps)
    context.getState(getEnergy=True)
    return 1000.0 * (time.perf_counter() - start) / steps


def run_case(case: Case, engines: Dict[str, Builder], threads_label: str, torch_threads: int,
             openmm_threads: Optional[int], steps: int, rounds: int) -> List[Timing]:
    """Alternating rounds of the ``engines`` (name -> System builder) of ``case`` with one thread setting."""
    contexts: Dict[str, Any] = {}
    timings: Dict[str, Timing] = {}
    torch.set_num_threads(torch_threads)
    for engine, build in engines.items():
        with stdout_to_debug(f"building the {engine} System"):  # TorchANI prints its resource path
            system = build()
        context = make_context(system, case.positions, openmm_threads)
        timings[engine] = Timing(case.name, engine, threads_label, potential_energy(context))
        context.getIntegrator().step(WARMUP_STEPS)
        contexts[engine] = context
    for _ in range(rounds):
        for engine, context in contexts.items():
            torch.set_num_threads(torch_threads)
            timings[engine].rounds.append(time_steps(context, steps))
    return list(timings.values())


def run_benchmarks(
    cases: Optional[Sequence[str]] = None,
    steps: int = 100,
    threads: int = 0,
    openmmml: bool = True,
    precision: str = "single",
    rounds: int = 2,
    peer_max_atoms: int = 1100,
    out: Optional[TextIO] = None,
) -> int:
    """Run the benchmark cases and print the tables; returns an exit status.

    Parameters
    ----------
    cases
        Names from :data:`~.systems.CASES` (default :data:`~.systems.CPU_CASES`).
    steps
        Timed MD steps per round for the 255-atom box and smaller systems; larger boxes run
        proportionally fewer (at least 3).
    threads
        Threads of the "default" runs (0: leave torch's intra-op threads and OpenMM's CPU threads
        at their defaults).
    openmmml
        Also time openmm-ml's ``ani1ccx`` when openmm-ml and TorchANI are installed.
    precision
        openmm-ani precision, ``"single"`` or ``"double"``.
    rounds
        Alternating rounds per engine.
    peer_max_atoms
        Largest system given to openmm-ml.
    out
        Output stream (default stdout).

    Raises
    ------
    ValueError
        For unknown case names or non-positive counts.
    """
    stream = sys.stdout if out is None else out
    chosen = list(CPU_CASES) if not cases else list(cases)
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise ValueError(f"unknown benchmark case(s) {unknown}; choose from {', '.join(CASES)}")
    if steps < 1 or rounds < 1:
        raise ValueError("steps and rounds must be positive")

    def say(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    from ..kernels import instruction_set

    with_openmmml = openmmml and openmmml_available()
    if openmmml and not with_openmmml:
        say("openmm-ml comparison: skipped (openmmml and torchani are not both installed)")
    default_threads = threads if threads > 0 else torch.get_num_threads()
    say(f"openmm-ani benchmark: CPU platform, {TIMESTEP_FS:g} fs Langevin, precision {precision}, "
        f"{rounds} alternating rounds, kernels {instruction_set()}, default torch threads = {default_threads}")
    say(f"{'case':<14} {'engine':<11} {'threads':>7} {'ms/step':>8} {'range':>15} {'ns/day':>8} {'atoms':>6} "
        f"{'E0 kJ/mol':>16}")
    original = torch.get_num_threads()
    results: List[Timing] = []
    try:
        for name in chosen:
            case = build_case(name, with_openmmml)
            engines = case.engines(precision, with_peer=case.num_atoms <= peer_max_atoms)
            count = steps if case.num_atoms <= 300 else max(3, int(steps * 300 / case.num_atoms))
            settings = [("1", 1, 1), ("default", default_threads, threads if threads > 0 else None)]
            for label, torch_threads, openmm_threads in settings:
                for timing in run_case(case, engines, label, torch_threads, openmm_threads, count, rounds):
                    results.append(timing)
                    ns_day = TIMESTEP_FS * 1e-6 / (timing.median * 1e-3 / 86400.0)
                    say(f"{name:<14} {timing.engine:<11} {label:>7} {timing.median:>8.2f} {timing.span:>15} "
                        f"{ns_day:>8.2f} {case.num_atoms:>6} {timing.energy:>16.4f}")
    finally:
        torch.set_num_threads(original)
    summarise(results, say)
    return 0


def summarise(results: List[Timing], say: Callable[[str], None]) -> None:
    """Ratios against the peers timed in the same run, ML/MM cost over MM, energy differences."""
    by_key = {(r.case, r.engine, r.threads): r for r in results}
    lines = []
    for r in results:
        if r.engine != "openmm-ani":
            continue
        peer = by_key.get((r.case, "openmm-ml", r.threads))
        if peer is not None:
            lines.append(f"{r.case} threads={r.threads}: openmm-ml/openmm-ani {peer.median / r.median:.1f}x "
                         f"(energy difference {r.energy - peer.energy:+.4f} kJ/mol)")
        mm = by_key.get((r.case, "MM only", r.threads))
        if mm is not None:
            overhead = [a - b for a, b in zip(r.rounds, mm.rounds)]
            lines.append(f"{r.case} threads={r.threads}: ML/MM cost over MM {min(overhead):.2f}–{max(overhead):.2f} "
                         f"ms/step (MM alone {mm.span})")
    if lines:
        say("")
        for line in lines:
            say(line)
