"""Reconstruction losses a grid VAE may train with over its categorical cells.

``model.options.recon_loss`` names one of ``CELL_LOSSES``: ``cross_entropy`` (the default: the
objective's reconstruction term is the categorical negative log-likelihood itself) or ``focal``
(Lin et al., 2017, "Focal Loss for Dense Object Detection"), which down-weights cells the decoder
already gets right with confidence. Only the training objective changes. Everything vaekit reports
as a likelihood (``recon``, ``elbo``, the IWAE bound, bits per dimension) stays the categorical NLL,
since a focal loss is not the log-likelihood of any distribution over the cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

# γ: γ = 2 worked best in Lin et al.'s (2017) experiments (with their α = 0.25 on the rare class of a
# binary task, which has no counterpart over 10 colours); the β-schedule specification, which trains
# with "existing focal loss or cross-entropy", gives neither γ nor α, so both defaults are our choice.
DEFAULT_FOCAL_GAMMA = 2.0

CELL_LOSS_OPTIONS = ("recon_loss", "focal_gamma", "focal_alpha")  # the model.options that choose the loss
PerCellLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, target) -> per-cell loss


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float,
               alpha: tuple[float, ...] | None = None) -> torch.Tensor:
    """Per-cell focal loss FL = −α_t (1 − p_t)^γ log p_t, with p_t the probability of the true class.

    Args:
        logits: (batch, classes, ...) unnormalised log-probabilities.
        target: (batch, ...) class indices.
        gamma: focusing parameter γ ≥ 0; γ = 0 without ``alpha`` is the cross-entropy.
        alpha: None (α_t = 1) or one weight per class, α_t = alpha[target].

    Returns:
        (batch, ...) losses in nats-like units (the cross-entropy scaled by α_t (1 − p_t)^γ).
    """
    target = target.long()
    log_pt = F.log_softmax(logits.float(), dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -log_pt
    if gamma:
        # 1 − p_t from log p_t without cancellation; floored so that γ < 1 keeps a finite gradient at p_t = 1
        loss = loss * (-torch.expm1(log_pt)).clamp(min=1e-12).pow(gamma)
    if alpha is not None:
        loss = loss * loss.new_tensor(alpha)[target]
    return loss


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _class_weights(alpha, classes: int) -> tuple[float, ...] | None:
    """``focal_alpha`` as one weight per class: None, one number for every class, or a list."""
    if alpha is None:
        return None
    if _positive(alpha):
        return (float(alpha),) * classes
    if isinstance(alpha, (list, tuple)) and len(alpha) == classes and all(_positive(a) for a in alpha):
        return tuple(float(a) for a in alpha)
    raise ValueError(f"model.options.focal_alpha {alpha!r}: expected none, a positive number, or a list of "
                     f"{classes} positive numbers (one weight per colour)")


def _cross_entropy(gamma, alpha, classes: int) -> None:
    """No loss of its own (None): the objective's reconstruction term is the NLL itself."""
    if gamma is not None or alpha is not None:
        raise ValueError("model.options.focal_gamma and focal_alpha apply only with model.options.recon_loss: "
                         "focal (the cross-entropy takes neither)")


def _focal(gamma, alpha, classes: int) -> PerCellLoss:
    gamma = DEFAULT_FOCAL_GAMMA if gamma is None else gamma
    if not (isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"model.options.focal_gamma {gamma!r}: expected a number ≥ 0 (0 is the cross-entropy)")
    return partial(focal_loss, gamma=float(gamma), alpha=_class_weights(alpha, classes))


# name -> builder(focal_gamma, focal_alpha, classes) of the per-cell training loss; None means the NLL
CELL_LOSSES: dict[str, Callable[..., PerCellLoss | None]] = {"cross_entropy": _cross_entropy, "focal": _focal}


def make_cell_loss(name: str, gamma: float | None, alpha, classes: int) -> PerCellLoss | None:
    """The per-cell training loss ``name`` with its parameters checked; None for the cross-entropy.

    Raises:
        ValueError: an unknown name, or parameters the loss does not take or cannot use.
    """
    if name not in CELL_LOSSES:
        raise ValueError(f"model.options.recon_loss {name!r}: expected one of {', '.join(CELL_LOSSES)}")
    return CELL_LOSSES[name](gamma, alpha, classes)
