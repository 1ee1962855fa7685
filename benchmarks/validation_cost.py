"""What the per-epoch validation costs beside the training epoch, for a shipped config.

    python benchmarks/validation_cost.py --config examples/configs/arc_quickstart.yaml --data /work/data/31/arc20k.npz
    python benchmarks/validation_cost.py --config examples/configs/atari_breakout.yaml --data data/breakout.npz \\
        --train-samples 4096
    python benchmarks/validation_cost.py --smoke          # seconds: ARC's conv2d on random grids (the test suite)

Builds the run as `vaekit train` does (the config's layers, its corpus's splits on the device, the
precision resolved, the threads applied) and, in interleaved rounds, times one training epoch
(``train_one_epoch``, over --train-samples of the training split when given) and the validation the
loop runs after each epoch (``evaluate`` on the validation split, then the domain's extra metrics),
with the evaluation batch of the loop (``evaluation_batch_size``) and with each --eval-batch-sizes.
Prints the medians and min–max, and the validation's share of an epoch that trains on the whole
training split (its seconds scaled up from --train-samples).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from vaekit.domains import get_domain
from vaekit.evaluation import evaluate, evaluation_batch_size
from vaekit.experiment import resolve_config
from vaekit.trained_runs import build_model, split_tensors
from vaekit.training.device import apply_threads
from vaekit.training.epoch import StepContext, train_one_epoch
from vaekit.training.loop import make_optimizer
from vaekit.training.precision import inference, resolve_precision
from vaekit.training.step import TrainStep

SMOKE_FIGURE = r"validation, batch \d+\s+[\d.]+ s \([\d.]+–[\d.]+\)\s+[\d.]+ % of a whole epoch"  # what tests/test_benchmarks.py reads


def build(args: argparse.Namespace):
    """The config, domain, model, tensors and training step of the run the arguments describe."""
    device = torch.device("cpu")
    layers = [("command", {"data": {"path": args.data}})] if args.data else []
    domain_name = args.domain
    config = resolve_config(domain_name, Path(args.config) if args.config else None, layers)
    config.train.precision = resolve_precision(config.train.precision, device)
    apply_threads(config.threads)
    domain = get_domain(config.domain)
    if args.smoke:  # random grids instead of a corpus
        tensors = {split: torch.randint(0, 10, (n, 16, 16), dtype=torch.uint8) for split, n in (("train", 64), ("val", 32))}
    else:
        tensors = split_tensors(domain, config, device)
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    domain.prepare_model(model, config)
    step = TrainStep(model, make_optimizer(model, config.train), config.train.precision, device, config.loss)
    return config, domain, model, tensors, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="arc")
    parser.add_argument("--config", default=None, help="a config YAML (default: the domain's defaults)")
    parser.add_argument("--data", default=None, help="the corpus (default: the config's data.path)")
    parser.add_argument("--train-samples", type=int, default=0, help="time the training epoch on this many (0: all)")
    parser.add_argument("--eval-batch-sizes", type=int, nargs="*", default=[], help="also validate with these batches")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="seconds: conv2d on 64 random grids, one round")
    args = parser.parse_args()
    if args.smoke:
        args.domain, args.config, args.rounds, args.eval_batch_sizes = "arc", None, 1, [16]
    config, domain, model, tensors, step = build(args)
    train = tensors["train"][: args.train_samples or None]
    scale = tensors["train"].shape[0] / train.shape[0]
    ctx = StepContext(torch.Generator().manual_seed(config.seed), torch.Generator().manual_seed(config.seed + 1))
    beta = 1.0

    def validate(batch_size: int) -> None:
        evaluate(model, tensors["val"], domain, config.loss, beta, batch_size=batch_size,
                 precision=config.train.precision, objective=step.objective)
        with inference(config.train.precision, train.device):
            domain.extra_metrics(model, tensors, config, during_training=True)

    entries = {"training epoch": lambda: train_one_epoch(step, train, domain, config, beta, ctx)}
    loop_batch = evaluation_batch_size(tensors["val"])  # the batch the loop validates with
    for batch_size in dict.fromkeys([loop_batch, *args.eval_batch_sizes]):
        entries[f"validation, batch {batch_size}"] = lambda b=batch_size: validate(b)
    validate(loop_batch)  # warm-up
    times: dict[str, list[float]] = {label: [] for label in entries}
    for r in range(args.rounds):
        labels = list(entries)
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            started = time.perf_counter()
            entries[label]()
            times[label].append(time.perf_counter() - started)
    print(f"{config.domain} {config.model.name} (d = {config.model.latent_dim}), {config.train.precision}, train batch "
          f"{config.train.batch_size}, {train.shape[0]:,} of {tensors['train'].shape[0]:,} training and "
          f"{tensors['val'].shape[0]:,} validation items, {torch.get_num_threads()} threads, {args.rounds} interleaved "
          f"rounds, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    epoch = [t * scale for t in times["training epoch"]]
    for label, seconds in times.items():
        spread = f"{statistics.median(seconds):8.3f} s ({min(seconds):.3f}–{max(seconds):.3f})"
        share = "" if label == "training epoch" else \
            f"  {100 * statistics.median(v / (v + e) for v, e in zip(seconds, epoch)):.1f} % of a whole epoch"
        print(f"  {label:<26}{spread}{share}")


if __name__ == "__main__":
    main()
