"""Evaluation throughput (samples/s; grids/s on ARC) of `vaekit eval`'s ``evaluate`` per setting.

    python benchmarks/eval_throughput.py                        # the full table
    python benchmarks/eval_throughput.py --models conv2d --settings plain fp32 bf16+cl --rounds 2 --samples 2048
    python benchmarks/eval_throughput.py --smoke                # seconds: one tiny round (the test suite)

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

import torch

from bench_common import (DOMAIN_OF_KIND, TWINS, Entry, Setting, memory_format, parser_with_common_options,
                          plain_twin, run_benchmark, vaekit_model)
from vaekit.config import LossConfig
from vaekit.domains import get_domain
from vaekit.evaluation import evaluate
from vaekit.training.precision import resolve_precision

DEFAULT_SETTINGS = ["plain", "fp32", "fp32+cl", "bf16", "bf16+cl"]
SMOKE_FIGURE = r"conv2d\s+8\s+bf16\+cl\s+[\d,]+ \("  # what tests/test_benchmarks.py reads


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
    model = memory_format(vaekit_model(name).to(device), setting.channels_last)
    precision = resolve_precision(setting.precision, device)

    def run() -> int:
        evaluate(model, data, domain, LossConfig(), 1.0, batch_size=batch_size, precision=precision)
        return data.shape[0]

    evaluate(model, data[:batch_size], domain, LossConfig(), 1.0, batch_size=batch_size, precision=precision)
    return Entry(name, batch_size, setting, run)


def main() -> None:
    parser = parser_with_common_options(__doc__, DEFAULT_SETTINGS, batch_sizes=[1024],
                                        reference_batch=1024, samples=8192)
    run_benchmark(parser.parse_args(), plain_entry, vaekit_entry,
                  lambda twin, batch: twin.eval().evaluate(batch, batch.shape[0]))


if __name__ == "__main__":
    main()
