"""The MM -> ML/MM binding correction of one ligand: complex leg, solvent leg, results.

Output directory layout (self-contained, one ligand per directory)::

    <output>/settings.json
    <output>/results.json                    (written last, atomically)
    <output>/<leg>/replica_exchange.nc       (openmmtools reporter; resumed when present)
    <output>/<leg>/switching.json            (work values; reused when present)
    <output>/<leg>/overlap.png, work.png
"""

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import openmm
from openmm import app

from .results import binding_correction, leg_summary, write_json
from .settings import ProtocolSettings

logger = logging.getLogger(__name__)


@dataclass
class LegInput:
    """An MM system and its ligand selection.

    Attributes
    ----------
    name
        ``"complex"`` or ``"solvent"`` (names the sub-directory).
    topology, system
        The MM topology and System.
    positions
        Positions (Quantity or nm).
    ml_atoms
        Ligand atom indices.
    box_vectors
        Box vectors of a periodic system, or ``None``.
    """

    name: str
    topology: app.Topology
    system: openmm.System
    positions: Any
    ml_atoms: Sequence[int]
    box_vectors: Optional[Any] = None


def _is_root() -> bool:
    import mpiplus

    comm = mpiplus.get_mpicomm()
    return comm is None or comm.rank == 0


def minimize_mm(leg: LegInput, platform: Optional[str], max_iterations: int = 0) -> Any:
    """Positions of ``leg`` minimised with its MM System (the lambda = 0 end state, no ANI cost)."""
    from openmm import unit

    integrator = openmm.VerletIntegrator(0.001)
    if platform:
        context = openmm.Context(leg.system, integrator, openmm.Platform.getPlatformByName(platform))
    else:
        context = openmm.Context(leg.system, integrator)
    if leg.box_vectors is not None:
        context.setPeriodicBoxVectors(*leg.box_vectors)
    context.setPositions(leg.positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=int(max_iterations))
    positions = context.getState(getPositions=True).getPositions(asNumpy=True)
    del context
    return positions.in_units_of(unit.nanometer)


def run_leg(leg: LegInput, settings: ProtocolSettings, output_dir: str, progress: bool = True) -> Optional[Dict[str, Any]]:
    """Run the equilibrium and switching parts of one leg.

    Parameters
    ----------
    leg
        The system and ligand.
    settings
        Protocol settings.
    output_dir
        The ligand's output directory (the leg writes into ``output_dir/leg.name``).
    progress
        Show progress bars.

    Returns
    -------
    dict or None
        ``{"equilibrium": ..., "switching": ..., "summary": ...}`` (kT and kcal/mol) on MPI
        rank 0, ``None`` on other ranks.
    """
    from ..openmm import ANIPotential
    from .equilibrium import run_replica_exchange
    from .plots import plot_overlap, plot_work
    from .switching import run_switching

    settings.validate()
    directory = os.path.join(output_dir, leg.name)
    os.makedirs(directory, exist_ok=True)
    potential = ANIPotential(settings.model, precision=settings.precision)
    system = potential.createMixedSystem(leg.topology, leg.system, leg.ml_atoms, interpolate=True)
    positions = minimize_mm(leg, settings.platform, settings.minimize_iterations) if settings.minimize else leg.positions
    equilibrium = None
    if settings.n_iterations > 0:
        result = run_replica_exchange(
            system, positions, settings, os.path.join(directory, "replica_exchange.nc"),
            box_vectors=leg.box_vectors, progress=progress, description=f"{leg.name} replica exchange",
        )
        if result is not None:
            equilibrium = result.to_dict()
            plot_overlap(result.overlap, result.lambdas, os.path.join(directory, "overlap.png"), f"{leg.name}: MBAR overlap")
    if not _is_root():
        return None
    switching = None
    if settings.n_switches > 0:
        path = os.path.join(directory, "switching.json")
        if os.path.exists(path):
            with open(path) as stream:
                switching = json.load(stream)
            logger.info("reusing switching work values from %s", path)
        else:
            switching = run_switching(
                system, positions, settings, box_vectors=leg.box_vectors, progress=progress, description=leg.name
            ).to_dict()
            write_json(switching, path)
        plot_work(switching["forward_work"], switching["reverse_work"], switching["bar_delta_f_kt"],
                  os.path.join(directory, "work.png"), f"{leg.name}: switching work")
    return {
        "equilibrium": equilibrium,
        "switching": switching,
        "summary": leg_summary(equilibrium, switching, settings.temperature_k),
        "ml_atoms": [int(i) for i in leg.ml_atoms],
    }


def run_correction(
    complex_leg: LegInput,
    solvent_leg: LegInput,
    settings: ProtocolSettings,
    output_dir: str,
    mm_binding_kcal_per_mol: Optional[float] = None,
    progress: bool = True,
) -> Optional[Dict[str, Any]]:
    """Both legs and the binding correction; writes ``results.json``.

    Parameters
    ----------
    complex_leg, solvent_leg
        The two systems with the same ligand.
    settings
        Protocol settings (shared by both legs).
    output_dir
        Output directory of this ligand.
    mm_binding_kcal_per_mol
        MM binding free energy to correct, kcal/mol.
    progress
        Show progress bars.

    Returns
    -------
    dict or None
        The results (also in ``output_dir/results.json``) on MPI rank 0, else ``None``.
    """
    settings.validate()
    os.makedirs(output_dir, exist_ok=True)
    if _is_root():
        write_json(settings.to_dict(), os.path.join(output_dir, "settings.json"))
    legs: Dict[str, Any] = {}
    for leg in (complex_leg, solvent_leg):
        legs[leg.name] = run_leg(leg, settings, output_dir, progress)
    if not _is_root():
        return None
    results = {
        "settings": settings.to_dict(),
        "legs": legs,
        "correction": binding_correction(legs[complex_leg.name]["summary"], legs[solvent_leg.name]["summary"], mm_binding_kcal_per_mol),
        "units": {"energies": "kcal/mol unless the key ends in _kt (units of k_B T)", "work": "k_B T"},
    }
    write_json(results, os.path.join(output_dir, "results.json"))
    return results
