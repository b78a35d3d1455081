"""Training loop: the loss falls, resumed runs reproduce uninterrupted ones, optimiser layout, CUDA path."""

import math
import os

import numpy as np
import pytest
import torch

from openmm_ani.training.build import build_random_model, layers_of
from openmm_ani.training.checkpoint import load_checkpoint
from openmm_ani.training.config import ModelConfig, ani1x_config, tiny_config
from openmm_ani.training.optim import OptimizerConfig, build_optimizers, freeze_layers
from openmm_ani.training.trainer import DTYPES, TrainConfig, Trainer

from test_training_support import SELF_ENERGIES, synthetic_dataset

SAE = [SELF_ENERGIES[z] for z in (1, 6, 7, 8)]


def make_trainer(tmp_path=None, epochs=4, callbacks=(), force=0.0, seed=0, device="cpu", dtype="float64"):
    data = synthetic_dataset(8, seed=3)
    train, valid = data.split([0.75, 0.25], seed=0)
    # built in the training dtype, like `train pretrain`: no float32 rounding of the AEV constants
    model = build_random_model(tiny_config(), seed=seed, self_energies=SAE, dtype=DTYPES[dtype])
    config = TrainConfig(max_epochs=epochs, batch_size=8, force_coefficient=force, seed=seed, device=device,
                         dtype=dtype, optimizer=OptimizerConfig(lr=3e-3, bias_lr=1e-3), progress=False,
                         restore_best=False)
    checkpoint = None if tmp_path is None else os.path.join(tmp_path, "run.ckpt")
    return Trainer(model, train, valid, config, checkpoint, callbacks)


def test_loss_falls_on_tiny_set() -> None:
    """Energy+force training cuts the validation energy RMSE and the training loss by large factors."""
    trainer = make_trainer(epochs=30, force=0.1)
    history = trainer.fit()
    first, last = history[0], history[-1]
    assert last.train_loss < first.train_loss / 15
    assert min(r.valid_rmse for r in history) < first.valid_rmse / 3
    # the validation RMSE the trainer reports is the RMSE of the model's total energies against the labels
    from openmm_ani.training.evaluate import error_metrics, predict

    mean, _ = predict(trainer.model, trainer.valid_data)
    assert error_metrics(mean, trainer.valid_data.energies)["rmse_ha"] == pytest.approx(last.valid_rmse, rel=1e-9)


class Interrupt(Exception):
    pass


def test_resumed_run_reproduces_uninterrupted(tmp_path) -> None:
    """Interrupt after epoch 2 of 5, resume from the checkpoint: final parameters and optimiser state equal."""
    reference = make_trainer(epochs=5)
    reference.fit()

    def stop_after_two(trainer, record):
        if record.epoch == 2:
            raise Interrupt()

    first = make_trainer(tmp_path, epochs=5, callbacks=[stop_after_two])
    with pytest.raises(Interrupt):
        first.fit()
    assert load_checkpoint(os.path.join(tmp_path, "run.ckpt"))["epoch"] == 2
    # a fresh process would rebuild everything from scratch: a new trainer with a different initial model
    resumed = make_trainer(tmp_path, epochs=5, seed=0)
    with torch.no_grad():
        for p in resumed.model.parameters():
            p.add_(1.0)  # must be overwritten by the checkpoint
    resumed.fit()
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4, 5]
    for (name, a), (_, b) in zip(reference.model.state_dict().items(), resumed.model.state_dict().items()):
        assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b), name
    ref_state = reference.optimizers[0].state_dict()["state"]
    res_state = resumed.optimizers[0].state_dict()["state"]
    for key in ref_state:
        assert torch.equal(ref_state[key]["exp_avg_sq"], res_state[key]["exp_avg_sq"])
    assert [r.valid_rmse for r in reference.history] == [r.valid_rmse for r in resumed.history]


def test_checkpoint_is_atomic_and_bad_files_are_named(tmp_path) -> None:
    """No temporary file is left behind; a damaged checkpoint raises ValueError naming the file."""
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt"]
    bad = os.path.join(tmp_path, "bad.ckpt")
    with open(bad, "wb") as handle:
        handle.write(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.ckpt"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_checkpoint(os.path.join(tmp_path, "missing.ckpt"))


def test_optimizer_groups_follow_neurochem() -> None:
    """AdamW groups: weight decay (0, 1e-5, 1e-6, 0) per layer; SGD on biases; frozen layers in no group;
    discriminative learning rates lr * f**(L-1-k)."""
    model = build_random_model(tiny_config(), seed=0)
    freeze_layers(model, [0, 2])
    adamw, sgd = build_optimizers(model, OptimizerConfig(lr=1e-3, bias_lr=2e-3, layer_lr_factor=0.5))
    assert isinstance(adamw, torch.optim.AdamW) and isinstance(sgd, torch.optim.SGD)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.0, 1e-5, 1e-6, 0.0]
    assert [g["lr"] for g in adamw.param_groups] == pytest.approx([1e-3 / 8, 1e-3 / 4, 1e-3 / 2, 1e-3])
    assert [g["lr"] for g in sgd.param_groups] == pytest.approx([2e-3 / 8, 2e-3 / 4, 2e-3 / 2, 2e-3])
    layers = layers_of(model)
    for k, (wg, bg) in enumerate(zip(adamw.param_groups, sgd.param_groups)):
        expected = 0 if k in (0, 2) else 4  # four element networks
        assert len(wg["params"]) == expected and len(bg["params"]) == expected
        for layer in layers[k]:
            assert any(p is layer.weight for p in wg["params"]) == (expected > 0)
    with pytest.raises(ValueError, match="layer 7"):
        freeze_layers(model, [7])


def test_ani1x_config_matches_published_architecture() -> None:
    """The default architecture equals the bundled ANI-1x model's (AEV parameters to float32, layer widths)."""
    import openmm_ani
    from openmm_ani.training.config import config_from_spec

    config = ani1x_config()
    published = config_from_spec(openmm_ani.models.load_model_spec("ani1x"))
    assert config.hidden == published.hidden and config.activation == published.activation
    ours, theirs = config.aev, published.aev
    for field in ("radial_cutoff", "angular_cutoff", "radial_eta", "radial_shifts", "angular_eta", "angular_zeta",
                  "angular_shifts", "angle_sections"):
        assert np.allclose(np.float32(getattr(ours, field)), np.float32(getattr(theirs, field)), rtol=0, atol=1e-7), field
    assert config.aev.length == 384
    round_trip = ModelConfig.from_dict(config.to_dict())
    assert round_trip == config


def test_bad_configuration_is_named() -> None:
    data = tiny_config().to_dict()
    del data["hidden"]["N"]
    with pytest.raises(ValueError, match="'N'"):
        ModelConfig.from_dict(data)
    model = build_random_model(tiny_config(), seed=0)
    train = synthetic_dataset(2, seed=0)
    train.forces = None
    with pytest.raises(ValueError, match="no forces"):
        Trainer(model, train, train, TrainConfig(force_coefficient=0.1, device="cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine; CI runs on CPU")
def test_cuda_training_runs_and_matches_cpu_start() -> None:
    """On CUDA the first-epoch validation RMSE equals the CPU one (float64) and training lowers the loss."""
    cpu = make_trainer(epochs=1, device="cpu")
    gpu = make_trainer(epochs=1, device="cuda")
    assert gpu.device.type == "cuda"
    assert gpu.evaluate(gpu.valid_data)["rmse"] == pytest.approx(cpu.evaluate(cpu.valid_data)["rmse"], rel=1e-9)
    gpu = make_trainer(epochs=30, device="cuda", force=0.1)
    history = gpu.fit()
    assert history[-1].train_loss < history[0].train_loss / 10
    assert math.isfinite(history[-1].valid_rmse)


def test_loss_matches_hand_computation() -> None:
    """batch_loss = mean((E - E_ref)^2 / sqrt(n)) + 0.1 mean(|F - F_ref|^2 / n), with E from the public model
    call molecule by molecule and F from central finite differences of it."""
    from openmm_ani.training.losses import EnergyModule, batch_loss

    data = synthetic_dataset(1, seed=9)
    model = build_random_model(tiny_config(), seed=2, self_energies=SAE, dtype=torch.float64)
    batch = data.make_batch(np.arange(len(data)), dtype=torch.float64)
    terms, error = batch_loss(EnergyModule(model), model, batch.atomic_numbers, batch.coordinates, batch.energies,
                              batch.num_atoms, batch.forces, force_coefficient=0.1)
    energy_terms, force_terms, errors = [], [], []
    h = 1e-5
    for i, n in enumerate(data.num_atoms()):
        z = torch.tensor(data.atomic_numbers[i, :n][None])
        x = torch.tensor(data.coordinates[i, :n][None])
        with torch.no_grad():
            e = float(model(z, x))
            forces = np.zeros((n, 3))
            for a in range(n):
                for c in range(3):
                    plus, minus = x.clone(), x.clone()
                    plus[0, a, c] += h
                    minus[0, a, c] -= h
                    forces[a, c] = -(float(model(z, plus)) - float(model(z, minus))) / (2 * h)
        errors.append(e - data.energies[i])
        energy_terms.append((e - data.energies[i]) ** 2 / np.sqrt(n))
        force_terms.append(np.sum((forces - data.forces[i, :n]) ** 2) / n)
    # the batch is sorted by size: compare errors as sets
    assert sorted(error.tolist()) == pytest.approx(sorted(errors), abs=1e-9)
    assert float(terms.energy) == pytest.approx(np.mean(energy_terms), rel=1e-8)
    assert float(terms.force) == pytest.approx(np.mean(force_terms), rel=1e-6)
    assert float(terms.total.detach()) == pytest.approx(np.mean(energy_terms) + 0.1 * np.mean(force_terms), rel=1e-6)
