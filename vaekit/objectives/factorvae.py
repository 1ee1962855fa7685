"""FactorVAE (Kim & Mnih 2018, "Disentangling by factorising")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from vaekit.objectives import register_objective
from vaekit.objectives.base import (Key, Loss, Objective, integer_from, non_negative, positive,
                                    reconstruction_to_minimise)


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each latent dimension shuffled across the batch independently: samples of Π_j q(z_j)."""
    columns = [column[torch.randperm(z.shape[0], device=z.device)] for column in z.unbind(1)]
    return torch.stack(columns, dim=1)


def discriminator(latent_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """An MLP from z to two logits (from q(z), from Π_j q(z_j)), LeakyReLU(0.2) between layers."""
    sizes = [latent_dim] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        modules += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*modules, nn.Linear(sizes[-1], 2))


@register_objective("factorvae")
class FactorVAE(Objective):
    """FactorVAE (Kim & Mnih 2018): reconstruction + KL + γ·TC, the TC from a discriminator trained with its own optimizer.

    A discriminator D tells codes z ~ q(z) from codes with each dimension permuted across the
    batch (samples of Π_j q(z_j)); its logit difference estimates the total correlation,
    TC ≈ E[D(z)₀ − D(z)₁], which the VAE minimises through D held fixed. D minimises its
    cross-entropy on both kinds of codes (detached), with Adam(lr, β = (0.5, 0.9)) as in
    disentanglement_lib. Both losses are backpropagated together: each part's gradient reaches only
    its own parameters.
    """

    keys = {
        "gamma": Key(40.0, "FactorVAE: weight γ of the total correlation (disentanglement_lib sweeps 10-100).",
                     "non-negative", non_negative),
        "disc_lr": Key(1e-4, "FactorVAE: learning rate of the discriminator's Adam.", "positive", positive),
        "disc_hidden": Key(1000, "FactorVAE: width of the discriminator's hidden layers.", "a positive integer",
                           integer_from(1)),
        "disc_layers": Key(6, "FactorVAE: hidden layers of the discriminator.", "a positive integer",
                           integer_from(1)),
    }
    min_batch_size = 2

    def __init__(self, options, context):
        super().__init__(options, context)
        self.discriminator = discriminator(context.latent_dim, self.options["disc_hidden"],
                                           self.options["disc_layers"])

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.discriminator.parameters(), lr=self.options["disc_lr"], betas=(0.5, 0.9))

    def forward(self, model, batch, beta, loss_cfg) -> Loss:
        terms = model.loss_terms(batch, reduction=loss_cfg.recon_reduction)
        recon, logs = reconstruction_to_minimise(model, terms, batch, loss_cfg)
        kl = terms.kl_per_dim.sum(dim=1).mean()
        fixed = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        logits = functional_call(self.discriminator, fixed, (terms.z,)).float()  # gradient to the VAE only
        tc = (logits[:, 0] - logits[:, 1]).mean()
        codes = terms.z.detach()
        joint = self.discriminator(codes).float()
        product = self.discriminator(permute_dims(codes)).float()
        zeros = torch.zeros(codes.shape[0], dtype=torch.long, device=codes.device)
        disc_loss = 0.5 * (F.cross_entropy(joint, zeros) + F.cross_entropy(product, zeros + 1))
        accuracy = 0.5 * ((joint.argmax(1) == 0).float().mean() + (product.argmax(1) == 1).float().mean())
        total = recon + kl + self.options["gamma"] * tc
        return Loss(total, terms, {**logs, "tc": tc.detach(), "disc_loss": disc_loss.detach(),
                                   "disc_accuracy": accuracy.detach()}, auxiliary=disc_loss)
