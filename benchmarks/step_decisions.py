"""What the workers' per-step agreement costs under torchrun: the one small all-reduce each training
step adds (the loss terms and three votes: SIGTERM, SIGINT, checkpoint due), beside the step itself.

    python benchmarks/step_decisions.py [--model conv2d] [--batch-size 128] [--rounds 5] [--steps 20]
    python benchmarks/step_decisions.py --smoke        # seconds: batch 8, one round of 2 steps

Starts two CPU workers (gloo, one thread each), and in interleaved rounds times a full training step
of the model at its defaults (DistributedDataParallel, which already all-reduces the gradients) and
the agreement's all-reduce alone; prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

import torch
import torch.multiprocessing as mp

from vaekit.config import LossConfig
from vaekit.models import create_model
from vaekit.training.distributed import join, leave, workers_from_environment
from vaekit.training.step import TrainStep

SMOKE_FIGURE = r"the agreement's all-reduce alone\s+[\d.]+ ms"  # what tests/test_benchmarks.py reads


def _worker(rank: int, port: int, args: argparse.Namespace, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    workers = workers_from_environment()
    join(workers, torch.device("cpu"))
    torch.manual_seed(0)
    model = create_model(args.model, 10, {})
    step = TrainStep(model, torch.optim.Adam(model.parameters()), "fp32", torch.device("cpu"), LossConfig(),
                     workers=workers)
    batch = torch.randint(0, 10, (args.batch_size, 16, 16), dtype=torch.uint8)
    votes = torch.zeros(6)
    step(batch, 1.0, (0.0, 0.0, 0.0))  # warm-up
    step_ms, agree_ms = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(args.steps):
            step(batch, 1.0, (0.0, 0.0, 0.0))
        step_ms.append((time.perf_counter() - started) / args.steps * 1e3)
        started = time.perf_counter()
        for _ in range(args.steps):
            workers.agree(votes).tolist()
        agree_ms.append((time.perf_counter() - started) / args.steps * 1e3)
    if workers.is_main:
        out["step"], out["agree"] = statistics.median(step_ms), statistics.median(agree_ms)
    leave(workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="conv2d")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="seconds: batch 8, one round of 2 steps")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.rounds, args.steps = 8, 1, 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(port, args, out), nprocs=2)
        step_ms, agree_ms = out["step"], out["agree"]
    print(f"{args.model}, batch {args.batch_size} a worker, 2 CPU workers (gloo), medians of {args.rounds} "
          f"interleaved rounds of {args.steps}:")
    print(f"  training step (incl. the agreement)  {step_ms:8.2f} ms")
    print(f"  the agreement's all-reduce alone     {agree_ms:8.3f} ms  ({agree_ms / step_ms:.2%} of a step)")


if __name__ == "__main__":
    main()
