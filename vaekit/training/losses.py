"""KL terms and free bits.

A model returns, per sample, its reconstruction negative log-likelihood and the KL of each latent
dimension; this module turns those into the scalar that is optimised.
"""

from __future__ import annotations

import torch


def gaussian_kl_per_dim(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma²) ‖ N(0, 1)) for every sample and dimension, shape (batch, d), in nats."""
    variance = sigma.pow(2)
    return 0.5 * (variance + mu.pow(2) - 1.0 - torch.log(variance))


def kl_with_free_bits(kl_per_dim: torch.Tensor, free_bits: float, mode: str) -> torch.Tensor:
    """The batch-mean KL penalty with each dimension's KL clamped from below at ``free_bits`` nats.

    Args:
        kl_per_dim: (batch, d) unclamped KL per sample and dimension.
        free_bits: floor in nats per dimension; 0 leaves the KL unchanged.
        mode: 'per_sample' clamps every sample's KL per dimension, then averages over the batch;
            'batch_mean' averages over the batch first and clamps the mean (Kingma et al. 2016).
    """
    if free_bits <= 0:
        return kl_per_dim.sum(dim=1).mean()
    if mode == "per_sample":
        return kl_per_dim.clamp(min=free_bits).sum(dim=1).mean()
    if mode == "batch_mean":
        return kl_per_dim.mean(dim=0).clamp(min=free_bits).sum()
    raise ValueError(f"unknown free bits mode {mode!r}")


def reduce_elements(per_element: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a (batch, ...) tensor of per-element losses to one value per sample."""
    flat = per_element.flatten(start_dim=1)
    return flat.sum(dim=1) if reduction == "sum" else flat.mean(dim=1)
