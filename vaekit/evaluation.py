"""Metrics of a trained VAE on one split: loss terms, per-dimension KL, active units, quality.

Used for validation after every epoch and by `vaekit eval`; the two can never disagree.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from vaekit.config import LossConfig
from vaekit.metrics import COMMON
from vaekit.training.precision import inference

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): dimension j is active if Var_x(E_q[z_j|x]) > 0.01
# Metrics of every model that train.selection_metric may name, each ranked in its declared direction
# (vaekit.metrics.COMMON). Domains add their own (Domain.metrics).
SELECTION_METRICS = tuple(m.key for m in COMMON if m.selectable)
# Evaluation batches hold at most EVAL_BATCH_VALUES stored values and EVAL_BATCH_MAX items: large items
# in batches of 1024 made activations that outgrow the caches (benchmarks/validation_cost.py; the
# figures are in docs/training.md, "Validation cost per epoch").
EVAL_BATCH_VALUES = 2**19
EVAL_BATCH_MAX = 512


def evaluation_batch_size(data: torch.Tensor) -> int:
    """The evaluation batch for items shaped like ``data``'s (see ``EVAL_BATCH_VALUES``)."""
    return max(1, min(EVAL_BATCH_MAX, EVAL_BATCH_VALUES // max(1, math.prod(data.shape[1:]))))


def evaluate(model, data: torch.Tensor, domain, loss_cfg: LossConfig, beta: float,
             batch_size: int | None = None, z_swap: bool = False, precision: str = "fp32", objective=None,
             baselines: bool = False) -> dict:
    """Evaluate ``model`` on ``data`` (stored format, already on the model's device) in inference
    mode and the autocast of ``precision`` (a resolved one; sums are accumulated in fp32), in batches
    of ``batch_size`` items (None: ``evaluation_batch_size``, as validation and `vaekit eval` do).

    Returns a dict of floats: ``loss`` (the training ``objective`` at ``beta``, batch-weighted;
    None means the model's own, the elbo), ``recon``, ``kl``,
    ``elbo`` (per sample, nats, from a sampled z), ``kl_per_dim`` (list) with ``kl_min``/``kl_max``/
    ``kl_mean``, ``active_dims``, and the domain's quality metrics (decoded from the posterior mean).

    With ``z_swap`` the quality metrics are also computed with every item decoded from another
    item's posterior mean (its neighbour in the batch), as ``zswap_<metric>``: a decoder that
    ignores z scores the same both ways, one that uses it scores far lower swapped.

    With ``baselines`` the domain's trivial answers (``Domain.baselines``) are scored on the same
    items by the same code (``Domain.answer_sums``), under ``baselines``: {name: {metric: value}}.
    """
    was_training = model.training
    model.eval()
    with inference(precision, data.device):
        metrics = _evaluate(model, data, domain, loss_cfg, beta, batch_size or evaluation_batch_size(data), z_swap,
                            objective, baselines)
    model.train(was_training)
    return metrics


class RatioSums:
    """(numerator, denominator) sums of metrics over batches, and their ratios."""

    def __init__(self):
        self.sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

    def add(self, batch_sums: dict[str, tuple]) -> None:
        for key, (num, den) in batch_sums.items():
            self.sums[key][0] += float(num)
            self.sums[key][1] += float(den)

    def ratios(self) -> dict[str, float]:
        return {key: num / den if den else float("nan") for key, (num, den) in self.sums.items()}


def _evaluate(model, data, domain, loss_cfg, beta, batch_size, z_swap, objective, baselines) -> dict:
    n = data.shape[0]
    totals: dict[str, torch.Tensor | float] = defaultdict(float)
    quality: dict[str, RatioSums] = defaultdict(RatioSums)  # by prefix: "" the model's, "zswap_"
    answered: dict[str, RatioSums] = defaultdict(RatioSums)  # by baseline
    mus = []
    for start in range(0, n, batch_size):
        batch = data[start : start + batch_size]
        if objective is None:
            loss, terms, logs = model.objective(batch, beta, loss_cfg)
        else:
            out = objective(model, batch, beta, loss_cfg)
            loss, terms, logs = out.total, out.terms, out.logs
        for key, value in logs.items():
            totals[f"log:{key}"] += float(value) * batch.shape[0]
        nll_sum = terms.recon if loss_cfg.recon_reduction == "sum" else model.reconstruction_nll(
            terms.output, batch, "sum")
        totals["loss"] += loss * batch.shape[0]
        totals["recon"] += terms.recon.sum()
        totals["nll_sum"] += nll_sum.sum()
        totals["kl_per_dim"] += terms.kl_per_dim.sum(dim=0)
        mus.append(terms.mu)
        quality[""].add(domain.quality_sums(model, batch, model.decode(terms.mu)))
        for name, answers in (domain.baselines(batch) if baselines else {}).items():
            answered[name].add(domain.answer_sums(answers, batch))
    mu = torch.cat(mus)
    if z_swap and n > 1:
        # each item decoded from the previous item's code (the first from the last's) over the whole
        # split, so the pairs do not depend on how it is cut into batches
        swapped = mu.roll(1, dims=0)
        for start in range(0, n, batch_size):
            batch = data[start : start + batch_size]
            quality["zswap_"].add(domain.quality_sums(model, batch, model.decode(swapped[start : start + batch_size])))
    kl_per_dim = (totals["kl_per_dim"] / n).cpu()
    recon = float(totals["recon"]) / n
    kl_total = float(kl_per_dim.sum())
    variance = mu.var(dim=0) if n > 1 else torch.zeros(mu.shape[1])
    metrics = {
        "loss": float(totals["loss"]) / n,
        "recon": recon,
        "kl": kl_total,
        "elbo": -(float(totals["nll_sum"]) / n + kl_total),
        "kl_per_dim": [round(v, 6) for v in kl_per_dim.tolist()],
        "kl_min": float(kl_per_dim.min()),
        "kl_max": float(kl_per_dim.max()),
        "kl_mean": float(kl_per_dim.mean()),
        "active_dims": int((variance > ACTIVE_UNIT_THRESHOLD).sum()),
        "latent_dim": int(mu.shape[1]),
        "samples": n,
    }
    for prefix, sums in quality.items():
        metrics.update({prefix + key: value for key, value in sums.ratios().items()})
    metrics.update({key[4:]: float(value) / n for key, value in totals.items() if key.startswith("log:")})
    metrics.update(domain.derived_metrics(metrics))
    for name, sums in answered.items():
        scores = sums.ratios()
        metrics.setdefault("baselines", {})[name] = {**scores, **domain.derived_metrics(scores)}
    return metrics


def collapsed_dims(kl_per_dim: list[float], threshold: float) -> list[int]:
    """Latent dimensions whose mean KL is under ``threshold`` nats: the posterior-collapse signature."""
    return [i for i, value in enumerate(kl_per_dim) if value < threshold]
