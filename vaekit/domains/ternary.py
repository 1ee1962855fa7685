"""Ternary domain: all 3^9 = 19,683 ternary operations (3×3 tables over {-1, 0, 1}).

The quality that matters here is coverage: how many of the operations a model can reproduce
(reconstruction coverage) and how many distinct ones its prior generates (prior coverage).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from vaekit.collecting import Collected, CollectOption
from vaekit.corpus import save_corpus
from vaekit.data_formats import TERNARY_TABLE
from vaekit.domains import Domain, register_domain
from vaekit.metrics import Metric
from vaekit.models.protocols import PathwayModel
from vaekit.targets import Target

NUM_OPERATIONS = 3**9
VALUES = (-1, 0, 1)
DEFAULT_PRIOR_SAMPLES = 200_000
DEFAULT_EPOCH_PRIOR_SAMPLES = 50_000  # per-epoch estimate: 200,000 decodes cost more than an MLP epoch


def all_operations() -> np.ndarray:
    """Every 3×3 table over {-1, 0, 1} as a row of 9 int8 values, in lexicographic order."""
    return np.array(list(itertools.product(VALUES, repeat=9)), dtype=np.int8)


def operation_ids(operations: torch.Tensor) -> torch.Tensor:
    """The index of each operation (rows of 9 values in {-1, 0, 1}) in lexicographic order."""
    weights = torch.tensor([3**(8 - i) for i in range(9)], device=operations.device)
    return ((operations.long() + 1) * weights).sum(dim=-1)


def split_operations(seed: int) -> dict[str, np.ndarray]:
    """Indices of a seeded 80/10/10 permutation split (seed 42: 15,746 / 1,968 / 1,969)."""
    order = np.random.default_rng(seed).permutation(NUM_OPERATIONS)
    n_train, n_val = int(NUM_OPERATIONS * 0.8), int(NUM_OPERATIONS * 0.1)
    return {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}


def collect_ternary(out: Path, seed: int = 42) -> tuple[Path, dict]:
    operations = all_operations()
    arrays = {}
    for split, index in split_operations(seed).items():
        arrays[split] = operations[index]
        arrays[f"{split}_index"] = index.astype(np.int32)
    metadata = {
        "domain": "ternary",
        "source": "exhaustive enumeration of 3x3 tables over {-1, 0, 1}",
        "seed": seed,
    }
    return save_corpus(out, arrays, metadata)


@torch.no_grad()
def exact_reconstructions(model, operations: torch.Tensor, batch_size: int = 8192) -> dict[str, torch.Tensor]:
    """Per pathway: a flag per operation, True where it decodes exactly (argmax of every position)
    from its own posterior mean."""
    flags: dict[str, list] = {}
    for start in range(0, operations.shape[0], batch_size):
        batch = operations[start:start + batch_size]
        output = model.decode(model.encode(batch)[0])
        for name, predicted in model.pathway_predictions(output).items():
            flags.setdefault(name, []).append((predicted == batch).all(dim=1))
    return {name: torch.cat(parts) for name, parts in flags.items()}


def reconstruction_coverage(model, operations: torch.Tensor) -> dict[str, float]:
    """Per pathway: the fraction of ``operations`` decoded exactly from their own posterior mean."""
    return {name: float(hit.float().mean()) for name, hit in exact_reconstructions(model, operations).items()}


@torch.no_grad()
def prior_coverage(model, n: int, generator: torch.Generator, batch_size: int = 50_000) -> dict[str, float]:
    """Per pathway: distinct operations among ``n`` decoded prior samples, divided by 19,683."""
    seen: dict[str, torch.Tensor] = {}
    device = next(model.parameters()).device
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        z = torch.randn(count, model.prior_dim, generator=generator).to(device)
        for name, predicted in model.pathway_predictions(model.decode_prior(z)).items():
            flags = seen.setdefault(name, torch.zeros(NUM_OPERATIONS, dtype=torch.bool, device=device))
            flags[operation_ids(predicted)] = True
    return {name: float(flags.sum()) / NUM_OPERATIONS for name, flags in seen.items()}


COVERAGE_METRICS = ("reconstruction_coverage", "heldout_coverage", "prior_coverage")


@torch.no_grad()
def latent_entropy_bits(model, operations: torch.Tensor, batch_size: int = 8192) -> dict[str, float]:
    """Per pathway: the entropy in bits of how the posterior means' variance over ``operations`` is
    shared among the pathway's latent dimensions, p_i = Var(μ_i) / Σ_j Var(μ_j), H = −Σ p_i log₂ p_i.

    At most log₂ d (4 bits at d = 16: every dimension carries the same variance); 0 when one
    dimension carries it all. Our reading of the ternary report's "entropy (H)", whose maximum is
    log₂ 16 = 4 (docs/domains/ternary.md gives the inference)."""
    mu = torch.cat([model.encode(operations[i:i + batch_size])[0] for i in range(0, operations.shape[0], batch_size)])
    names = model.pathways
    out = {}
    for name, part in zip(names, mu.float().split(mu.shape[1] // len(names), dim=1)):
        variance = part.var(dim=0, unbiased=False)
        share = variance / variance.sum().clamp_min(1e-12)
        entropy = -(share * torch.log2(share.clamp_min(1e-12))).sum()
        out[f"latent_entropy_bits_{name}" if name else "latent_entropy_bits"] = float(entropy)
    return out


def _suffixed(values: dict[str, float], key: str) -> dict[str, float]:
    """{'': v} -> {key: v}; {'A': a, 'B': b} -> {key_A: a, key_B: b, key: min(a, b)}."""
    if list(values) == [""]:
        return {key: values[""]}
    out = {f"{key}_{name}": v for name, v in values.items()}
    out[key] = min(values.values())
    return out


TERNARY_COLLECT_OPTIONS = (
    CollectOption("seed", int, 42, "Seed of the 80/10/10 permutation split.", minimum=0),
    CollectOption("out", Path, Path("data/ternary.npz"), "Output .npz file."),
)


def collect_ternary_command(seed, out):
    """Enumerate all 3^9 = 19,683 ternary operations (3×3 tables over {-1, 0, 1}) and split them.

    Stored as (n, 9) int8 per split with each operation's index in lexicographic order; seed 42
    gives 15,746 / 1,968 / 1,969.

    Example: vaekit collect ternary --seed 42 --out data/ternary.npz
    """
    path, metadata = collect_ternary(out, seed)
    return Collected(path, metadata)


@register_domain("ternary")
class TernaryDomain(Domain):
    name = "ternary"
    default_corpus = "data/ternary.npz"
    collect_command = "vaekit collect ternary"
    collect_options = TERNARY_COLLECT_OPTIONS
    collector = staticmethod(collect_ternary_command)
    data_format = TERNARY_TABLE
    model_protocol = PathwayModel
    # Per-pathway coverages (reconstruction_coverage_A, ...) take their metric's declaration (see ``metric``);
    # multi-pathway models may select by them (``selection_metric_names``).
    metrics = (
        # the report (specification 003) states results (98.85 % coverage), not targets: no pass marks
        Metric("reconstruction_coverage", "Reconstruction coverage (all 19,683; weakest pathway)", "{:.2%}",
               curve=True, target=Target(fmt="{:.1%}", label="Reconstruction coverage")),
        Metric("reconstruction_coverage_A", "Reconstruction coverage, pathway A", "{:.2%}", selectable=False),
        Metric("reconstruction_coverage_B", "Reconstruction coverage, pathway B", "{:.2%}", selectable=False),
        Metric("heldout_coverage", "Held-out coverage (val + test; weakest pathway)", "{:.2%}", curve=True),
        Metric("prior_coverage", "Prior coverage (distinct / 19,683)", "{:.2%}", curve=True,
               target=Target(fmt="{:.1%}", label="Prior coverage")),
        Metric("prior_coverage_A", "Prior coverage, pathway A", "{:.2%}", selectable=False),
        Metric("prior_coverage_B", "Prior coverage, pathway B", "{:.2%}", selectable=False),
        Metric("prior_samples", "Prior samples N", "{:,}", selectable=False),
        Metric("position_accuracy", "Position accuracy", "{:.2%}"),
    )
    sweep_metric = "reconstruction_coverage"
    item_noun = "operations"
    item_identifiers = ("index",)
    # An operation is its nine trits: each position of the 3×3 table is a factor with 3 values.
    factor_names = tuple(f"cell_{row}{col}" for row in range(1, 4) for col in range(1, 4))
    factor_sizes = (len(VALUES),) * 9

    def default_config(self) -> dict:
        # β = 1 collapses a ternary VAE (see docs/domains/ternary.md); these are the baseline's settings.
        # One thread: the MLP's matrices are too small to split across cores, and a second thread
        # on shared cores made epochs 10-20x slower (docs/training.md#threads).
        return {"threads": 1, "data": {"path": self.default_corpus, "augment": False},
                "model": {"name": "ternary_mlp", "latent_dim": 16},
                "beta": {"schedule": "constant", "max_beta": 0.3},
                "loss": {"free_bits": 0.5},
                "train": {"batch_size": 64, "optimizer": "adamw", "weight_decay": 1e-4, "grad_clip": 1.0,
                          "epochs": 400, "lr_schedule": "multistep",
                          "lr_milestones": [50, 120, 180, 220, 250, 300],
                          "selection_metric": "reconstruction_coverage,prior_coverage",
                          "early_stopping_patience": 20,
                          # ternary_dual's β warm-ups (50 epochs) raise the val loss by design: judge
                          # patience after them, or the dual model stops at epoch ~22 (best: epoch 2)
                          "early_stopping_start": 50}}

    def item_factors(self, arrays, split):
        return arrays[split].astype(np.int64) + 1

    def items_for_factors(self, factors):
        return (np.asarray(factors) - 1).astype(np.int8)

    def selection_metric_names(self, model_cls: type) -> list[str]:
        """Multi-pathway models add each coverage per pathway (reconstruction_coverage_A, ...)."""
        named = [p for p in model_cls.pathways if p]
        return [*super().selection_metric_names(model_cls),
                *[f"{metric}_{pathway}" for metric in COVERAGE_METRICS for pathway in named]]

    def metric(self, key: str) -> Metric | None:
        """A per-pathway coverage (heldout_coverage_B) is declared by its metric (heldout_coverage)."""
        base, _, pathway = key.rpartition("_")
        if key not in {m.key for m in self.metrics} and base in COVERAGE_METRICS and len(pathway) == 1:
            return super().metric(base)
        return super().metric(key)

    def quality_sums(self, model, batch, output):
        predicted = next(iter(model.pathway_predictions(output).values()))
        correct = predicted == batch
        return {"position_accuracy": (correct.sum(), correct.numel())}

    def extra_metrics(self, model, tensors, config, during_training) -> dict:
        everything = torch.cat([tensors["train"], tensors["val"], tensors["test"]])  # held-out ops last
        n_train = tensors["train"].shape[0]
        options = config.data.options
        if during_training:
            n = int(options.get("epoch_prior_samples", DEFAULT_EPOCH_PRIOR_SAMPLES))
        else:
            n = int(options.get("prior_samples", DEFAULT_PRIOR_SAMPLES))
        generator = torch.Generator().manual_seed(config.seed)
        was_training = model.training
        model.eval()
        hits = exact_reconstructions(model, everything)
        metrics = {
            **_suffixed({k: float(v.float().mean()) for k, v in hits.items()}, "reconstruction_coverage"),
            **_suffixed({k: float(v[n_train:].float().mean()) for k, v in hits.items()}, "heldout_coverage"),
            **_suffixed(prior_coverage(model, n, generator), "prior_coverage"),
            "prior_samples": n,
            **latent_entropy_bits(model, everything),
        }
        model.train(was_training)
        return metrics

    def item_images(self, items, arrays):
        from vaekit.plots import TERNARY_COLORS, ImageStyle

        legend = list(zip(TERNARY_COLORS.colors, ("−1", "0", "+1")))
        return np.asarray(items).reshape(-1, 3, 3), ImageStyle(TERNARY_COLORS, -1, 1, legend)

    def save_pictures(self, model, shown, results, n, generator):
        from vaekit.plots import save_ternary_tables

        samples, test, recon = self.samples_and_reconstructions(model, shown, results, n, generator)
        return [
            save_ternary_tables(samples, results / "samples.png", "Operations decoded from z ~ N(0, I)"),
            save_ternary_tables(np.stack([test, recon], 1).reshape(-1, 9),
                                results / "reconstructions.png",
                                f"{shown.split.capitalize()} operations (odd) and reconstructions (even)"),
            results / "samples.npz",
        ]
