"""Export: a trained ensemble saved in the native format runs in OpenMM and matches the training-side energies."""

import os

import numpy as np
import pytest
import torch

import openmm_ani
import openmm_ani.formats
from openmm_ani.training.build import build_random_model, set_self_energies
from openmm_ani.training.config import tiny_config
from openmm_ani.training.ensemble import train_ensemble
from openmm_ani.training.export import export_models, stack_specs
from openmm_ani.training.trainer import TrainConfig
from openmm_ani.units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from openmm_ani.formats import spec_from_model

from test_training_support import MOLECULES, SELF_ENERGIES, synthetic_dataset

SAE = [SELF_ENERGIES[z] for z in (1, 6, 7, 8)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = synthetic_dataset(6, seed=5)
    config = TrainConfig(max_epochs=3, batch_size=8, force_coefficient=0.1, device="cpu", progress=False)
    models, histories = train_ensemble(lambda k: build_random_model(tiny_config(), seed=10 + k, self_energies=SAE),
                                       data, 2, config, split_seed=1)
    # give the members different self energies: export must fold the difference into the output bias
    set_self_energies(models[1], [e + 0.01 * (i + 1) for i, e in enumerate(SAE)])
    path = os.path.join(tmp_path_factory.mktemp("export"), "trained.npz")
    export_models(models, path, name="test-ensemble")
    return models, path


def training_side_energy(models, z, x):
    """Mean of the members' total energies, float64 (weights are float32, exactly representable)."""
    energies = []
    for m in models:
        m64 = openmm_ani.formats.build_model(spec_from_model(m), dtype=torch.float64)
        set_self_energies(m64, m.self_energies.energies[:-1].tolist())
        with torch.no_grad():
            energies.append(m64(z, x))
    return torch.stack(energies)


def test_exported_ensemble_reproduces_members(trained) -> None:
    """models.load(path) gives each member's energy (self-energy differences folded into the bias)."""
    models, path = trained
    z0, x0 = MOLECULES["CH3OH"]
    z = torch.tensor([z0])
    x = torch.tensor(x0[None] + 0.03, dtype=torch.float64)
    expected = training_side_energy(models, z, x)
    loaded = openmm_ani.models.load(path)
    assert loaded.num_models == 2
    with torch.no_grad():
        got = loaded.member_energies(z, x)
    assert torch.allclose(got, expected, rtol=0, atol=2e-6)  # folded bias stored in float32


def test_exported_ensemble_runs_in_openmm(trained) -> None:
    """TorchForce of the scripted ANIForceModule in a Reference-platform Context: E = E_train * HARTREE_TO_KJ_PER_MOL."""
    import openmm
    import openmmtorch
    from openmm_ani.openmm.module import ANIForceModule

    models, path = trained
    z0, x0 = MOLECULES["CH2O"]
    x = x0 + np.array([0.02, -0.01, 0.03])
    expected = float(training_side_energy(models, torch.tensor([z0]), torch.tensor(x[None])).mean()) * HARTREE_TO_KJ_PER_MOL
    from openmm_ani import ANIPotential

    module = torch.jit.script(ANIForceModule(openmm_ani.models.load(path), list(z0)))
    forces = [openmmtorch.TorchForce(module), ANIPotential(path, precision="double").createForce(list(z0))]
    for force in forces:
        system = openmm.System()
        for _ in z0:
            system.addParticle(1.0)
        system.addForce(force)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(x / NM_TO_ANGSTROM)
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        assert energy == pytest.approx(expected, abs=1e-4)  # kJ/mol; float32-stored folded biases


def test_stacking_mismatched_members_is_an_error() -> None:
    a = spec_from_model(build_random_model(tiny_config(), seed=0))
    small = tiny_config()
    small.hidden["H"] = [16, 12, 4]
    b = spec_from_model(build_random_model(small, seed=0))
    with pytest.raises(ValueError, match="element H"):
        stack_specs([a, b], "bad")
