"""Ligand-specific active learning: sample, select, label, fine-tune, export, round after round.

Each round ``k`` (directory ``<output>/round-<k>/``):

1. **sample** -- Langevin MD of the ligand in vacuum driven by the current ensemble
   (:func:`~openmm_ani.training.sampling.sample_md`), at the configured temperatures
   (``samples.npz``: frames in Å and their disagreement);
2. **select** -- the frames of largest ensemble disagreement
   (:func:`~openmm_ani.training.select.select_conformations`, per-atom-normalised energy
   standard deviation in kcal/mol/sqrt(atoms)), above the threshold, de-duplicated by Kabsch
   RMSD, up to the labelling budget (``selected.npz``);
3. **label** -- PySCF ωB97X/6-31G* energies and forces (``labels.h5`` + ``labels.json``); failed
   SCFs are counted and skipped. For ANI-1ccx the same DFT labels are used: the CCSD(T)/CBS level
   of ANI-1ccx is not run in the loop because of its cost, so refining ANI-1ccx moves it toward
   the DFT level on this ligand (its self energies are refitted to the DFT labels);
4. **fine-tune** -- every member with :func:`~openmm_ani.training.transfer.transfer_member`
   and :class:`~openmm_ani.training.trainer.Trainer` on the new labels plus a replay set of
   built-in molecules (``<output>/replay/labels.h5``), with a held-out split of both for early
   stopping;
5. **export** -- ``model.npz`` (:func:`~openmm_ani.training.export.export_models`), loadable
   with ``openmm_ani.models.load(path)`` and ``ANIPotential(path)``; ``metrics.json`` last.

A rerun of the same call resumes after the last finished round (and inside a round from its
files); other settings are refused with a one-line error naming them. Ctrl-C stops between steps.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from openmm_ani.files import atomic_write, sha256_of, write_text
from openmm_ani.interrupts import deferred_interrupts
from openmm_ani.resume import raise_if_different, read_record, settings_differences

from ..labels.levels import DFTSettings
from ..select import ANI1X_THRESHOLD_KCAL

logger = logging.getLogger(__name__)

#: The settings record of an output directory.
RECORD = "refine.json"
#: Settings that may change between runs of one output directory (more rounds extend a run).
_MAY_CHANGE = ("rounds", "device", "progress")


@dataclass
class RefineSettings:
    """Settings of :func:`refine` (lengths Å, temperatures K, times fs, disagreements kcal/mol/sqrt(atoms)).

    Attributes
    ----------
    rounds
        Maximum number of rounds.
    samples_per_round
        MD frames sampled per round (candidates).
    temperatures
        MD temperatures, K; frames are interleaved over them.
    md_interval, md_equilibration, timestep_fs
        Steps between frames, steps before the first frame, time step (fs).
    seed
        Seed of the MD (round ``k`` uses ``seed + k``), splits and training shuffles.
    budget
        At most this many frames labelled per round.
    threshold_kcal
        Frames are selected only above this disagreement, and the loop stops when no fresh
        sample exceeds it (None: always select the top ``budget``, never stop early).
    rmsd_threshold_angstrom
        A selected frame closer than this (Kabsch RMSD, Å) to one already selected is dropped.
    dft
        Level of theory of the labels (ωB97X/6-31G*, ANI-1x's level, by default).
    replay_molecules, replay_conformations, replay_seed, replay_temperatures
        Built-in molecules (see ``openmm_ani.training.sampling.MOLECULES``) labelled once and
        trained on with the new labels against forgetting; conformations per molecule.
    valid_fraction
        Fraction of the new labels and of the replay set held out (early stopping, metrics).
    epochs, batch_size, lr, patience
        Fine-tuning: maximum epochs per member, batch size, learning rate, early-stopping patience.
    force_coefficient
        Weight of the force loss (0: energies only).
    frozen_layers
        Layers fixed during fine-tuning (0 = input layer).
    refit_self_energies
        Refit the self energies (Ha) to the labels; None: refit unless the model is ``ani1x``
        (whose level the labels are).
    dtype, device, progress
        Training precision, device (None: CUDA when present) and progress bars.
    """

    rounds: int = 3
    samples_per_round: int = 48
    temperatures: Tuple[float, ...] = (300.0, 600.0)
    md_interval: int = 40
    md_equilibration: int = 200
    timestep_fs: float = 0.5
    seed: int = 0
    budget: int = 16
    threshold_kcal: Optional[float] = ANI1X_THRESHOLD_KCAL
    rmsd_threshold_angstrom: float = 0.1
    dft: DFTSettings = field(default_factory=DFTSettings)
    replay_molecules: Tuple[str, ...] = ("methane", "ammonia", "water", "formaldehyde", "methanol")
    replay_conformations: int = 4
    replay_seed: int = 2024
    replay_temperatures: Tuple[float, ...] = (300.0,)
    valid_fraction: float = 0.2
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-4
    patience: int = 20
    force_coefficient: float = 0.1
    frozen_layers: Tuple[int, ...] = (0, 2)
    refit_self_energies: Optional[bool] = None
    dtype: str = "float32"
    device: Optional[str] = None
    progress: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        positive = ("rounds", "samples_per_round", "md_interval", "budget", "replay_conformations", "epochs",
                    "batch_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if not self.temperatures or min(self.temperatures) <= 0:
            raise ValueError(f"temperatures must be positive K, got {self.temperatures}")
        if self.rmsd_threshold_angstrom < 0:
            raise ValueError(f"rmsd_threshold_angstrom must be >= 0, got {self.rmsd_threshold_angstrom}")

    def record(self) -> Dict[str, Any]:
        """JSON form (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))


def _check_record(output: str, record: Dict[str, Any]) -> None:
    path = os.path.join(output, RECORD)
    if os.path.isfile(path):
        stored = read_record(path, "use a new --output")
        raise_if_different(settings_differences(stored, record, ignore=_MAY_CHANGE),
                           f"{output} holds a refinement with other settings",
                           "rerun with the same settings to continue it, or use a new --output")
    write_text(path, json.dumps(record, indent=1, sort_keys=True))


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)


def _split(n: int, fraction: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices of ``n`` items; at least one of each when ``n >= 2``."""
    order = rng.permutation(n)
    n_valid = 0 if n < 2 else min(n - 1, max(1, int(round(fraction * n))))
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def refine(structure_path: str, model: str, output: str, settings: RefineSettings = RefineSettings()
           ) -> List[Dict[str, Any]]:
    """Refine an ANI ensemble for one ligand by active learning; resumes after the last finished round.

    Parameters
    ----------
    structure_path
        PDB or XYZ file of the ligand (the first frame starts every round's MD), Å.
    model
        Starting ensemble: registered name (``ani1x``, ``ani1ccx``) or model file.
    output
        Output directory (``refine.json``, ``replay/``, ``round-<k>/``).
    settings
        See :class:`RefineSettings`.

    Returns
    -------
    list of dict
        One metrics dict per finished round (as in ``round-<k>/metrics.json``); fewer than
        ``settings.rounds`` when the disagreement fell below the threshold or Ctrl-C stopped it.

    Raises
    ------
    ValueError
        For a bad setting, or an output directory holding a refinement with other settings.
    """
    from openmm_ani.formats.registry import model_fingerprint

    from ..labels.structures import read_structure
    from .rounds import run_round

    settings.validate()
    numbers, frames = read_structure(structure_path)
    os.makedirs(output, exist_ok=True)
    record = {"structure": f"{os.path.basename(structure_path)} sha256:{sha256_of(structure_path)}",
              "model": model_fingerprint(model), **settings.record()}
    _check_record(output, record)
    refit = settings.refit_self_energies
    if refit is None:
        refit = os.fspath(model).lower() != "ani1x"
    results: List[Dict[str, Any]] = []
    source = model
    with deferred_interrupts("Ctrl-C: stopping after the current step (again to abort)") as request:
        def stop() -> bool:
            return request()

        for k in range(1, settings.rounds + 1):
            metrics_path = os.path.join(output, f"round-{k}", "metrics.json")
            if os.path.isfile(metrics_path):
                with open(metrics_path) as handle:
                    metrics = json.load(handle)
                logger.info("round %d: finished earlier, reused", k)
            else:
                try:
                    metrics = run_round(k, numbers, frames[0], source, output, settings, refit, stop)
                except KeyboardInterrupt:  # raised by the round at a consistent point when stop() is true
                    if not request():
                        raise
                    logger.warning("stopped during round %d on request; rerun to resume", k)
                    break
                with atomic_write(metrics_path) as handle:
                    handle.write(json.dumps(metrics, indent=1, sort_keys=True))
            results.append(metrics)
            if metrics.get("converged"):
                logger.info("round %d: no fresh sample above %s kcal/mol/sqrt(atoms); stopping", k,
                            settings.threshold_kcal)
                break
            source = os.path.join(output, f"round-{k}", "model.npz")
            if request():
                logger.warning("stopped after round %d on request; rerun to continue", k)
                break
    return results


def final_model(results: List[Dict[str, Any]], start: str) -> str:
    """The model of the last round that exported one (``start`` when none did)."""
    for metrics in reversed(results):
        if metrics.get("model_out"):
            return str(metrics["model_out"])
    return start
