"""Active learning (query by committee) and the Δ-learning baseline."""

import json
import os

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani.training.data import concatenate
from openmm_ani.training.delta import DeltaModel, residual_dataset
from openmm_ani.training.select import committee_disagreement, select_conformations
from openmm_ani.units import HARTREE_TO_KCAL_PER_MOL

from test_training_support import synthetic_dataset


def candidates():
    """Five near-equilibrium conformations (indices 0-4) and five strongly distorted ones (5-9)."""
    calm = synthetic_dataset(1, seed=11, sigma=0.01)
    wild = synthetic_dataset(1, seed=12, sigma=0.30)
    return concatenate([calm, wild])


def test_committee_disagreement_matches_torchani() -> None:
    """std over ANI-1x's 8 members / sqrt(atoms) equals TorchANI 2.2.4's members_energies std."""
    torchani = pytest.importorskip("torchani", reason="TorchANI (test-only reference) is not installed")
    data = candidates()
    ours = committee_disagreement(openmm_ani.models.load("ani1x"), data)
    reference = torchani.models.ANI1x(periodic_table_index=True).double()
    expected = []
    for z, x, n in zip(data.atomic_numbers, data.coordinates, data.num_atoms()):
        with torch.no_grad():
            members = reference.members_energies((torch.tensor(z[:n][None]), torch.tensor(x[:n][None]))).energies
        expected.append(float(members[:, 0].std(unbiased=True)) / np.sqrt(n))
    assert ours == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_select_picks_distorted_geometries() -> None:
    """The five most disputed conformations are the five distorted ones, most disputed first."""
    data = candidates()
    model = openmm_ani.models.load("ani1x")
    indices, scores = select_conformations(model, data, number=5, threshold=None)
    assert sorted(indices.tolist()) == [5, 6, 7, 8, 9]
    assert np.all(np.diff(scores) <= 0)
    everything = committee_disagreement(model, data) * HARTREE_TO_KCAL_PER_MOL
    assert scores.min() > everything[:5].max()
    # a threshold keeps exactly the conformations above it
    cut = float(np.median(everything))
    above, _ = select_conformations(model, data, threshold=cut)
    assert sorted(above.tolist()) == sorted(np.nonzero(everything > cut)[0].tolist())
    with pytest.raises(ValueError, match="ensemble"):
        committee_disagreement(openmm_ani.models.load("ani1x", model_index=0), data)


def test_select_command_line(tmp_path) -> None:
    """`train select` on an unlabelled release-layout file lists the distorted conformations."""
    from openmm_ani.training.cli import main
    from openmm_ani.training.data import write_h5

    data = candidates()
    molecules = {}
    for i, (z, x, n) in enumerate(zip(data.atomic_numbers, data.coordinates, data.num_atoms())):
        molecules[f"m{i}"] = {"atomic_numbers": z[:n], "coordinates": x[None, :n]}
    path = os.path.join(tmp_path, "candidates.h5")
    write_h5(path, molecules)
    out = os.path.join(tmp_path, "selected.json")
    assert main(["train", "select", "--model", "ani1x", "--data", path, "--number", "5", "--threshold", "-1",
                 "--output", out]) == 0
    with open(out) as handle:
        selected = json.load(handle)["selected"]
    assert sorted(row["group"] for row in selected) == ["m5", "m6", "m7", "m8", "m9"]


def test_delta_learning_residuals_and_sum() -> None:
    """Residual labels are E - E_base (base evaluated molecule by molecule); DeltaModel adds base and delta."""
    data = synthetic_dataset(2, seed=13, sigma=0.05)
    base = openmm_ani.models.load("ani1x", model_index=2)
    delta = openmm_ani.models.load("ani1ccx", model_index=5)
    residual = residual_dataset(base, data)
    assert residual.forces is None
    for i, n in enumerate(data.num_atoms()):
        z = torch.tensor(data.atomic_numbers[i, :n][None])
        x = torch.tensor(data.coordinates[i, :n][None])
        with torch.no_grad():
            e_base, e_delta = float(base(z, x)), float(delta(z, x))
            combined = float(DeltaModel(base, delta)(z, x))
        assert residual.energies[i] == pytest.approx(data.energies[i] - e_base, abs=1e-9)
        assert combined == pytest.approx(e_base + e_delta, abs=1e-9)
