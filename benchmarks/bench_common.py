"""What the throughput benchmarks share: plain-PyTorch twins of vaekit's conv VAEs, the settings
grammar, interleaved timing rounds, the machine's peak FLOP/s and the result table.

The plain twins are written here on purpose, layer by layer, without vaekit's model classes or
training loop: they are the reference a PyTorch user would write by hand (fp32, eager, the default
Adam), so a ratio above 1 is what vaekit's settings add on top of it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models import count_parameters, create_model
from vaekit.training.device import resolve_device

# The layers of each vaekit model at its defaults, and the stored shape of one sample.
TWINS = {
    "conv2d": dict(kind="grid", in_ch=10, channels=(32, 64, 128), strides=(1, 2, 2), size=16, hidden=128,
                   decoder_channels=(64, 32), out_ch=10, norm=False, latent=10),
    "conv2d_wide": dict(kind="grid", in_ch=10, channels=(64, 128, 256), strides=(1, 2, 2), size=16, hidden=512,
                        decoder_channels=(128, 64), out_ch=10, norm=True, latent=10),
    "conv2d_frames": dict(kind="frame", in_ch=3, channels=(16, 32, 64, 128), strides=(2, 2, 2, 2), size=64,
                          hidden=256, decoder_channels=(64, 32, 16, 16), out_ch=3, norm=True, latent=32),
    # the images domain's default model (conv2d_frames with its options and a learned σ) at 64×64×3
    "images": dict(kind="image", in_ch=3, channels=(32, 64, 128, 256), strides=(2, 2, 2, 2), size=64,
                   hidden=256, decoder_channels=(128, 64, 32, 32), out_ch=3, norm=True, latent=16, learned_sigma=True),
    # transformers have no plain twin (twin=False): no 'plain' row, FLOPs counted on vaekit's model
    "transformer_grid": dict(kind="grid", size=16, latent=10, twin=False),
    "transformer_grid_wide": dict(kind="grid", size=16, latent=10, twin=False),
}
DOMAIN_OF_KIND = {"grid": "arc", "frame": "atari", "image": "images"}  # whose augmentation and metrics vaekit's side uses
# Rows named after a domain rather than a model: vaekit's side builds that domain's default model.
DOMAIN_DEFAULT_ROWS = {"images"}
FRAME_SIGMA = 0.05  # conv2d_frames' default Gaussian likelihood
PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class PlainConvVAE(nn.Module):
    """The conv VAE of ``TWINS[name]`` in plain PyTorch: conv stages, dense, (μ, softplus σ), dense,
    transposed-conv stages, output conv."""

    def __init__(self, kind, in_ch, channels, strides, size, hidden, decoder_channels, out_ch, norm, latent,
                 learned_sigma=False):
        super().__init__()
        self.kind = kind
        self.log_sigma = nn.Parameter(torch.tensor(math.log(0.1))) if learned_sigma else None
        layers, c, side = [], in_ch, size
        for out, stride in zip(channels, strides):
            layers += [nn.Conv2d(c, out, 3, stride, 1), *([nn.BatchNorm2d(out)] if norm else []), nn.ReLU()]
            c, side = out, side // stride
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, hidden), nn.ReLU())
        self.mu, self.sigma = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.expand = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, c * side * side), nn.ReLU())
        self.shape = (c, side, side)
        layers = []
        for out in decoder_channels:
            layers += [nn.ConvTranspose2d(c, out, 4, 2, 1), *([nn.BatchNorm2d(out)] if norm else []), nn.ReLU()]
            c = out
        self.decoder = nn.Sequential(*layers, nn.Conv2d(c, out_ch, 3, padding=1))

    def _input(self, batch):
        if self.kind == "grid":
            return F.one_hot(batch.long(), 10).permute(0, 3, 1, 2).float()
        return batch.permute(0, 3, 1, 2).float() / 255

    def _decode(self, z):
        return self.decoder(self.expand(z).view(-1, *self.shape))

    def terms(self, batch: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-sample loss (reconstruction NLL summed over elements + β · KL), the model input and
        the posterior mean."""
        x = self._input(batch)
        h = self.encoder(x)
        mu, sigma = self.mu(h), F.softplus(self.sigma(h)) + 1e-6
        out = self._decode(mu + sigma * torch.randn_like(mu))
        if self.kind == "grid":
            nll = F.cross_entropy(out, batch.long(), reduction="none").flatten(1).sum(1)
        elif self.log_sigma is None:
            nll = ((out - x).pow(2) / (2 * FRAME_SIGMA**2)).flatten(1).sum(1)
        else:
            nll = ((out - x).pow(2) / (2 * self.log_sigma.exp() ** 2) + self.log_sigma).flatten(1).sum(1)
        kl = 0.5 * (sigma.pow(2) + mu.pow(2) - 1 - torch.log(sigma.pow(2))).sum(1)
        return nll + beta * kl, x, mu

    def loss(self, batch: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        return self.terms(batch, beta)[0].mean()

    @torch.no_grad()
    def evaluate(self, data: torch.Tensor, batch_size: int) -> tuple[float, float]:
        """What vaekit's ``evaluate`` computes at its core: the mean loss (sampled z) and the
        quality of the decoded posterior mean (pixel accuracy, or MSE for frames)."""
        loss, quality = 0.0, 0.0
        for start in range(0, data.shape[0], batch_size):
            batch = data[start:start + batch_size]
            per_sample, x, mu = self.terms(batch)
            loss += float(per_sample.sum())
            out = self._decode(mu)
            if self.kind == "grid":
                quality += float((out.argmax(1) == batch).float().mean()) * batch.shape[0]
            else:
                quality += float((out.clamp(0, 1) - x).pow(2).mean()) * batch.shape[0]
        return loss / data.shape[0], quality / data.shape[0]


def vaekit_model(name: str, size: int | None = None) -> nn.Module:
    """vaekit's model of a row: the registered model ``name`` at its defaults, or for a domain row
    (``DOMAIN_DEFAULT_ROWS``) that domain's default model and options at the row's size."""
    if name not in DOMAIN_DEFAULT_ROWS:
        return create_model(name, TWINS[name]["latent"])
    from vaekit.domains import get_domain

    spec, model = TWINS[name], get_domain(name).default_config()["model"]
    options = {**model["options"], "in_channels": spec["in_ch"], "frame_size": size or spec["size"]}
    return create_model(model["name"], model["latent_dim"], options)


def plain_twin(name: str) -> PlainConvVAE:
    """The plain twin of a vaekit model; refuses one whose parameter count differs from vaekit's."""
    twin = PlainConvVAE(**TWINS[name])
    ours = count_parameters(vaekit_model(name))
    if count_parameters(twin) != ours:
        raise SystemExit(f"the plain twin of {name} has {count_parameters(twin):,} parameters, vaekit's {ours:,}")
    return twin


def random_corpus(name: str, n: int, device: torch.device) -> torch.Tensor:
    """``n`` random samples in the model's stored format (the cost does not depend on content)."""
    spec = TWINS[name]
    if spec["kind"] == "grid":
        return torch.randint(0, 10, (n, spec["size"], spec["size"]), dtype=torch.uint8, device=device)
    return torch.randint(0, 256, (n, spec["size"], spec["size"], spec["in_ch"]), dtype=torch.uint8, device=device)


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    """'plain' (the reference loop) or vaekit with a precision, optionally '+cl' (channels-last
    weights) and '+compile'; written e.g. 'bf16+cl+compile'."""

    label: str
    plain: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    @classmethod
    def parse(cls, text: str) -> "Setting":
        if text == "plain":
            return cls(label=text, plain=True)
        precision, *flags = text.split("+")
        if precision not in PRECISIONS or not set(flags) <= {"cl", "compile"}:
            raise SystemExit(f"setting '{text}': expected 'plain' or <fp32|bf16|fp16>[+cl][+compile]")
        return cls(label=text, precision=precision, channels_last="cl" in flags, compile="compile" in flags)


def memory_format(model: nn.Module, channels_last: bool) -> nn.Module:
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# ----------------------------------------------------------------------------- timing


@dataclass
class Entry:
    """One row of the table: a model at a batch size in one setting, and its timed rounds."""

    model: str
    batch_size: int
    setting: Setting
    run: Callable[[], int]  # one pass over the samples; returns how many it processed
    flops_per_sample: float = 0.0
    rates: list[float] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_rounds(entries: list[Entry], rounds: int, device: torch.device,
                       peak_seconds: float = 0.5) -> dict[str, list[float]]:
    """Time every entry once per round, rounds one after another, so that a change in the machine's
    load hits all settings alike; the order rotates each round so no entry always runs first.

    Returns:
        The peak FLOP/s (``compute_peak``) of fp32 and bf16, measured at the start of every round.
    """
    peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(rounds):
        for precision in peaks:
            peaks[precision].append(compute_peak(DTYPES[precision], device, peak_seconds))
        shift = r % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            synchronize(device)
            started = time.perf_counter()
            n = entry.run()
            synchronize(device)
            entry.rates.append(n / (time.perf_counter() - started))
        print(f"round {r + 1}/{rounds} done", flush=True)
    return peaks


def _flops_per_second(kernel: Callable[[], torch.Tensor], flops: float, device: torch.device, seconds: float) -> float:
    kernel()
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        kernel()
        count += 1
        synchronize(device)
    return flops * count / (time.perf_counter() - started)


def compute_peak(dtype: torch.dtype, device: torch.device, seconds: float = 0.5) -> float:
    """The machine's practical FLOP/s in ``dtype``: the faster of a 2048² matmul and a large 3×3
    channels-last convolution. Both are needed: on AMD CPUs MKL's fp32 matmul does not use AVX-512
    and reaches well under half of what oneDNN's convolutions do."""
    a = torch.randn(2048, 2048, device=device, dtype=dtype)
    x = torch.randn(128, 128, 16, 16, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    matmul = _flops_per_second(lambda: a @ a, 2 * 2048**3, device, seconds)
    conv = _flops_per_second(lambda: F.conv2d(x, w, padding=1), 2 * 128 * 16 * 16 * 128 * 128 * 9, device, seconds)
    return max(matmul, conv)


def flops_per_sample(step: Callable[[], None], batch_size: int) -> float:
    """FLOPs (matmuls and convolutions, forward and backward) of one step, per sample."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / batch_size


def _spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def report(entries: list[Entry], peaks: dict[str, list[float]], unit: str, out: str | None = None) -> None:
    """Print the table: rate and ratio to the same model's reference 'plain' entry, and the fraction
    of the peak FLOP/s in the setting's precision, each paired round by round (median, min–max)."""
    print(f"\npeak per round: fp32 {_spread([p / 1e9 for p in peaks['fp32']], '{:,.0f}')} GFLOP/s, "
          f"bf16 {_spread([p / 1e9 for p in peaks['bf16']], '{:,.0f}')} GFLOP/s "
          f"({torch.get_num_threads()} threads, torch {torch.__version__})")
    print(f"{'model':<14}{'batch':>6}  {'setting':<18}{unit + ' median (min–max)':>30}  "
          f"{'× plain median (min–max)':>26}  {'GFLOP/s':>8}  {'% of peak':>20}")
    rows = []
    for entry in entries:
        reference = next((e for e in entries if e.model == entry.model and e.setting.plain
                          and e.extra.get("reference")), None)
        ratios = [a / b for a, b in zip(entry.rates, reference.rates)] if reference else []
        achieved = [rate * entry.flops_per_sample for rate in entry.rates]
        peak = peaks["bf16" if entry.setting.precision in ("bf16", "fp16") else "fp32"]
        fractions = [100 * a / p for a, p in zip(achieved, peak)]
        print(f"{entry.model:<14}{entry.batch_size:>6}  {entry.setting.label:<18}"
              f"{_spread(entry.rates, '{:,.0f}'):>30}  {_spread(ratios, '{:.2f}') if ratios else '—':>26}  "
              f"{statistics.median(achieved) / 1e9:>8,.1f}  {_spread(fractions, '{:.0f}') + ' %':>20}")
        rows.append({"model": entry.model, "batch_size": entry.batch_size, "setting": entry.setting.label,
                     "rates": entry.rates, "ratios": ratios, "flops_per_sample": entry.flops_per_sample,
                     "peak_percent": fractions, **entry.extra})
    if out:
        with open(out, "w") as handle:
            json.dump({"peaks": peaks, "threads": torch.get_num_threads(), "torch": torch.__version__,
                       "rows": rows}, handle, indent=1)
        print(f"wrote {out}")


def check_samples(samples: int, batch_sizes: list[int]) -> None:
    if samples < max(batch_sizes):
        raise SystemExit(f"--samples {samples} is smaller than the largest batch size {max(batch_sizes)}")
    if any(samples % b for b in batch_sizes):
        lcm = math.lcm(*batch_sizes)
        print(f"note: --samples {samples} is not a multiple of every batch size (e.g. {lcm}); the last "
              "batch of a pass is shorter")


# ----------------------------------------------------------------------------- the command line


def parser_with_common_options(doc: str, settings: list[str], batch_sizes: list[int], reference_batch: int,
                               samples: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["conv2d", "conv2d_wide"], choices=list(TWINS))
    parser.add_argument("--settings", nargs="+", default=settings,
                        help="'plain' or <fp32|bf16|fp16>[+cl][+compile], e.g. bf16+cl+compile")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=batch_sizes)
    parser.add_argument("--reference-batch", type=int, default=reference_batch,
                        help="batch size of the plain entry that the ratios divide by")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=samples, help="samples per timed pass")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the rows (every round) to this JSON file")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: one tiny round of " + ", ".join(SMOKE["settings"]) + " on "
                        + SMOKE["models"][0] + " (the test suite runs this)")
    return parser


# --smoke: the same code path (twins, entries, rounds, peak, table) at sizes that take seconds.
# torch.compile is left out: compiling takes longer than the whole smoke run should.
SMOKE = dict(models=["conv2d"], settings=["plain", "fp32", "bf16+cl"], batch_sizes=[8], reference_batch=8,
             rounds=1, samples=16)
SMOKE_PEAK_SECONDS = 0.02


def apply_smoke(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the --smoke sizes in place of the command line's, when --smoke is given."""
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    return args


EntryMaker = Callable[[str, torch.Tensor, int, Setting], Entry]


def run_benchmark(args: argparse.Namespace, make_plain: EntryMaker, make_vaekit: EntryMaker,
                  plain_work: Callable[[PlainConvVAE, torch.Tensor], object]) -> None:
    """Build every entry (model × batch size × setting; the plain loop also at the reference batch),
    count the FLOPs of ``plain_work`` on a batch once per model, time the rounds, print the table."""
    args = apply_smoke(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch._dynamo.config.cache_size_limit = 256  # one compiled step per compiled entry, all in one process
    device = resolve_device(args.device)
    settings = [Setting.parse(s) for s in args.settings]
    batch_sizes = sorted(set(args.batch_sizes) | ({args.reference_batch} if any(s.plain for s in settings) else set()))
    check_samples(args.samples, batch_sizes)
    entries = []
    for name in args.models:
        data = random_corpus(name, args.samples, device)
        has_twin = TWINS[name].get("twin", True)
        twin = (plain_twin(name) if has_twin else vaekit_model(name)).to(device)  # the same maths: count once
        flops = flops_per_sample(lambda: plain_work(twin, data[:args.reference_batch]), args.reference_batch)
        for batch_size in batch_sizes:
            for setting in settings:
                if (setting.plain and not has_twin) or (not setting.plain and batch_size not in args.batch_sizes):
                    continue
                entry = (make_plain if setting.plain else make_vaekit)(name, data, batch_size, setting)
                entry.flops_per_sample = flops
                entry.extra["reference"] = setting.plain and batch_size == args.reference_batch
                entries.append(entry)
    print(f"{len(entries)} entries built; timing {args.rounds} interleaved rounds of {args.samples} samples each",
          flush=True)
    peaks = interleaved_rounds(entries, args.rounds, device, SMOKE_PEAK_SECONDS if args.smoke else 0.5)
    report(entries, peaks, "samples/s", args.json)
