"""Annealed capacity (Burgess et al. 2018, "Understanding disentangling in β-VAE", Eq. 8)."""

from __future__ import annotations

import torch

from vaekit.objectives import register_objective
from vaekit.objectives.base import (Key, Loss, Objective, integer_from, non_negative, positive,
                                    reconstruction_to_minimise)


@register_objective("annealed")
class AnnealedCapacity(Objective):
    """Annealed capacity (Burgess et al. 2018): reconstruction + γ·|KL − C|, C raised linearly to c_max.

    C(t) = c_max · min(1, t / capacity_steps) at optimizer step t, so the KL is held near a capacity
    that grows through training; the step count comes from the run (last.pt keeps it), so a resumed
    run continues the same ramp.
    """

    keys = {
        "gamma": Key(1000.0, "Annealed capacity: weight γ of |KL − C| (disentanglement_lib: 1000).", "positive",
                     positive),
        "c_max": Key(25.0, "Annealed capacity: the final capacity C in nats (disentanglement_lib sweeps 5-100).",
                     "non-negative", non_negative),
        "capacity_steps": Key(0, "Annealed capacity: optimizer steps over which C rises from 0 to c_max; 0 takes "
                                 "the first third of the run's steps (disentanglement_lib: 100,000 of 300,000).",
                              "0 or a positive number of steps", integer_from(0)),
    }

    def __init__(self, options, context):
        super().__init__(options, context)
        self.ramp_steps = self.options["capacity_steps"] or max(1, context.total_steps // 3)
        self.register_buffer("capacity", torch.zeros(()), persistent=False)

    def capacity_at(self, global_step: int) -> float:
        return self.options["c_max"] * min(1.0, global_step / self.ramp_steps)

    def before_step(self, global_step: int) -> None:
        self.capacity.fill_(self.capacity_at(global_step))

    def forward(self, model, batch, beta, loss_cfg) -> Loss:
        terms = model.loss_terms(batch, reduction=loss_cfg.recon_reduction)
        recon, logs = reconstruction_to_minimise(model, terms, batch, loss_cfg)
        kl = terms.kl_per_dim.sum(dim=1).mean()
        total = recon + self.options["gamma"] * (kl - self.capacity).abs()
        return Loss(total, terms, {**logs, "capacity": self.capacity.detach().clone()})
