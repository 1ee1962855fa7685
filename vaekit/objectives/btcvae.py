"""β-TCVAE (Chen et al. 2018, "Isolating sources of disentanglement in variational autoencoders")."""

from __future__ import annotations

import math

import torch

from vaekit.objectives import register_objective
from vaekit.objectives.base import Key, Loss, Objective, gaussian_log_density, non_negative, reconstruction_to_minimise

SAMPLINGS = ("mws", "mss")


def log_weights(batch_size: int, dataset_size: int, sampling: str, device=None) -> torch.Tensor:
    """log w[i, j], the weight of q(z_i | x_j) in the estimate of q(z_i) from one minibatch.

    'mws' (minibatch weighted sampling): 1 / (N·M) for every pair, the paper's estimator; it is
    biased low by about log M per density when the posteriors barely overlap, which shifts the
    logged terms' values (not their gradients).
    'mss' (minibatch stratified sampling): the item z_i was drawn from weighs 1/N, one other item
    (N − M')/(N·M') and the remaining ones 1/M', with M' = M − 1: an unbiased estimate of q(z_i).
    """
    n, m = dataset_size, batch_size
    if sampling == "mws" or m == 1:
        return torch.full((m, m), -math.log(n * m), device=device)
    others = m - 1
    weights = torch.full((m, m), 1.0 / others, device=device)
    index = torch.arange(m, device=device)
    weights[index, index] = 1.0 / n
    weights[index, (index + 1) % m] = max(n - others, 1) / (n * others)
    return weights.log()


def kl_decomposition(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, dataset_size: int,
                     sampling: str = "mws") -> dict[str, torch.Tensor]:
    """The batch means of the three parts of the KL term (Chen et al. 2018, Eq. 2), in nats.

    Returns:
        'mi': index-code mutual information E[log q(z|x) − log q(z)];
        'tc': total correlation E[log q(z) − Σ_j log q(z_j)];
        'dim_kl': dimension-wise KL E[Σ_j log q(z_j) − log p(z)].
    """
    log_q_z_given_x = gaussian_log_density(z, mu, sigma).sum(1)
    log_p_z = gaussian_log_density(z, torch.zeros_like(z), torch.ones_like(z)).sum(1)
    pairwise = gaussian_log_density(z[:, None, :], mu[None, :, :], sigma[None, :, :])  # [i, j, dim]
    log_w = log_weights(z.shape[0], dataset_size, sampling, z.device)
    log_q_z = torch.logsumexp(pairwise.sum(2) + log_w, dim=1)
    log_prod_q_zj = torch.logsumexp(pairwise + log_w[:, :, None], dim=1).sum(1)
    return {"mi": (log_q_z_given_x - log_q_z).mean(), "tc": (log_q_z - log_prod_q_zj).mean(),
            "dim_kl": (log_prod_q_zj - log_p_z).mean()}


@register_objective("btcvae")
class BetaTCVAE(Objective):
    """β-TCVAE (Chen et al. 2018): reconstruction + α·MI + β·TC + γ·dimension-wise KL, from minibatch estimates.

    The KL is split into the index-code mutual information, the total correlation of the aggregate
    posterior and the KL of each of its marginals to the prior, each estimated from the batch with
    minibatch weighted ('mws') or stratified ('mss') sampling. With α = β = γ = 1 it estimates the
    plain ELBO; the paper raises β alone.
    """

    keys = {
        "alpha": Key(1.0, "β-TCVAE: weight α of the index-code mutual information.", "non-negative", non_negative),
        "beta": Key(6.0, "β-TCVAE: weight β of the total correlation (disentanglement_lib sweeps 1-10).",
                    "non-negative", non_negative),
        "gamma": Key(1.0, "β-TCVAE: weight γ of the dimension-wise KL.", "non-negative", non_negative),
        "sampling": Key("mws", "β-TCVAE: 'mws' (minibatch weighted sampling, the paper's) or 'mss' (minibatch "
                               "stratified sampling) to estimate q(z).", "'mws' or 'mss'", lambda v: v in SAMPLINGS),
    }
    min_batch_size = 2

    def forward(self, model, batch, beta, loss_cfg) -> Loss:
        terms = model.loss_terms(batch, reduction=loss_cfg.recon_reduction)
        recon, logs = reconstruction_to_minimise(model, terms, batch, loss_cfg)
        parts = kl_decomposition(terms.z, terms.mu, terms.sigma, self.context.dataset_size,
                                 self.options["sampling"])
        o = self.options
        total = recon + o["alpha"] * parts["mi"] + o["beta"] * parts["tc"] + o["gamma"] * parts["dim_kl"]
        return Loss(total, terms, {**logs, **{k: v.detach() for k, v in parts.items()}})
