"""What every training objective is: a small module over the posterior's tensors, with its own keys.

An objective turns one batch into the scalar the VAE minimises (disentanglement_lib's ``BaseVAE``
with a ``regularizer`` per method): the model encodes, samples and decodes, the objective decides
how reconstruction and the posterior are weighed. It never changes the network, so any model with a
diagonal-Gaussian posterior trains with any objective, and a comparison changes one word.

An objective may hold parameters of its own (FactorVAE's discriminator) trained by an optimizer of
its own: the training step backpropagates ``Loss.total + Loss.auxiliary`` once, so the objective
must route each part's gradient to its own parameters only (see factorvae.py), and steps both
optimizers. Its ``state_dict`` and its optimizer's travel in last.pt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class Key:
    """One ``objective.<name>`` config key of an objective: its default and help text.

    ``check`` says whether a value is valid and ``expected`` what a valid one is (for the error).
    """

    default: Any
    help: str
    expected: str = ""
    check: Any = None  # value -> bool
    kind: type | None = None  # the value's type where the default (None) does not show it

    @property
    def value_type(self) -> type:
        return self.kind or type(self.default)

    def valid(self, value: Any) -> bool:
        return self.check is None or bool(self.check(value))


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive(value) -> bool:
    return finite(value) and value > 0


def non_negative(value) -> bool:
    return finite(value) and value >= 0


def integer_from(lowest: int):
    """A check: an integer (not a bool) of at least ``lowest``."""
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= lowest


@dataclass(frozen=True)
class ObjectiveContext:
    """What an objective may know of the run besides its keys.

    Attributes:
        dataset_size: items in the training split (β-TCVAE's minibatch weights).
        steps_per_epoch: optimizer steps in one epoch (of this worker's share).
        epochs: the run's ``train.epochs``.
        batch_size: ``train.batch_size``.
        latent_dim: the model's d (FactorVAE's discriminator reads codes of it).
    """

    latent_dim: int = 1
    dataset_size: int = 1
    steps_per_epoch: int = 1
    epochs: int = 1
    batch_size: int = 1

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


@dataclass
class Loss:
    """One batch's objective.

    Attributes:
        total: the scalar the VAE minimises, reported as ``loss``.
        terms: the model's per-sample ``LossTerms`` (recon stays the NLL, kl_per_dim the analytic KL).
        logs: batch means of the objective's own terms (e.g. ``tc``), logged per epoch as val_<name>.
        auxiliary: a scalar minimised by the objective's own optimizer (FactorVAE's discriminator
            loss), checked for finiteness like the loss; None where there is none.
    """

    total: torch.Tensor
    terms: Any
    logs: dict = field(default_factory=dict)
    auxiliary: torch.Tensor | None = None


class Objective(nn.Module):
    """Base class: subclasses set ``keys`` and define ``forward(model, batch, beta, loss_cfg) -> Loss``.

    ``self.options`` holds every key's value (the config's, else the key's default). ``beta`` is the
    β schedule's value at this epoch: only objectives whose ``uses_beta_schedule`` is True read it.
    """

    keys: ClassVar[dict[str, Key]] = {}
    uses_beta_schedule: ClassVar[bool] = False
    # True where the model must have a diagonal-Gaussian posterior and the standard β-VAE terms
    # (``loss_terms`` with z, mu and sigma); only the elbo, which calls the model's own objective, needs less.
    needs_gaussian_posterior: ClassVar[bool] = True
    # The smallest batch the objective's estimates need (FactorVAE permutes codes across the batch).
    min_batch_size: ClassVar[int] = 1

    def __init__(self, options: dict, context: ObjectiveContext):
        super().__init__()
        self.options = {name: options.get(name, key.default) for name, key in self.keys.items()}
        self.context = context

    def forward(self, model, batch: torch.Tensor, beta: torch.Tensor, loss_cfg) -> Loss:
        raise NotImplementedError

    def before_step(self, global_step: int) -> None:
        """Called before each training step with its number (1 for the first): schedules held by the
        objective (the annealed capacity) are set here, outside any compiled region."""

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer of the objective's own parameters, or None (the default: it has none)."""
        return None


def reconstruction_to_minimise(model, terms, batch: torch.Tensor, loss_cfg) -> tuple[torch.Tensor, dict]:
    """The batch-mean reconstruction term a β-VAE minimises: the NLL, or the model's own training
    term where it has one (a focal loss), logged as ``recon_objective``."""
    trained = model.reconstruction_objective(terms.output, batch, loss_cfg.recon_reduction)
    if trained is None:
        return terms.recon.mean(), {}
    return trained.mean(), {"recon_objective": trained.detach().mean()}


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, sigma²) of each element (broadcasting), in nats."""
    return -0.5 * (((z - mu) / sigma).pow(2) + 2 * sigma.log() + math.log(2 * math.pi))
