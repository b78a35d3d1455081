"""One refinement round: sample, select, label, fine-tune, export, measure (see :mod:`.loop`)."""

import logging
import os
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch

from openmm_ani import models
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL

from ..data import Dataset, concatenate
from ..evaluate import member_predictions
from ..select import select_conformations
from .dedup import deduplicate
from .labelling import label_frames, replay_dataset
from .loop import RefineSettings, _save_npz, _split
from .metrics import distribution, model_errors

logger = logging.getLogger(__name__)


def _check(stop: Callable[[], bool]) -> None:
    if stop():
        raise KeyboardInterrupt


def _sample(k: int, numbers: np.ndarray, start: np.ndarray, current: Any, rdir: str,
            settings: RefineSettings) -> Dict[str, np.ndarray]:
    """Fresh MD frames of round ``k`` and their disagreement (kcal/mol/sqrt(atoms)); reused from ``samples.npz``."""
    from ..sampling import sample_md

    path = os.path.join(rdir, "samples.npz")
    if os.path.isfile(path):
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    frames = sample_md(numbers, start, settings.samples_per_round, temperatures=settings.temperatures,
                       seed=settings.seed + k, timestep_fs=settings.timestep_fs, interval=settings.md_interval,
                       equilibration=settings.md_equilibration, model=current)
    c = len(frames)
    candidates = Dataset(np.broadcast_to(numbers, (c, len(numbers))).copy(), frames, np.zeros(c))
    order, score = select_conformations(current, candidates, number=None, threshold=None)
    disagreement = np.empty(c)
    disagreement[order] = score
    out = {"atomic_numbers": numbers, "coordinates": frames, "disagreement_kcal": disagreement}
    _save_npz(path, **out)
    return out


def _new_labels(numbers: np.ndarray, coords: np.ndarray, energies: np.ndarray, forces: np.ndarray,
                frames: List[int]) -> Dataset:
    c = len(frames)
    return Dataset(np.broadcast_to(numbers, (c, len(numbers))).copy(), coords, energies, forces,
                   group=np.full(c, "ligand"), index=np.asarray(frames, dtype=np.int64))


def _fine_tune(source: str, train: Dataset, valid: Dataset, rdir: str, settings: RefineSettings, refit: bool,
               stop: Callable[[], bool]) -> Tuple[List[Any], Dict[str, float]]:
    """Every member of ``source`` fine-tuned on ``train`` (early stopping on ``valid``); checkpoints per member.

    Returns the members and the self energies (Ha per element) they were trained with.
    """
    from ..transfer import pretrained_spec, refit_self_energies, transfer_member, transfer_train_config
    from ..trainer import Trainer

    spec = pretrained_spec(source)
    self_energies = [float(e) for e in spec.self_energies]
    if refit:
        present = set(int(z) for z in np.unique(train.atomic_numbers) if z > 0)
        from openmm_ani.model.species import atomic_number_of

        fixed = {e: v for e, v in zip(spec.elements, self_energies) if atomic_number_of(e) not in present}
        self_energies = refit_self_energies(spec.elements, train, fixed=fixed)
    config = transfer_train_config(max_epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                                   seed=settings.seed, device=settings.device, dtype=settings.dtype,
                                   progress=settings.progress)
    config.force_coefficient = settings.force_coefficient
    config.optimizer.early_stopping_patience = settings.patience

    def poll(trainer: Any, record: Any) -> None:  # after the epoch's checkpoint: a clean place to stop
        _check(stop)

    members = []
    for i in range(spec.num_models):
        member = transfer_member(spec, i, train, frozen_layers=settings.frozen_layers, self_energies=self_energies,
                                 dtype=getattr(torch, settings.dtype))
        trainer = Trainer(member, train, valid, config, checkpoint=os.path.join(rdir, f"member_{i}.pt"),
                          callbacks=[poll])
        history = trainer.fit()
        logger.info("member %d: %d epochs (%s)", i, len(history), trainer.stop_reason or "max epochs")
        members.append(trainer.model.cpu())
    return members, dict(zip(spec.elements, (float(e) for e in self_energies)))


def run_round(k: int, numbers: np.ndarray, start: np.ndarray, source: str, output: str, settings: RefineSettings,
              refit: bool, stop: Callable[[], bool]) -> Dict[str, Any]:
    """Run round ``k`` from model ``source`` (name or file); returns its metrics (kcal/mol).

    Raises ``KeyboardInterrupt`` at a consistent point when ``stop()`` becomes true.
    """
    from ..export import export_models

    rdir = os.path.join(output, f"round-{k}")
    os.makedirs(rdir, exist_ok=True)
    current = models.load(source, dtype=torch.float64)
    samples = _sample(k, numbers, start, current, rdir, settings)
    score = samples["disagreement_kcal"]
    metrics: Dict[str, Any] = {"round": k, "model_in": os.fspath(source), "samples": int(len(score)),
                               "disagreement_kcal_per_mol_per_sqrt_atom": distribution(score)}
    _check(stop)
    order = np.argsort(-score, kind="stable")
    if settings.threshold_kcal is not None:
        order = order[score[order] > settings.threshold_kcal]
    chosen = deduplicate(samples["coordinates"], order, settings.rmsd_threshold_angstrom, settings.budget)
    coords = samples["coordinates"][chosen]
    _save_npz(os.path.join(rdir, "selected.npz"), indices=np.asarray(chosen, dtype=np.int64), coordinates=coords,
              atomic_numbers=numbers, disagreement_kcal=score[chosen])
    metrics.update({"selected": len(chosen), "above_threshold": int(len(order))})
    if not chosen:
        metrics.update({"converged": True, "labels_ok": 0, "labels_failed": 0, "model_out": None})
        return metrics
    _check(stop)
    ok, failed, energies, forces = label_frames(os.path.join(rdir, "labels.h5"), numbers, coords, settings.dft, stop)
    metrics.update({"labels_ok": len(ok), "labels_failed": len(failed)})
    if not ok:
        raise ValueError(f"round {k}: no frame labelled ({len(failed)} SCF failures of {len(chosen)}); "
                         "check the dft settings")
    new = _new_labels(numbers, coords[ok], energies, forces, [chosen[i] for i in ok])
    replay = replay_dataset(os.path.join(output, "replay", "labels.h5"), settings.replay_molecules,
                            settings.replay_conformations, settings.replay_seed, settings.replay_temperatures,
                            settings.dft)
    rng = np.random.default_rng([settings.seed, k])
    new_train, new_valid = _split(len(new), settings.valid_fraction, rng)
    replay_train, replay_valid = _split(len(replay), settings.valid_fraction, rng)
    replay_check = replay.subset(replay_valid) if len(replay_valid) else replay
    train = concatenate([new.subset(new_train), replay.subset(replay_train)])
    # a single new label is trained on, the held-out part is then the replay one only
    parts = [d.subset(i) for d, i in ((new, new_valid), (replay, replay_valid)) if len(i)]
    if not parts:
        raise ValueError(f"round {k}: no held-out conformation ({len(new)} new label(s), {len(replay)} replay); "
                         "raise budget or replay_conformations, or lower rmsd_threshold_angstrom")
    valid = concatenate(parts)
    before = {"held_out": model_errors(current, valid), "new_labels": model_errors(current, new),
              "replay_held_out": model_errors(current, replay_check)}
    _check(stop)
    members, self_energies = _fine_tune(source, train, valid, rdir, settings, refit, stop)
    trained = np.mean([member_predictions(m, new)[0] for m in members], axis=0)  # Ha, in-memory members
    out_path = os.path.join(rdir, "model.npz")
    export_models(members, out_path, name=f"{current.name}-refined-round{k}",
                  provenance={"refine_round": k, "source": os.fspath(source), "labels": "wb97x_dz (PySCF)"})
    _save_npz(os.path.join(rdir, "predictions.npz"), frames=new.index, trained_energies_ha=trained,
              label_energies_ha=new.energies)
    refined = models.load(out_path, dtype=torch.float64)
    after = {"held_out": model_errors(refined, valid), "new_labels": model_errors(refined, new),
             "replay_held_out": model_errors(refined, replay_check)}
    metrics.update({
        "converged": False, "model_out": out_path, "train_conformations": len(train), "valid_conformations": len(valid),
        "replay_held_out_is_training_data": not len(replay_valid), "self_energies_refitted": bool(refit),
        "self_energies_ha": self_energies,
        **{f"{part}_before": before[part] for part in before}, **{f"{part}_after": after[part] for part in after},
        "units": {"energy": "kcal/mol", "force": "kcal/mol/angstrom",
                  "disagreement": "kcal/mol/sqrt(atoms)", "hartree_to_kcal_per_mol": HARTREE_TO_KCAL_PER_MOL},
    })
    return metrics
