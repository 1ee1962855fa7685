"""Training throughput (samples/s) of the grid VAEs through the real training hot path.

    python benchmarks/train_throughput.py [--models conv2d conv2d_wide] [--samples 20480] [--device auto]

Uses random 16×16 grids of the ARC corpus shape (the cost does not depend on their content), with
augmentation on, as `vaekit train arc` runs it. Prints one line per model.
"""

from __future__ import annotations

import argparse
import time

import torch

from vaekit.config import Config
from vaekit.domains import get_domain
from vaekit.models import count_parameters, create_model
from vaekit.training.device import resolve_device
from vaekit.training.loop import make_optimizer, train_one_epoch


def measure(name: str, samples: int, device: torch.device, batch_size: int) -> float:
    config = Config()
    config.train.batch_size = batch_size
    torch.manual_seed(0)
    model = create_model(name, latent_dim=10).to(device)
    data = torch.randint(0, 10, (samples, 16, 16), dtype=torch.uint8, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    optimizer = make_optimizer(model, config.train)
    domain = get_domain("arc")
    warmup = data[: batch_size * 4]
    train_one_epoch(model, warmup, domain, config, 1.0, optimizer, generator, None, None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    train_one_epoch(model, data, domain, config, 1.0, optimizer, generator, None, None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = samples / (time.perf_counter() - started)
    print(f"{name:<12} {count_parameters(model):>10,} params  batch {batch_size}  {rate:>9,.0f} samples/s  "
          f"({device}, {torch.get_num_threads()} threads, torch {torch.__version__})")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["conv2d", "conv2d_wide"])
    parser.add_argument("--samples", type=int, default=20_480)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    for name in args.models:
        measure(name, args.samples, device, args.batch_size)


if __name__ == "__main__":
    main()
