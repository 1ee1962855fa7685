"""The β-VAE evidence lower bound: vaekit's default objective."""

from __future__ import annotations

from vaekit.objectives import register_objective
from vaekit.objectives.base import Loss, Objective


@register_objective("elbo")
class Elbo(Objective):
    """β-VAE ELBO (Higgins et al. 2017): reconstruction + β·KL, with the β schedule and free bits.

    The model's own objective: a model with several pathways or controllers (the dual ternary VAE)
    defines it itself, so every model trains with this one. β comes from ``beta.*`` (the schedule),
    free bits from ``loss.free_bits``.
    """

    uses_beta_schedule = True
    needs_gaussian_posterior = False

    def forward(self, model, batch, beta, loss_cfg) -> Loss:
        total, terms, logs = model.objective(batch, beta, loss_cfg)
        return Loss(total, terms, logs)
