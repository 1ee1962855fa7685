"""InfoVAE (Zhao et al. 2019, "InfoVAE: balancing learning and inference in variational autoencoders")."""

from __future__ import annotations

import torch

from vaekit.objectives import register_objective
from vaekit.objectives.base import Key, Loss, Objective, finite, positive, reconstruction_to_minimise

KERNELS = ("imq", "rbf")


def kernel_matrix(a: torch.Tensor, b: torch.Tensor, kernel: str, scale: float) -> torch.Tensor:
    """k(a_i, b_j) with bandwidth C = 2·d·scale²: inverse multiquadratic C / (C + ‖a − b‖²) or
    Gaussian exp(−‖a − b‖² / C)."""
    c = 2.0 * a.shape[1] * scale**2
    distances = torch.cdist(a, b).pow(2)
    return c / (c + distances) if kernel == "imq" else torch.exp(-distances / c)


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: str = "imq", scale: float = 1.0) -> torch.Tensor:
    """The unbiased estimate of MMD² between the samples ``x`` and ``y`` (Gretton et al. 2012). A
    sample of one item (an epoch's last batch can be one) has no pairs: its within-sample term is 0."""
    n, m = x.shape[0], y.shape[0]
    k_xx, k_yy, k_xy = kernel_matrix(x, x, kernel, scale), kernel_matrix(y, y, kernel, scale), kernel_matrix(
        x, y, kernel, scale)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / max(n * (n - 1), 1)
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / max(m * (m - 1), 1)
    return within_x + within_y - 2 * k_xy.mean()


@register_objective("infovae")
class InfoVAE(Objective):
    """InfoVAE (Zhao et al. 2019): reconstruction + (1 − α)·KL + (α + λ − 1)·MMD(q(z), p(z)).

    The MMD between the batch's codes z ~ q(z) and as many draws from the prior N(0, I) pulls the
    aggregate posterior to the prior without forcing each q(z|x) there. α = 1 drops the KL (the
    MMD-VAE); the defaults keep the ELBO's KL and add a strong MMD term.
    """

    keys = {
        "alpha": Key(0.0, "InfoVAE: α of the paper; the KL weighs 1 − α, the MMD α + λ − 1.", "finite", finite),
        "lambda_mmd": Key(1000.0, "InfoVAE: λ of the paper; the MMD weighs α + λ − 1.", "finite", finite),
        "kernel": Key("imq", "InfoVAE: the MMD's kernel, 'imq' (inverse multiquadratic) or 'rbf'.",
                      "'imq' or 'rbf'", lambda v: v in KERNELS),
        "kernel_scale": Key(1.0, "InfoVAE: the kernel's scale s (bandwidth C = 2·d·s²).", "positive", positive),
    }
    min_batch_size = 2

    def forward(self, model, batch, beta, loss_cfg) -> Loss:
        terms = model.loss_terms(batch, reduction=loss_cfg.recon_reduction)
        recon, logs = reconstruction_to_minimise(model, terms, batch, loss_cfg)
        kl = terms.kl_per_dim.sum(dim=1).mean()
        prior = torch.randn_like(terms.z)
        divergence = mmd(terms.z, prior, self.options["kernel"], self.options["kernel_scale"])
        alpha, lam = self.options["alpha"], self.options["lambda_mmd"]
        total = recon + (1 - alpha) * kl + (alpha + lam - 1) * divergence
        return Loss(total, terms, {**logs, "mmd": divergence.detach()})
