"""The bf16 training step of a domain's default model, profiled: its FLOP/s as a share of the
machine's bf16 convolution peak, the top operators (torch.profiler), and which oneDNN kernels ran.

    python benchmarks/profile_step.py                           # sprites' conv2d_frames, batch 64
    python benchmarks/profile_step.py --domain atari --batch-size 128 --steps 30
    python benchmarks/profile_step.py --domain arc --model conv2d_wide --batch-size 128
    python benchmarks/profile_step.py --smoke                   # seconds: batch 4, 2 steps

Builds the domain's default model (its config's model name and options, at the domain's item
shape) and vaekit's ``TrainStep`` in bf16 (autocast, fused Adam) and times ``--steps`` steps on a
random batch, in ``--rounds`` rounds interleaved with the bf16 peak (a large 3×3 channels-last
convolution, ``bench_common.compute_peak``'s); prints the medians, the step's FLOPs (matmuls and
convolutions forward and backward, torch.utils.flop_counter) per second and as a share of the peak.
Then profiles ``--profile-steps`` steps with torch.profiler and prints the top operators by self CPU
time, and runs one step again in a child process with oneDNN's verbose log on (what ONEDNN_VERBOSE=1
prints) to time the oneDNN primitives by kind and implementation:ISA (…amx: AMX tiles;
avx512_core_bf16: AVX512-BF16; ref or a gemm without bf16: a slower path).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from bench_common import flops_per_sample
from vaekit.config import LossConfig, TrainConfig
from vaekit.domains import get_domain
from vaekit.models import create_model
from vaekit.training.loop import make_optimizer
from vaekit.training.step import TrainStep

SMOKE_FIGURE = r"bf16 step: [\d.]+ ms, [\d,.]+ GFLOP/s = [\d.]+ % of the bf16 convolution peak"
ITEM_SHAPES = {"arc": (16, 16), "sprites": (64, 64, 1), "atari": (64, 64, 3), "images": (64, 64, 3)}


def build_step(domain: str, batch_size: int, model_name: str | None = None) -> tuple[TrainStep, torch.Tensor]:
    """vaekit's bf16 training step of the domain's default model (or ``model_name`` at its defaults)
    and a random batch of the domain's stored items."""
    model_config = get_domain(domain).default_config()["model"]
    options = dict(model_config.get("options", {})) if model_name is None else {}
    torch.manual_seed(0)
    if domain == "arc":  # 16×16 grids of colours 0–9
        batch = torch.randint(0, 10, (batch_size, *ITEM_SHAPES[domain]), dtype=torch.uint8)
    else:
        height, width, channels = ITEM_SHAPES[domain]
        options.update(in_channels=channels, frame_size=[height, width])
        batch = torch.randint(0, 256, (batch_size, height, width, channels), dtype=torch.uint8)
        if domain == "sprites":
            batch = (batch > 127).to(torch.uint8) * 255  # binary sprites
    model = create_model(model_name or model_config["name"], model_config["latent_dim"], options)
    step = TrainStep(model, make_optimizer(model, TrainConfig()), "bf16", torch.device("cpu"), LossConfig())
    return step, batch


def conv_peak(seconds: float) -> float:
    """bf16 FLOP/s of a large 3×3 channels-last convolution (bench_common.compute_peak's conv)."""
    x = torch.randn(128, 128, 16, 16, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    F.conv2d(x, w, padding=1)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        F.conv2d(x, w, padding=1)
        count += 1
    return 2 * 128 * 16 * 16 * 128 * 128 * 9 * count / (time.perf_counter() - started)


def onednn_kernels(args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    """oneDNN primitives of one step after the warm-up, from a child process with oneDNN's verbose log
    on for that step: per (kind, implementation:ISA), the count and the milliseconds they took."""
    command = [sys.executable, __file__, "--one-step", "--domain", args.domain, "--batch-size", str(args.batch_size),
               *(["--model", args.model] if args.model else [])]
    result = subprocess.run(command, capture_output=True, text=True)
    kernels: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for line in result.stdout.splitlines():
        parts = line.split(",")
        if line.startswith("onednn_verbose") and parts[3:4] == ["exec"] and len(parts) > 7:
            entry = kernels[(parts[5], parts[6])]
            entry[0] += 1
            entry[1] += float(parts[-1])
    return kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="sprites", choices=list(ITEM_SHAPES))
    parser.add_argument("--model", default=None, help="a registered model at its defaults (default: the domain's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile-steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=12, help="operators in the profile's table")
    parser.add_argument("--smoke", action="store_true", help="seconds: batch 4, one round of 2 steps")
    parser.add_argument("--one-step", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.steps, args.rounds, args.profile_steps, args.top = 4, 2, 1, 1, 5
    step, batch = build_step(args.domain, args.batch_size, args.model)
    step(batch, 1.0)  # warm-up: oneDNN builds its kernels for these shapes
    if args.one_step:  # the child of onednn_kernels: one step, with oneDNN's verbose log on
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            step(batch, 1.0)
        return
    flops = flops_per_sample(lambda: step(batch, 1.0), args.batch_size) * args.batch_size
    seconds, peaks = [], []
    for _ in range(args.rounds):
        peaks.append(conv_peak(0.05 if args.smoke else 1.0))
        started = time.perf_counter()
        for _ in range(args.steps):
            step(batch, 1.0)
        seconds.append((time.perf_counter() - started) / args.steps)
    step_s, peak = statistics.median(seconds), statistics.median(peaks)
    shares = [100 * flops / s / p for s, p in zip(seconds, peaks)]
    print(f"{args.domain} {type(step.model).__name__} ({step.model.latent_dim} latents), batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {args.rounds} interleaved rounds, load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"bf16 convolution peak {peak / 1e9:,.0f} GFLOP/s (min {min(peaks) / 1e9:,.0f}, max {max(peaks) / 1e9:,.0f}); "
          f"the step does {flops / 1e9:.2f} GFLOP")
    print(f"bf16 step: {step_s * 1e3:.1f} ms, {flops / step_s / 1e9:,.1f} GFLOP/s = {statistics.median(shares):.1f} % "
          f"of the bf16 convolution peak (rounds {', '.join(f'{s:.1f}' for s in shares)}); "
          f"{args.batch_size / step_s:,.0f} samples/s")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(args.profile_steps):
            step(batch, 1.0)
    print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    kernels = onednn_kernels(args)
    total = sum(ms for _, ms in kernels.values()) or 1.0
    print(f"oneDNN primitives of one step (oneDNN's verbose log, {total:.1f} ms in all), by time:")
    for (kind, implementation), (count, ms) in sorted(kernels.items(), key=lambda item: -item[1][1])[:args.top]:
        print(f"  {kind:<14} {implementation:<58} {count:4d}×  {ms:8.2f} ms  {100 * ms / total:5.1f} %")


if __name__ == "__main__":
    main()
