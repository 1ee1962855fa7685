"""Latent-space maths: batched encoding, per-dimension statistics, traversals and interpolation.

Everything here works on tensors and a model; reading corpora and writing files is in
``vaekit.latent_studies``. Codes become data only through ``model.decode_data(z)``, so a decoder that
decodes free-running (autoregressive) is shown as it would generate, never fed a target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vaekit.evaluation import ACTIVE_UNIT_THRESHOLD
from vaekit.training.losses import gaussian_kl_per_dim

INTERPOLATIONS = ("linear", "spherical")


@torch.inference_mode()
def encode(model, data: torch.Tensor, batch_size: int = 1024,
           on_progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances of stored-format items, in batches, on the CPU.

    Args:
        model: a GaussianVAE in eval mode.
        data: (n, ...) items in stored format (any device; batches move to the model's device).
        batch_size: items per forward pass.
        on_progress: called with (items just encoded, items in all) after each batch.

    Returns:
        (mu, logvar), each (n, d) float32.
    """
    device = next(model.parameters()).device
    mus, logvars = [], []
    for start in range(0, data.shape[0], batch_size):
        batch = data[start:start + batch_size].to(device)
        mu, sigma = model.encode(batch)
        mus.append(mu.float().cpu())
        logvars.append((2 * torch.log(sigma)).float().cpu())
        if on_progress:
            on_progress(batch.shape[0], data.shape[0])
    latent = model.latent_dim
    empty = torch.empty(0, latent)
    return (torch.cat(mus) if mus else empty), (torch.cat(logvars) if logvars else empty)


@torch.inference_mode()
def decode(model, z: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Stored-format items decoded from codes ``z`` (n, d) by ``model.decode_data``, on the CPU."""
    device = next(model.parameters()).device
    parts = [model.decode_data(z[start:start + batch_size].to(device)).cpu()
             for start in range(0, z.shape[0], batch_size)]
    return torch.cat(parts)


@dataclass
class DimensionStats:
    """What each latent dimension carries over a set of items.

    Attributes:
        kl: (d,) mean KL(q(z_j|x) ‖ N(0, 1)) over the items, in nats.
        active: (d,) True where Var_x(μ_j) > 0.01 (the active-unit test of `vaekit eval`).
        order: dimension indices by decreasing KL.
    """

    kl: torch.Tensor
    active: torch.Tensor
    order: torch.Tensor


def dimension_stats(mu: torch.Tensor, logvar: torch.Tensor) -> DimensionStats:
    kl = gaussian_kl_per_dim(mu, torch.exp(0.5 * logvar)).mean(dim=0)
    variance = mu.var(dim=0) if mu.shape[0] > 1 else torch.zeros(mu.shape[1])
    return DimensionStats(kl=kl, active=variance > ACTIVE_UNIT_THRESHOLD,
                          order=torch.argsort(kl, descending=True, stable=True))


def traversal_codes(mu: torch.Tensor, dims: list[int], values: torch.Tensor) -> torch.Tensor:
    """Codes that sweep one dimension at a time from each item's posterior mean.

    Args:
        mu: (items, d) posterior means.
        dims: the dimensions to sweep.
        values: (steps,) the values each swept dimension takes (the others keep μ).

    Returns:
        (items, len(dims), steps, d) codes.
    """
    codes = mu[:, None, None, :].repeat(1, len(dims), len(values), 1)
    for row, dim in enumerate(dims):
        codes[:, row, :, dim] = values
    return codes


def sweep_values(span: float, steps: int) -> torch.Tensor:
    """``steps`` evenly spaced values from −span to +span (prior standard deviations)."""
    return torch.linspace(-span, span, steps)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 − t)·a + t·b for every t: (steps, d) from (d,) endpoints."""
    return (1 - t)[:, None] * a + t[:, None] * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: along the great circle for the direction, linearly for the norm.

    Under a Gaussian prior a straight line between two typical codes passes through the
    low-norm centre that samples rarely visit; following the arc keeps intermediate codes at a
    typical norm (White, 2016). Nearly parallel endpoints fall back to the straight line.
    """
    norm_a, norm_b = a.norm(), b.norm()
    if norm_a == 0 or norm_b == 0:
        return lerp(a, b, t)
    unit_a, unit_b = a / norm_a, b / norm_b
    omega = torch.arccos((unit_a @ unit_b).clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:
        return lerp(a, b, t)
    directions = (torch.sin((1 - t) * omega)[:, None] * unit_a + torch.sin(t * omega)[:, None] * unit_b) / torch.sin(omega)
    norms = (1 - t) * norm_a + t * norm_b
    return directions * norms[:, None]


def interpolation_codes(a: torch.Tensor, b: torch.Tensor, steps: int, method: str) -> torch.Tensor:
    """(steps, d) codes from ``a`` to ``b`` inclusive, by ``method`` ('linear' or 'spherical')."""
    t = torch.linspace(0, 1, steps)
    if method == "linear":
        return lerp(a, b, t)
    if method == "spherical":
        return slerp(a, b, t)
    raise ValueError(f"interpolation '{method}': expected one of {', '.join(INTERPOLATIONS)}")
