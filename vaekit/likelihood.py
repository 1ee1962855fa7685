"""Importance-sampled log-likelihood: the IWAE bound (Burda et al., 2016) on log p(x).

For each item x, K codes z_k ~ q(z | x) give the weights w_k = p(x | z_k) p(z_k) / q(z_k | x) and

    log p(x) ≥ IWAE_K = log (1/K) Σ_k w_k ≥ ELBO_K = (1/K) Σ_k log w_k.

The first inequality tightens as K grows (E[IWAE_K] rises monotonically to log p(x)); the second is
Jensen's and holds for every draw, since both use the same K weights. log p(x | z) comes from the
model's ``log_likelihood(batch, z)`` hook.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

DEFAULT_MAX_DECODES = 4096  # codes decoded in one forward pass: bounds memory whatever K is


@dataclass
class LikelihoodEstimate:
    """Per-item importance-sampling results, in nats.

    Attributes:
        iwae: (n,) log (1/K) Σ_k w_k, a lower bound on log p(x).
        elbo: (n,) (1/K) Σ_k log w_k, the ELBO estimated from the same K codes.
        samples: K.
    """

    iwae: torch.Tensor
    elbo: torch.Tensor
    samples: int


def log_weights(model, batch: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) − log q(z|x) for codes z = μ + σ·ε, with ε of shape (c, b, d).

    Returns (c, b). The log 2π terms of the two Gaussians cancel and are left out.
    """
    samples, items = noise.shape[:2]
    z = mu + sigma * noise
    repeated = batch.unsqueeze(0).expand(samples, *batch.shape).reshape(samples * items, *batch.shape[1:])
    log_px_given_z = model.log_likelihood(repeated, z.reshape(samples * items, -1)).view(samples, items)
    log_prior = -0.5 * z.pow(2).sum(-1)
    log_posterior = -0.5 * noise.pow(2).sum(-1) - torch.log(sigma).sum(-1)
    return log_px_given_z + log_prior - log_posterior


@torch.inference_mode()
def importance_sampled_log_likelihood(
    model,
    data: torch.Tensor,
    samples: int,
    generator: torch.Generator | None = None,
    max_decodes: int = DEFAULT_MAX_DECODES,
    on_progress: Callable[[int, int], None] | None = None,
) -> LikelihoodEstimate:
    """The IWAE bound and the same-sample ELBO of every item of ``data`` (stored format).

    Args:
        model: a GaussianVAE (encode, log_likelihood), put in eval mode for the call.
        data: the items, on the model's device.
        samples: K ≥ 1 codes per item.
        generator: a CPU generator for the noise (seeded for a reproducible estimate).
        max_decodes: at most this many codes go through the decoder at once; items are taken in
            groups of ``max(1, max_decodes // K)`` and their K codes in chunks that fit.
        on_progress: called with (items just finished, items in all) after each group.
    """
    if samples < 1:
        raise ValueError(f"need at least one importance sample, got {samples}")
    was_training = model.training
    model.eval()
    device = data.device
    items_per_group = max(1, max_decodes // samples)
    samples_per_chunk = max(1, max_decodes // items_per_group)
    iwae, elbo = [], []
    for start in range(0, data.shape[0], items_per_group):
        batch = data[start:start + items_per_group]
        mu, sigma = model.encode(batch)
        chunks = []
        for done in range(0, samples, samples_per_chunk):
            count = min(samples_per_chunk, samples - done)
            noise = torch.randn(count, *mu.shape, generator=generator, dtype=mu.dtype).to(device)
            chunks.append(log_weights(model, batch, mu, sigma, noise).double())
        weights = torch.cat(chunks)  # (K, b)
        iwae.append((torch.logsumexp(weights, dim=0) - math.log(samples)).cpu())
        elbo.append(weights.mean(dim=0).cpu())
        if on_progress:
            on_progress(batch.shape[0], data.shape[0])
    model.train(was_training)
    return LikelihoodEstimate(torch.cat(iwae), torch.cat(elbo), samples)


def likelihood_metrics(model, data: torch.Tensor, samples: int, seed: int,
                       max_decodes: int = DEFAULT_MAX_DECODES,
                       on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Split-level IWAE metrics, as `vaekit eval --nll-samples K` records them.

    Returns ``iwae_log_likelihood`` and ``iwae_elbo`` (means over items, nats), ``iwae_samples``,
    ``iwae_normalised`` (whether the model's likelihood is a normalised one) and, when it is,
    ``iwae_bits_per_dim``: −(log p(x) + D·log(bin width)) / (D·ln 2) for D stored elements per item.
    """
    generator = torch.Generator().manual_seed(seed)
    estimate = importance_sampled_log_likelihood(model, data, samples, generator, max_decodes, on_progress)
    metrics = {
        "iwae_log_likelihood": float(estimate.iwae.mean()),
        "iwae_elbo": float(estimate.elbo.mean()),
        "iwae_samples": samples,
        "iwae_normalised": model.data_bin_width is not None,
    }
    if model.data_bin_width is not None:
        dims = data[0].numel()
        nats = -metrics["iwae_log_likelihood"] - dims * math.log(model.data_bin_width)
        metrics["iwae_bits_per_dim"] = nats / (dims * math.log(2))
    return metrics
