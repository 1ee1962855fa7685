"""Evaluation throughput (samples/s; grids/s on ARC) of `vaekit eval`'s ``evaluate`` per setting.

    python benchmarks/eval_throughput.py                        # the full table
    python benchmarks/eval_throughput.py --models conv2d --settings plain fp32 bf16+cl --rounds 2 --samples 2048

Rows are model × evaluation batch size × setting. 'plain' is the reference: the same layers in plain
PyTorch (bench_common.py) under torch.no_grad in fp32, computing the loss from a sampled z and the
quality of the decoded posterior mean. The other settings run ``vaekit.evaluation.evaluate`` (loss
terms, per-dimension KL, active units and the domain's quality metrics, under inference_mode) in a
precision, optionally with channels-last weights ('+cl'). Untrained models: the cost does not depend
on the weights. Entries are timed in interleaved rounds; ratios are paired per round against the
plain entry at --reference-batch, and so is the fraction of the peak FLOP/s (see train_throughput.py).
'+compile' does not apply: evaluation is not compiled.
"""

from __future__ import annotations

import argparse

import torch

from bench_common import (TWINS, Entry, Setting, check_samples, flops_per_sample, interleaved_rounds,
                          memory_format, plain_twin, random_corpus, report)
from vaekit.config import LossConfig
from vaekit.domains import get_domain
from vaekit.evaluation import evaluate
from vaekit.models import create_model
from vaekit.training.device import resolve_device
from vaekit.training.precision import resolve_precision

DEFAULT_SETTINGS = ["plain", "fp32", "fp32+cl", "bf16", "bf16+cl"]
DOMAIN_OF_KIND = {"grid": "arc", "frame": "atari"}


def plain_entry(name: str, data: torch.Tensor, batch_size: int, setting: Setting) -> Entry:
    torch.manual_seed(0)
    model = plain_twin(name).to(data.device).eval()

    def run() -> int:
        model.evaluate(data, batch_size)
        return data.shape[0]

    model.evaluate(data[:batch_size], batch_size)  # warm-up
    return Entry(name, batch_size, setting, run)


def vaekit_entry(name: str, data: torch.Tensor, batch_size: int, setting: Setting) -> Entry:
    if setting.compile:
        raise SystemExit(f"setting '{setting.label}': evaluation is not compiled; drop '+compile'")
    device = data.device
    domain = get_domain(DOMAIN_OF_KIND[TWINS[name]["kind"]])
    torch.manual_seed(0)
    model = memory_format(create_model(name, TWINS[name]["latent"]).to(device), setting.channels_last)
    precision = resolve_precision(setting.precision, device)

    def run() -> int:
        evaluate(model, data, domain, LossConfig(), 1.0, batch_size=batch_size, precision=precision)
        return data.shape[0]

    evaluate(model, data[:batch_size], domain, LossConfig(), 1.0, batch_size=batch_size, precision=precision)
    return Entry(name, batch_size, setting, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["conv2d", "conv2d_wide"], choices=list(TWINS))
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1024],
                        help="evaluation batch sizes (vaekit evaluates in batches of 1024)")
    parser.add_argument("--reference-batch", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8192, help="samples per timed pass")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the rows (every round) to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = [Setting.parse(s) for s in args.settings]
    batch_sizes = sorted(set(args.batch_sizes) | ({args.reference_batch} if any(s.plain for s in settings) else set()))
    check_samples(args.samples, batch_sizes)
    entries = []
    for name in args.models:
        data = random_corpus(name, args.samples, device)
        twin = plain_twin(name).to(device).eval()
        flops = flops_per_sample(lambda: twin.evaluate(data[:args.reference_batch], args.reference_batch),
                                 args.reference_batch)
        for batch_size in batch_sizes:
            for setting in settings:
                if not setting.plain and batch_size not in args.batch_sizes:
                    continue
                entry = (plain_entry if setting.plain else vaekit_entry)(name, data, batch_size, setting)
                entry.flops_per_sample = flops
                entry.extra["reference"] = setting.plain and batch_size == args.reference_batch
                entries.append(entry)
    print(f"{len(entries)} entries built; timing {args.rounds} interleaved rounds of {args.samples} samples each",
          flush=True)
    peaks = interleaved_rounds(entries, args.rounds, device)
    report(entries, peaks, "samples/s", args.json)


if __name__ == "__main__":
    main()
