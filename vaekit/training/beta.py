"""β schedules: β as a function of the 1-indexed epoch.

Every schedule is piecewise linear or periodic, written so that its knots can be read straight off
the formula; docs/beta-schedules.md plots them. Each schedule declares its own defaults, so
``--beta-schedule cyclical`` alone gives the cyclical schedule of the seed (max 0.1, cycle 20).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from vaekit.config import BetaConfig
from vaekit.errors import VaekitUsageError
from vaekit.registry import Registry


@dataclass(frozen=True)
class BetaSchedule:
    """A β schedule: a formula plus the defaults for the parameters it reads."""

    formula: Callable[[int, BetaConfig], float]
    defaults: dict


BETA_SCHEDULES: Registry[BetaSchedule] = Registry("beta schedule")


def _ramp(epoch: float, start: float, end: float) -> float:
    """0 at or before ``start``, 1 at or after ``end``, linear in between."""
    if end <= start:
        return 1.0 if epoch >= end else 0.0
    return min(1.0, max(0.0, (epoch - start) / (end - start)))


def _register(name: str, **defaults):
    def decorator(formula):
        BETA_SCHEDULES.register(name)(BetaSchedule(formula, defaults))
        return formula

    return decorator


@_register("constant", max_beta=1.0)
def constant(epoch: int, cfg: BetaConfig) -> float:
    """β = max_beta at every epoch."""
    return cfg.max_beta


@_register("linear_warmup", max_beta=0.5, warmup_epochs=10, ramp_epochs=50)
def linear_warmup(epoch: int, cfg: BetaConfig) -> float:
    """The β-schedule specification's: β = 0 for the first W epochs, then linear to max_beta over R epochs.

    warmup_epochs 0 gives a plain ramp from 0 that reaches max_beta at epoch R.
    """
    return cfg.max_beta * _ramp(epoch, cfg.warmup_epochs, cfg.warmup_epochs + cfg.ramp_epochs)


@_register("aggressive", max_beta=1.0, warmup_epochs=0, ramp_epochs=5)
def aggressive(epoch: int, cfg: BetaConfig) -> float:
    """Named but not defined by the β-schedule specification; our inference (docs/training.md): the same
    hold-then-ramp as linear_warmup with no hold, a short ramp and the standard β-VAE weight 1."""
    return cfg.max_beta * _ramp(epoch, cfg.warmup_epochs, cfg.warmup_epochs + cfg.ramp_epochs)


@_register("three_phase", max_beta=2.0, warmup_epochs=10, ramp_epochs=20)
def three_phase(epoch: int, cfg: BetaConfig) -> float:
    """The seed default: 0 → max/2 over epochs 1–W, max/2 → max over the next R epochs, then max.

    With the defaults (W=10, R=20, max=2): β(10) = 1, β(30) = 2, β = 2 from epoch 31 on.
    """
    half = cfg.max_beta / 2
    if epoch <= cfg.warmup_epochs:
        return half * _ramp(epoch, 0, cfg.warmup_epochs)
    return half + half * _ramp(epoch, cfg.warmup_epochs, cfg.warmup_epochs + cfg.ramp_epochs)


@_register("ultra_conservative", max_beta=0.1, warmup_epochs=20, ramp_epochs=60)
def ultra_conservative(epoch: int, cfg: BetaConfig) -> float:
    """β = 0 for the first W epochs, then linear to max_beta over R epochs (reached at W + R)."""
    return cfg.max_beta * _ramp(epoch, cfg.warmup_epochs, cfg.warmup_epochs + cfg.ramp_epochs)


@_register("cyclical", max_beta=0.1, cycle_length=20)
def cyclical(epoch: int, cfg: BetaConfig) -> float:
    """Triangle wave: position = epoch % L rises 0 → max over the first half, falls over the second."""
    length = cfg.cycle_length
    half = length / 2
    position = epoch % length
    if position <= half:
        return cfg.max_beta * position / half
    return cfg.max_beta * (length - position) / half


def resolve_beta_config(cfg: BetaConfig) -> BetaConfig:
    """Fill the parameters left as None with the chosen schedule's defaults."""
    schedule = BETA_SCHEDULES.get(cfg.schedule)
    filled = {k: v for k, v in schedule.defaults.items() if getattr(cfg, k) is None}
    resolved = replace(cfg, **filled)
    for name in ("warmup_epochs", "ramp_epochs", "cycle_length"):
        value = getattr(resolved, name)
        if value is not None and value < (1 if name == "cycle_length" else 0):
            raise VaekitUsageError(f"beta.{name} must be {'positive' if name == 'cycle_length' else 'non-negative'}, "
                                   f"got {value!r}")
    if resolved.max_beta is None or not resolved.max_beta >= 0 or resolved.max_beta == float("inf"):
        raise VaekitUsageError(f"beta.max_beta must be a non-negative number, got {resolved.max_beta!r}")
    return resolved


def beta_at(epoch: int, cfg: BetaConfig) -> float:
    """β for a 1-indexed epoch under a resolved BetaConfig."""
    return float(BETA_SCHEDULES.get(cfg.schedule).formula(epoch, cfg))
