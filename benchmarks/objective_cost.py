"""What each training objective costs per step against the plain ELBO, on the sprites network.

    python benchmarks/objective_cost.py [--batch-sizes 64,256] [--rounds 5] [--steps 10] [--precision bf16]
    python benchmarks/objective_cost.py --smoke        # seconds: tiny sizes, checks that it runs

Builds disentanglement_lib's network (``conv2d_dlib``, 64×64×1, d = 10) once per objective with the
objective's default keys, and in interleaved rounds (every objective once per round, the order
rotating) times ``steps`` full training steps (forward, backward, both optimizers) on the same random
batch. Prints, per batch size, each objective's median step time as a ratio to ``elbo``'s in the same
run. β-TCVAE's pairwise term grows with the batch; FactorVAE trains a second network; IWAE decodes K + 1
times. Run it on an idle machine and say so beside the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vaekit.config import LossConfig, TrainConfig
from vaekit.models import create_model
from vaekit.objectives import OBJECTIVES, ObjectiveContext, create_objective
from vaekit.training.loop import make_optimizer
from vaekit.training.step import TrainStep

SMOKE_OPTIONS = {"factorvae": {"disc_hidden": 8, "disc_layers": 1}}
SMOKE_FIGURE = r"elbo\s+[\d.]+ ms/step\s+1\.00× elbo"  # what tests/test_benchmarks.py reads


def make_step(name: str, batch_size: int, precision: str, smoke: bool) -> TrainStep:
    torch.manual_seed(0)
    model = create_model("conv2d_dlib", 10, {})
    options = SMOKE_OPTIONS.get(name, {}) if smoke else {}
    objective = create_objective(name, options, ObjectiveContext(latent_dim=10, dataset_size=737_280,
                                                                 steps_per_epoch=100, batch_size=batch_size))
    return TrainStep(model, make_optimizer(model, TrainConfig(lr=1e-4)), precision, torch.device("cpu"),
                     LossConfig(), objective=objective)


def time_steps(step: TrainStep, batch: torch.Tensor, steps: int) -> float:
    started = time.perf_counter()
    for index in range(steps):
        step(batch, 1.0, global_step=index + 1)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: checks that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.batch_sizes, args.rounds, args.steps = "4", 1, 1
    names = OBJECTIVES.names()
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        batch = torch.randint(0, 2, (batch_size, 64, 64, 1), dtype=torch.uint8) * 255
        steps = {name: make_step(name, batch_size, args.precision, args.smoke) for name in names}
        for step in steps.values():
            step(batch, 1.0, global_step=1)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in names}
        for round_index in range(args.rounds):
            order = names[round_index % len(names):] + names[:round_index % len(names)]
            for name in order:
                times[name].append(time_steps(steps[name], batch, args.steps))
        base = statistics.median(times["elbo"])
        print(f"batch {batch_size}, {args.precision}, {args.rounds} rounds of {args.steps} steps "
              f"(torch {torch.__version__}, {torch.get_num_threads()} threads): elbo {base * 1000:.1f} ms/step")
        for name in names:
            median = statistics.median(times[name])
            print(f"  {name:<10} {median * 1000:8.1f} ms/step  {median / base:5.2f}× elbo")


if __name__ == "__main__":
    main()
