"""DIP-VAE I and II (Kumar et al. 2018, "Variational inference of disentangled latent concepts from unlabeled observations")."""

from __future__ import annotations

import torch

from vaekit.objectives import register_objective
from vaekit.objectives.base import Key, Loss, Objective, non_negative, reconstruction_to_minimise

VARIANTS = ("i", "ii")


def covariance(x: torch.Tensor) -> torch.Tensor:
    """The (d, d) covariance of a (batch, d) sample, normalised by the batch size."""
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / x.shape[0]


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """λ_od Σ_{i≠j} Cov_ij² + λ_d Σ_i (Cov_ii − 1)²: how far ``cov`` is from the identity."""
    diagonal = torch.diagonal(cov)
    off_diagonal = cov - torch.diag(diagonal)
    return lambda_od * off_diagonal.pow(2).sum() + lambda_d * (diagonal - 1).pow(2).sum()


@register_objective("dipvae")
class DIPVAE(Objective):
    """DIP-VAE (Kumar et al. 2018): reconstruction + KL + a penalty pulling the aggregate posterior's covariance to the identity.

    DIP-VAE-I penalises Cov_p(x)[μ(x)]; DIP-VAE-II the covariance of z itself,
    Cov[μ(x)] + E[diag σ²(x)]. λ_d defaults to disentanglement_lib's choice: 10·λ_od for I,
    λ_od for II.
    """

    keys = {
        "variant": Key("i", "DIP-VAE: 'i' (covariance of the posterior means) or 'ii' (covariance of z).",
                       "'i' or 'ii'", lambda v: v in VARIANTS),
        "lambda_od": Key(10.0, "DIP-VAE: weight λ_od of the off-diagonal covariance (disentanglement_lib sweeps "
                               "1-50).", "non-negative", non_negative),
        "lambda_d": Key(None, "DIP-VAE: weight λ_d of the diagonal's distance from 1; null takes 10·λ_od for "
                              "variant i and λ_od for ii.", "non-negative or null",
                        lambda v: v is None or non_negative(v), kind=float),
    }

    def forward(self, model, batch, beta, loss_cfg) -> Loss:
        terms = model.loss_terms(batch, reduction=loss_cfg.recon_reduction)
        recon, logs = reconstruction_to_minimise(model, terms, batch, loss_cfg)
        kl = terms.kl_per_dim.sum(dim=1).mean()
        lambda_od, variant = self.options["lambda_od"], self.options["variant"]
        lambda_d = self.options["lambda_d"]
        if lambda_d is None:
            lambda_d = (10.0 if variant == "i" else 1.0) * lambda_od
        cov = covariance(terms.mu)
        if variant == "ii":
            cov = cov + torch.diag(terms.sigma.pow(2).mean(0))
        penalty = dip_penalty(cov, lambda_od, lambda_d)
        return Loss(recon + kl + penalty, terms, {**logs, "dip_penalty": penalty.detach()})
