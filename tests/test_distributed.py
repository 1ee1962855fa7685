"""Data-parallel training: worker gradients average to the whole batch's, and a torchrun run writes
one run directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import TINY_MODEL_FLAGS, TINY_MODEL_OPTIONS
from typer.testing import CliRunner

from vaekit.cli import app
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


def test_shards_are_disjoint_equal_and_interleave_into_the_single_process_batch():
    order = torch.randperm(11)
    shards = [Workers(rank, 2).shard(order) for rank in range(2)]
    assert [len(s) for s in shards] == [5, 5]
    assert torch.equal(torch.stack(shards, dim=1).flatten(), order[:10])
    assert torch.equal(Workers().shard(order), order)


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
    assert "Warning" not in result.stderr, shown  # find_unused_parameters, broadcast_buffers: none of torch's
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
    from vaekit.training.epoch import step_record
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
    model.has_unused_parameters = True  # z = mu: the log-variance head gets no gradient from this objective
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


FAULTY_WORKER = Path(__file__).with_name("faulty_worker.py")


def start_workers(corpus, runs, *extra, env: dict | None = None) -> list[subprocess.Popen]:
    """Two training workers on this machine, started as torchrun starts them (the env:// rendezvous),
    so that each one's exit code can be read and a signal sent to one of them only."""
    port = free_port()
    args = ["train", "arc", "--data", str(corpus), "--runs-dir", str(runs), "--run-id", "ddp", "--no-progress",
            "--set", "threads=1", "--set", "train.early_stopping_patience=0", *TINY_MODEL_FLAGS, *map(str, extra)]
    return [subprocess.Popen([sys.executable, str(FAULTY_WORKER), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **(env or {}), "PYTHONPATH": str(Path(__file__).parents[1]),
                                  "OMP_NUM_THREADS": "1", "COLUMNS": "200", "MASTER_ADDR": "127.0.0.1",
                                  "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
                                  "WORLD_SIZE": "2"})
            for rank in range(2)]


def finish(processes: list[subprocess.Popen], seconds: float) -> list[tuple[int, str, str]]:
    """Each worker's (exit code, stdout, stderr); fails the test if any runs longer than ``seconds``."""
    deadline, outcomes = time.monotonic() + seconds, []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail(f"a worker was still running after {seconds} s")
        outcomes.append((process.returncode, stdout, stderr))
    return outcomes


def finite_checkpoints(run) -> bool:
    for path in (run / "checkpoints").iterdir():
        saved = torch.load(path, weights_only=True)
        weights = saved["model"] if path.name == "last.pt" else saved
        if not all(torch.isfinite(v).all() for v in weights.values()):
            return False
    return True


# 240 training grids, 120 a worker in batches of 64: 2 steps an epoch, so step 3 is epoch 2's first.
def test_a_nan_on_one_worker_stops_both_with_65_and_every_checkpoint_is_finite(tmp_path, arc_corpus):
    started = time.monotonic()
    workers = start_workers(arc_corpus, tmp_path / "runs", "--epochs", 3,
                            env={"VAEKIT_TEST_NAN_RANK": "1", "VAEKIT_TEST_NAN_STEP": "3"})
    outcomes = finish(workers, 60)
    shown = "\n".join(f"worker {rank}: exit {code}\n{err[-1500:]}" for rank, (code, _, err) in enumerate(outcomes))
    assert [code for code, _, _ in outcomes] == [65, 65], shown
    for _, _, stderr in outcomes:
        assert "epoch 2, step 3 (batch 1 of 2 in the epoch): the KL term is nan" in stderr, shown
        assert "Traceback" not in stderr and "Connection closed" not in stderr, shown
    run = tmp_path / "runs" / "ddp"
    assert finite_checkpoints(run)
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state"]["epoch"] == 1
    print(f"two workers stopped together in {time.monotonic() - started:.1f} s")


@pytest.mark.slow
def test_skip_under_two_workers_skips_the_step_on_both(tmp_path, arc_corpus):
    workers = start_workers(arc_corpus, tmp_path / "runs", "--epochs", 2, "--set", "train.nonfinite=skip",
                            env={"VAEKIT_TEST_NAN_RANK": "1", "VAEKIT_TEST_NAN_STEP": "3"})
    outcomes = finish(workers, 90)
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes[1][2][-2000:] + outcomes[0][2][-2000:]
    rows = [json.loads(line) for line in (tmp_path / "runs" / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_skipped_steps"] for r in rows] == [0, 1]
    assert finite_checkpoints(tmp_path / "runs" / "ddp")


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_both_resumably_and_resume_finishes(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    # batches of 16: 8 steps an epoch a worker; the main worker logs every step
    options = ["--epochs", 2, "--batch-size", 16, "--set", "train.log_every_steps=1"]
    workers = start_workers(arc_corpus, runs, *options)
    steps, deadline = runs / "ddp" / "steps.jsonl", time.monotonic() + 120
    while not (steps.is_file() and len(steps.read_text().splitlines()) >= 11):  # epoch 2's third step
        assert all(w.poll() is None for w in workers) and time.monotonic() < deadline, finish(workers, 10)
        time.sleep(0.02)
    workers[1].send_signal(signal.SIGTERM)
    outcomes = finish(workers, 60)
    shown = "\n".join(f"worker {rank}: exit {code}\n{err[-1500:]}" for rank, (code, _, err) in enumerate(outcomes))
    assert [code for code, _, _ in outcomes] == [143, 143], shown
    assert "stopped by SIGTERM in epoch 2" in outcomes[0][2], shown
    last = torch.load(runs / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    assert last["position"]["epoch"] == 2 and 0 < last["position"]["step"] < 8
    assert len(last["rng"]["by_rank"]) == 2
    config = (runs / "ddp" / "config.yaml").read_text()
    alone = CliRunner().invoke(app, ["train", "arc", "--data", str(arc_corpus), "--runs-dir", str(runs), "--run-id",
                                     "ddp", "--no-progress", "--set", "threads=1", *TINY_MODEL_FLAGS,
                                     *map(str, options), "--batch-size", "16", "--resume"])
    assert alone.exit_code == 2 and "workers was 2, now 1" in alone.stderr, alone.output
    assert (runs / "ddp" / "config.yaml").read_text() == config
    outcomes = finish(start_workers(arc_corpus, runs, *options, "--resume"), 120)
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes[0][2][-2000:] + outcomes[1][2][-2000:]
    rows = [json.loads(line) for line in (runs / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [json.loads(line)["step"] for line in steps.read_text().splitlines()] == list(range(1, 17))
