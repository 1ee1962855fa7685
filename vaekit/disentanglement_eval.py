"""The disentanglement metrics of a trained run, on a domain whose items have known factors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vaekit.disentanglement import disentanglement_scores, factor_vae_score
from vaekit.domains import DOMAINS, Domain
from vaekit.errors import VaekitUsageError

ENCODE_BATCH = 1024


@dataclass
class DisentanglementSettings:
    """How much of each estimate `vaekit eval --disentanglement` computes.

    Attributes:
        items: codes scored by MIG, DCI and SAP: a seeded sample of the split (disentanglement_lib
            uses 10,000, and 5,000 more for DCI's and SAP's tests; we split the sample 2:1).
        factor_vae_votes: FactorVAE training votes (evaluation votes: half). disentanglement_lib
            uses 10,000 and 5,000, i.e. 960,000 encoded items; 0 leaves the score out.
        factor_vae_batch: items per vote (disentanglement_lib: 64).
        dci_estimator: ``forest`` (seconds) or ``gbt`` (disentanglement_lib's; minutes).
        seed: the sample, the splits and the votes.
    """

    items: int = 10_000
    factor_vae_votes: int = 1_000
    factor_vae_batch: int = 64
    dci_estimator: str = "forest"
    seed: int = 0


def domains_with_factors() -> list[str]:
    return [name for name in DOMAINS.names() if DOMAINS.get(name).factor_names]


def check_has_factors(domain: Domain) -> None:
    """Refuse a domain whose items have no known generative factors, naming those that have."""
    if not domain.factor_names:
        raise VaekitUsageError(f"--disentanglement: domain '{domain.name}' has no known generative factors; "
                               f"domains with factors: {', '.join(domains_with_factors())}")


def can_draw_items(domain: Domain) -> bool:
    """True when the domain makes items for chosen factor values (the FactorVAE score needs it)."""
    return type(domain).items_for_factors is not Domain.items_for_factors


@torch.no_grad()
def encoder_means(model, items: np.ndarray) -> np.ndarray:
    """Posterior means of stored-format items, in batches."""
    device = next(model.parameters()).device
    parts = [model.encode(torch.as_tensor(items[i:i + ENCODE_BATCH], device=device))[0].float().cpu()
             for i in range(0, len(items), ENCODE_BATCH)]
    return torch.cat(parts).numpy().astype(np.float64)


def disentanglement_metrics(loaded, split: str, settings: DisentanglementSettings) -> dict:
    """MIG, DCI, SAP on the posterior means of a seeded sample of ``split``, and the FactorVAE score
    on items the domain draws (when it can); with the sample sizes used, as metric keys."""
    domain, model = loaded.domain, loaded.model
    check_has_factors(domain)
    corpus = domain.load(loaded.config.data.path)
    items = corpus.arrays[split]
    chosen = np.sort(np.random.default_rng(settings.seed).permutation(len(items))[:settings.items])
    codes = encoder_means(model, items[chosen])
    factors = domain.item_factors(corpus.arrays, split)[chosen]
    try:
        scores = disentanglement_scores(codes, factors, settings.dci_estimator, settings.seed)
    except ValueError as err:  # e.g. a split so small that a factor takes one value in it
        raise VaekitUsageError(f"--disentanglement on split '{split}' ({len(chosen):,} items): {err}") from None
    metrics = {**scores, "disentanglement_items": int(len(chosen)), "dci_estimator": settings.dci_estimator}
    if settings.factor_vae_votes > 0 and can_draw_items(domain):
        scores = factor_vae_score(lambda batch: encoder_means(model, batch), domain, settings.seed,
                                  settings.factor_vae_batch, settings.factor_vae_votes,
                                  max(1, settings.factor_vae_votes // 2), settings.items)
        metrics.update(scores)
    return metrics
