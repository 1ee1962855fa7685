"""IWAE (Burda et al. 2016, "Importance weighted autoencoders")."""

from __future__ import annotations

import math

import torch

from vaekit.objectives import register_objective
from vaekit.objectives.base import Key, Loss, Objective, gaussian_log_density, integer_from


def log_importance_weights(model, batch: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                           samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x) for K draws z_k ~ q(z|x), shape (K, batch),
    and the K·batch codes drawn (sample-major)."""
    k, n = samples, batch.shape[0]
    z = mu + sigma * torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype)
    flat = z.reshape(k * n, -1)
    repeated = batch.repeat(k, *([1] * (batch.dim() - 1)))
    log_px_z = model.log_likelihood(repeated, flat).reshape(k, n)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.ones_like(z)).sum(-1)
    log_qz_x = gaussian_log_density(z, mu, sigma).sum(-1)
    return log_px_z + log_pz - log_qz_x, flat


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """The K-sample bound of each item, log (1/K) Σ_k w_k, from (K, batch) log-weights."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


@register_objective("iwae")
class IWAE(Objective):
    """IWAE (Burda et al. 2016): maximise the K-sample importance-weighted bound log (1/K) Σ_k p(x, z_k)/q(z_k|x).

    K = 1 is the ELBO (β = 1); the bound tightens as K grows, at K decoder passes per item. The
    likelihood is the model's summed NLL whatever ``loss.recon_reduction`` says (the bound needs a
    normalised log p(x|z)); the logged recon and KL are the usual single-sample terms.
    """

    keys = {
        "samples": Key(5, "IWAE: importance samples K per item (K decoder passes; K = 1 is the ELBO).",
                       "an integer of at least 1", integer_from(1)),
    }

    def forward(self, model, batch, beta, loss_cfg) -> Loss:
        mu, sigma = model.encode(batch)
        log_w, codes = log_importance_weights(model, batch, mu, sigma, self.options["samples"])
        bound = iwae_bound(log_w)
        terms = model.terms_from(batch, mu, sigma, codes[: batch.shape[0]], loss_cfg.recon_reduction)
        return Loss(-bound.mean(), terms, {"iwae_bound": bound.detach().mean()})
