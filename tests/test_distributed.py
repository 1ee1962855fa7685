"""Data-parallel training: worker gradients average to the whole batch's, and a torchrun run writes
one run directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from conftest import TINY_MODEL_FLAGS, TINY_MODEL_OPTIONS
from vaekit.models import create_model
from vaekit.training.distributed import Workers, join, leave, workers_from_environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grids() -> torch.Tensor:
    return torch.randint(0, 10, (12, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def deterministic_loss(model, batch):
    return model.loss_terms(batch, sample=False).recon.mean()


def _gradient_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    workers = workers_from_environment()
    join(workers, torch.device("cpu"))
    torch.manual_seed(0)
    model = create_model("conv2d", 3, TINY_MODEL_OPTIONS)
    batch = grids()[workers.shard(torch.arange(12))]
    deterministic_loss(model, batch).backward()
    workers.average_gradients(model)
    if workers.is_main:
        torch.save({name: p.grad for name, p in model.named_parameters()}, out)
    leave(workers)


def test_shards_are_disjoint_equal_and_interleave_into_the_single_process_batch():
    order = torch.randperm(11)
    shards = [Workers(rank, 2).shard(order) for rank in range(2)]
    assert [len(s) for s in shards] == [5, 5]
    assert torch.equal(torch.stack(shards, dim=1).flatten(), order[:10])
    assert torch.equal(Workers().shard(order), order)


def test_averaged_worker_gradients_equal_the_whole_batch_gradient(tmp_path):
    out = tmp_path / "grads.pt"
    mp.spawn(_gradient_worker, args=(2, free_port(), str(out)), nprocs=2)
    torch.manual_seed(0)
    model = create_model("conv2d", 3, TINY_MODEL_OPTIONS)
    deterministic_loss(model, grids()).backward()
    averaged = torch.load(out, weights_only=True)
    for name, param in model.named_parameters():
        torch.testing.assert_close(averaged[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


def torchrun_train(corpus, runs, *extra):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "vaekit", "train", "arc", "--data", str(corpus), "--runs-dir", str(runs),
               "--run-id", "ddp", "--no-progress", "--set", "threads=1", *TINY_MODEL_FLAGS, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "COLUMNS": "200"})


def test_torchrun_writes_one_run_and_refuses_to_overwrite_it(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    result = torchrun_train(arc_corpus, runs, "--epochs", "2", "--set", "train.log_every_steps=1")
    shown = f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert result.returncode == 0, shown
    assert "on each of 2 workers" in result.stdout, shown
    assert result.stdout.count("epoch   2/2") == 1, shown  # only the main worker prints
    assert sorted(p.name for p in runs.iterdir()) == ["ddp"]
    metrics = (runs / "ddp" / "metrics.jsonl").read_text()
    assert len(metrics.splitlines()) == 2
    assert (runs / "ddp" / "results" / "metrics.json").is_file()
    # 120 grids a worker in batches of 64: 2 steps an epoch, each logged once (by the main worker)
    steps = [json.loads(line)["step"] for line in (runs / "ddp" / "steps.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]

    again = torchrun_train(arc_corpus, runs, "--epochs", "1")
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr[-3000:]
    assert (runs / "ddp" / "metrics.jsonl").read_text() == metrics


def _ddp_step_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One TrainStep under DistributedDataParallel on this worker's shard, with a noise-free objective
    (lr 0, so the gradients stay to be read), and one draw of this worker's reparameterisation noise."""
    from vaekit.config import LossConfig
    from vaekit.training.loop import step_record
    from vaekit.training.step import TrainStep

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    workers = workers_from_environment()
    join(workers, torch.device("cpu"))
    torch.manual_seed(0)
    model = create_model("conv2d", 3, TINY_MODEL_OPTIONS)

    def objective(batch, beta, loss_cfg):
        terms = model.loss_terms(batch, sample=False)
        return terms.recon.mean(), terms, None

    model.objective = objective
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.0), "fp32", torch.device("cpu"),
                     LossConfig(), workers=workers)
    loss, recon, _ = step(grids()[workers.shard(torch.arange(12))], 1.0)
    logged = step_record(1, 1, 1.0, 0.0, loss, recon, step.kl_per_dim, workers)  # a collective
    torch.manual_seed(workers.noise_seed(5))  # as fit() seeds each worker
    noise = model.loss_terms(grids()[:2], sample=True).recon.detach()  # decoded from a sampled z
    everything = workers.gather({"noise": noise, "grads": {n: p.grad for n, p in model.named_parameters()},
                                 "logged": logged, "own_kl_per_dim": step.kl_per_dim.tolist()})
    if workers.is_main:
        torch.save(everything, out)
    leave(workers)


def test_ddp_step_gradients_equal_the_whole_batch_and_each_worker_draws_its_own_noise(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_step_worker, args=(2, free_port(), str(out)), nprocs=2)
    workers = torch.load(out, weights_only=True)
    torch.manual_seed(0)
    model = create_model("conv2d", 3, TINY_MODEL_OPTIONS)
    deterministic_loss(model, grids()).backward()
    for name, param in model.named_parameters():
        for worker in workers:
            torch.testing.assert_close(worker["grads"][name], param.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert not torch.equal(workers[0]["noise"], workers[1]["noise"])
    # the logged step is the whole batch's: its unclamped KL per dimension averaged over the workers
    with torch.no_grad():
        whole = model.loss_terms(grids(), sample=False)
    assert workers[0]["own_kl_per_dim"] != pytest.approx(workers[1]["own_kl_per_dim"], rel=1e-3)
    for worker in workers:
        assert worker["logged"]["kl_per_dim"] == pytest.approx(whole.kl_per_dim.mean(0).tolist(), rel=1e-4, abs=1e-6)
        assert worker["logged"]["recon"] == pytest.approx(float(whole.recon.mean()), rel=1e-5)
