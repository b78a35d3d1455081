"""DistributedDataParallel on CPU (2 processes, gloo) equals single-process training on the union batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from openmm_ani.training.build import build_random_model
from openmm_ani.training.config import tiny_config
from openmm_ani.training.distributed import DistributedContext
from openmm_ani.training.optim import OptimizerConfig
from openmm_ani.training.trainer import TrainConfig, Trainer

from test_training_support import SELF_ENERGIES, synthetic_dataset

SAE = [SELF_ENERGIES[z] for z in (1, 6, 7, 8)]


def one_step(force: float, context=None):
    """Gradients and parameters after one step on an 11-conformation batch (uneven over 2 ranks; the only
    NH3 conformation falls on rank 1, so rank 0 has no nitrogen and its N network gets no gradient there)."""
    torch.set_num_threads(1)
    data = synthetic_dataset(3, seed=7)  # 15 conformations of 5 molecules
    model = build_random_model(tiny_config(), seed=4, self_energies=SAE, dtype=torch.float64)
    config = TrainConfig(max_epochs=1, batch_size=11, force_coefficient=force, device="cpu", dtype="float64",
                         optimizer=OptimizerConfig(lr=1e-3, bias_lr=1e-2), progress=False)
    trainer = Trainer(model, data, data, config, distributed=context)
    batch = data.make_batch([0, 6, 1, 3, 2, 4, 5, 9, 10, 12, 13], dtype=torch.float64)
    trainer.step(batch)
    return {name: (p.grad.clone() if p.grad is not None else None, p.detach().clone())
            for name, p in trainer.model.named_parameters()}


FORCE_COEFFICIENTS = (0.0, 0.1)  # energy only, energy + force


def worker(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        results = [one_step(force, DistributedContext(rank, world, 0)) for force in FORCE_COEFFICIENTS]
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    """One 2-process gloo job (spawning costs most of the time) for both loss kinds."""
    tmp = tmp_path_factory.mktemp("ddp")
    out = os.path.join(tmp, "rank0.pt")
    mp.spawn(worker, args=(2, os.path.join(tmp, "store"), out), nprocs=2, join=True)
    return torch.load(out)


@pytest.mark.parametrize("case", [0, 1], ids=["energy", "energy+force"])
def test_ddp_two_processes_equals_union_batch(distributed_results, case) -> None:
    """Gradients (averaged by DDP over uneven 6/5 shards) and parameters after one AdamW+SGD step equal
    single-process training on the whole 11-conformation batch."""
    distributed = distributed_results[case]
    single = one_step(FORCE_COEFFICIENTS[case])
    assert set(distributed) == set(single)
    for name, (grad, param) in single.items():
        d_grad, d_param = distributed[name]
        assert grad is not None and d_grad is not None, name
        assert float(grad.abs().max()) > 0, name
        assert torch.allclose(d_grad, grad, rtol=1e-6, atol=1e-12), name
        assert torch.allclose(d_param, param, rtol=0, atol=1e-9), name
