"""Training throughput (samples/s) of vaekit's conv VAEs per setting, against a plain PyTorch loop.

    python benchmarks/train_throughput.py                       # the full table (tens of minutes)
    python benchmarks/train_throughput.py --models images --batch-sizes 64 --settings plain fp32 --rounds 3 --samples 512
                                                                # the images domain's model at 64×64×3
    python benchmarks/train_throughput.py --models conv2d --batch-sizes 128 \\
        --settings plain fp32 bf16+cl --rounds 2 --samples 1024  # a quick look
    python benchmarks/train_throughput.py --smoke                # seconds: one tiny round (the test suite)

Rows are model × batch size × setting. A setting is 'plain' (the reference: the same layers written
out in plain PyTorch in bench_common.py, fp32, eager, one-hot → forward → cross-entropy + KL →
backward → default Adam step, no augmentation) or vaekit's training step (its own loop with the
ARC augmentation, fused Adam) in a precision, optionally with channels-last weights ('+cl') and
torch.compile ('+compile'), e.g. 'bf16+cl+compile'. Every entry is built and warmed up first (compile
times are printed then), then timed once per round over --samples random samples, all entries in
each round (interleaved), so that the ratios are taken between passes that ran moments apart.

The ratio column divides each round's rate by the same round's rate of the plain loop at
--reference-batch; the table shows its median and min–max over the rounds. GFLOP/s counts the
matmuls and convolutions of one step (forward and backward, torch.utils.flop_counter) times the
rate; '% of peak' divides it by the machine's peak FLOP/s in the setting's precision (fp32, or bf16
for bf16/fp16): the faster of a 2048² matmul and a large 3×3 convolution, measured at the start of
the same round.
"""

from __future__ import annotations

import torch

from bench_common import (DOMAIN_OF_KIND, TWINS, Entry, Setting, memory_format, parser_with_common_options,
                          plain_twin, run_benchmark, vaekit_model)
from vaekit.config import Config
from vaekit.domains import get_domain
from vaekit.models.attention import count_cpu_attention_flops
from vaekit.training.epoch import StepContext, train_one_epoch
from vaekit.training.loop import make_optimizer
from vaekit.training.precision import resolve_precision
from vaekit.training.step import TrainStep, epoch_batch_sizes

DEFAULT_SETTINGS = ["plain", "fp32", "fp32+cl", "bf16", "bf16+cl", "fp32+compile", "bf16+cl+compile"]
SMOKE_FIGURE = r"conv2d\s+8\s+bf16\+cl\s+[\d,]+ \("  # what tests/test_benchmarks.py reads


def plain_entry(name: str, data: torch.Tensor, batch_size: int, setting: Setting) -> Entry:
    torch.manual_seed(0)
    model = plain_twin(name).to(data.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(batch):
        loss = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def run() -> int:
        order = torch.randperm(data.shape[0], device=data.device)
        for start in range(0, data.shape[0], batch_size):
            step(data[order[start:start + batch_size]])
        return data.shape[0]

    step(data[:batch_size])  # warm-up
    return Entry(name, batch_size, setting, run)


def vaekit_entry(name: str, data: torch.Tensor, batch_size: int, setting: Setting) -> Entry:
    device = data.device
    config = Config()
    config.train.batch_size = batch_size
    domain = get_domain(DOMAIN_OF_KIND[TWINS[name]["kind"]])
    torch.manual_seed(0)
    model = memory_format(vaekit_model(name).to(device), setting.channels_last)
    model.train()
    optimizer = make_optimizer(model, config.train)
    step = TrainStep(model, optimizer, resolve_precision(setting.precision, device), device, config.loss)
    # the shuffling and augmentation generators of fit(), without the checkpoints, signals and step log
    ctx = StepContext(torch.Generator(device=device).manual_seed(0), torch.Generator(device=device).manual_seed(1))
    extra = {}
    if setting.compile:
        examples = [data[:size] for size in epoch_batch_sizes(data.shape[0], batch_size)]
        seconds = step.compile_now(examples, beta=1.0)
        extra["compile_seconds"] = seconds
        print(f"  {name} batch {batch_size} {setting.label}: "
              + (f"compiled in {seconds:.1f} s" if seconds is not None else f"compile FAILED ({step.compile_error})"),
              flush=True)

    def run() -> int:
        train_one_epoch(step, data, domain, config, 1.0, ctx)
        return data.shape[0]

    train_one_epoch(step, data[: batch_size * 2], domain, config, 1.0, ctx)  # warm-up
    return Entry(name, batch_size, setting, run, extra=extra)


def main() -> None:
    parser = parser_with_common_options(__doc__, DEFAULT_SETTINGS, batch_sizes=[128, 256, 512],
                                        reference_batch=128, samples=4096)
    count_cpu_attention_flops()  # the transformer rows' attention, on CPU
    run_benchmark(parser.parse_args(), plain_entry, vaekit_entry, lambda twin, batch: plain_loss(twin, batch).backward())


def plain_loss(model, batch: torch.Tensor) -> torch.Tensor:
    """The plain twin's loss, or for a model without one (a transformer) vaekit's β = 1 ELBO loss."""
    if hasattr(model, "loss"):
        return model.loss(batch)
    terms = model.loss_terms(batch)
    return (terms.recon + terms.kl_per_dim.sum(dim=1)).mean()


if __name__ == "__main__":
    main()
