"""Before and after, in one process: the bf16 training step as shipped against the same step with one
speed lever (or all of them) patched back to its old behaviour, timed in interleaved rounds.

    python benchmarks/step_ab.py                                 # ARC's conv2d, batch 128, every lever
    python benchmarks/step_ab.py --domain atari --batch-size 128 --rounds 5 --steps 10
    python benchmarks/step_ab.py --levers matmul_deconv_weight_grad --model conv2d_wide
    python benchmarks/step_ab.py --smoke                         # seconds: batch 4, one round of 2 steps

Each entry is its own model and ``TrainStep`` (profile_step.build_step: the domain's default model,
bf16 autocast, fused Adam, on a random batch of the domain's items, the same seed for all); an entry
that reverts a lever runs its steps inside that lever's ``revert`` context. Each round times every
entry for --steps steps, in an order that rotates from round to round; the table gives each entry's
step time and its speed relative to the shipped step, median (min–max) of the rounds' paired ratios
(above 1: the shipped step is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from unittest import mock

import torch
import torch.nn.functional as F

from profile_step import ITEM_SHAPES, build_step
from vaekit.models.conv_grads import Conv2d, TransposedConv2d
from vaekit.models.layers import Flatten

SMOKE_FIGURE = r"all levers reverted\s+[\d.]+\s+[\d.]+ \("  # what tests/test_benchmarks.py reads


def _oneDNN_weight_grads(layer_class):
    @contextlib.contextmanager
    def revert(model):
        """The layers' weight gradients by oneDNN, as before the matmul (vaekit.models.conv_grads)."""
        with mock.patch.object(layer_class, "takes_matmul_weight_grad", lambda *args: False):
            yield

    return revert


@contextlib.contextmanager
def _relu_out_of_place(model):
    """Every ReLU out of place, as before vaekit.models.layers.relu."""
    in_place = [m for m in model.modules() if isinstance(m, torch.nn.ReLU) and m.inplace]
    for m in in_place:
        m.inplace = False
    try:
        yield
    finally:
        for m in in_place:
            m.inplace = True


def _old_input(self, batch):
    if hasattr(self, "num_colors"):  # a grid: F.one_hot's int64 tensor, then float(), then autocast's cast
        return F.one_hot(batch.long(), self.num_colors).permute(0, 3, 1, 2).float()
    return self.prepare(batch)  # frames: fp32, then autocast's cast


@contextlib.contextmanager
def _fp32_input(model):
    """The model's input built in fp32 and cast by autocast, as before the one-pass input."""
    with mock.patch.object(type(model), "encoder_input", _old_input):
        yield


@contextlib.contextmanager
def _flatten_contiguous_gradient(model):
    """The encoder's flatten with nn.Flatten's contiguous gradient, as before layers.Flatten."""
    with mock.patch.object(Flatten, "forward", torch.nn.Flatten.forward):
        yield


# name -> context that reverts the lever on a model for the steps run inside it
LEVERS: dict[str, Callable] = {
    "matmul_deconv_weight_grad": _oneDNN_weight_grads(TransposedConv2d),
    "matmul_conv_weight_grad": _oneDNN_weight_grads(Conv2d),
    "relu_in_place": _relu_out_of_place,
    "one_pass_input": _fp32_input,
    "flatten_channels_last_grad": _flatten_contiguous_gradient,
}


@contextlib.contextmanager
def reverted(levers: list[str], model):
    with contextlib.ExitStack() as stack:
        for name in levers:
            stack.enter_context(LEVERS[name](model))
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="arc", choices=list(ITEM_SHAPES))
    parser.add_argument("--model", default=None, help="a registered model at its defaults (default: the domain's)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--steps", type=int, default=20, help="steps per entry per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="seconds: batch 4, one round of 2 steps")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.steps, args.rounds = 4, 2, 1
    variants = {"shipped": [], **{f"without {name}": [name] for name in args.levers}}
    if len(args.levers) > 1:
        variants["all levers reverted"] = list(args.levers)
    entries = {}
    for label, levers in variants.items():
        step, batch = build_step(args.domain, args.batch_size, args.model)
        with reverted(levers, step.model):
            step(batch, 1.0)  # warm-up: oneDNN builds its kernels for these shapes
        entries[label] = (step, batch, levers, [])
    for r in range(args.rounds):
        labels = list(entries)
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            step, batch, levers, seconds = entries[label]
            with reverted(levers, step.model):
                started = time.perf_counter()
                for _ in range(args.steps):
                    step(batch, 1.0)
                seconds.append((time.perf_counter() - started) / args.steps)
    shipped = entries["shipped"][3]
    print(f"{args.domain} {type(entries['shipped'][0].model).__name__}, batch {args.batch_size}, bf16, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {args.rounds} interleaved rounds of "
          f"{args.steps} steps, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'entry':<36}{'step ms':>9}  {'shipped speed / entry speed, median (min–max)':>46}")
    for label, (_, _, _, seconds) in entries.items():
        ratios = [s / t for s, t in zip(seconds, shipped)]
        print(f"{label:<36}{statistics.median(seconds) * 1e3:>9.2f}  {statistics.median(ratios):>8.3f} "
              f"({min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()
