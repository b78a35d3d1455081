"""Transfer learning from the published ANI-1x: frozen layers untouched, self energies refitted, discriminative rates."""

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani.model.species import atomic_number_of
from openmm_ani.training.build import layers_of, self_energy_list
from openmm_ani.training.transfer import refit_self_energies, transfer_member, transfer_train_config
from openmm_ani.training.trainer import Trainer

from test_training_support import synthetic_dataset


def labelled_by_ani1ccx(per_molecule: int, seed: int):
    """Displaced small molecules labelled with the published ANI-1ccx ensemble mean (a 'CCSD(T)' stand-in)."""
    data = synthetic_dataset(per_molecule, seed, sigma=0.05)
    model = openmm_ani.models.load("ani1ccx")
    with torch.no_grad():
        data.energies = model(torch.as_tensor(data.atomic_numbers), torch.as_tensor(data.coordinates)).numpy()
    return data


def count_matrix_fit(data, elements):
    """Independent least squares: energies = counts @ self energies."""
    numbers = [atomic_number_of(e) for e in elements]
    counts = np.stack([(data.atomic_numbers == z).sum(axis=1) for z in numbers], axis=1).astype(float)
    return np.linalg.lstsq(counts, data.energies, rcond=None)[0]


def test_frozen_layers_bit_for_bit_and_trainable_layers_move() -> None:
    """ANI-1x member 0 retrained with freezelayer=0,2: layers 0 and 2 identical, layers 1 and 3 changed."""
    data = labelled_by_ani1ccx(6, seed=1)
    train, valid = data.split([0.8, 0.2], seed=0)
    source = openmm_ani.models.load("ani1x", model_index=0, dtype=torch.float32)
    before = [[(l.weight.detach().clone(), l.bias.detach().clone()) for l in group] for group in layers_of(source)]
    model = transfer_member("ani1x", 0, train)
    config = transfer_train_config(max_epochs=3, batch_size=8, lr=1e-3, device="cpu", progress=False)
    history = Trainer(model, train, valid, config).fit()
    assert len(history) == 3
    after = layers_of(model)
    for k in (0, 2):
        for (w, b), layer in zip(before[k], after[k]):
            assert torch.equal(w, layer.weight.detach()) and torch.equal(b, layer.bias.detach())
            assert not layer.weight.requires_grad
    for k in (1, 3):
        moved = [not torch.equal(w, layer.weight.detach()) for (w, _), layer in zip(before[k], after[k])]
        assert all(moved), k


def test_self_energies_refitted_to_new_level() -> None:
    """Transfer refits the self energies on the new labels: equal to D1's fit and to an independent lstsq."""
    from openmm_ani.training.selfenergy import fit_self_energies

    data = labelled_by_ani1ccx(4, seed=2)
    elements = ["H", "C", "N", "O"]
    model = transfer_member("ani1x", 3, data)
    expected = fit_self_energies(data, elements)
    assert self_energy_list(model) == pytest.approx([expected[e] for e in elements], abs=1e-10)
    assert self_energy_list(model) == pytest.approx(list(count_matrix_fit(data, elements)), abs=1e-8)
    published = openmm_ani.models.load_model_spec("ani1x").self_energies
    assert max(abs(a - b) for a, b in zip(self_energy_list(model), published)) > 1e-3  # really refitted
    assert refit_self_energies(elements, data) == pytest.approx(self_energy_list(model), abs=1e-12)


def test_discriminative_fine_tuning_scales_first_step() -> None:
    """Adam's first step moves every weight by ~lr: the largest move of layer k is lr * f**(3-k)."""
    data = labelled_by_ani1ccx(2, seed=3)
    model = transfer_member("ani1x", 0, data, frozen_layers=(), dtype=torch.float64)
    before = [[l.weight.detach().clone() for l in group] for group in layers_of(model)]
    config = transfer_train_config(max_epochs=1, batch_size=len(data), lr=1e-4, layer_lr_factor=0.5, device="cpu",
                                   dtype="float64", progress=False)
    config.optimizer.weight_decay = (0.0, 0.0, 0.0, 0.0)
    trainer = Trainer(model, data, data, config)
    trainer.step(next(data.batches(len(data), shuffle=False, dtype=torch.float64)))
    for k, group in enumerate(layers_of(model)):
        largest = max(float((l.weight.detach() - w).abs().max()) for l, w in zip(group, before[k]))
        assert largest == pytest.approx(1e-4 * 0.5 ** (3 - k), rel=1e-3), k
