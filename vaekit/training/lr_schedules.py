"""The learning-rate scheduler of a run: the configured schedule, then the model's own correction.

Both are torch schedulers, chained (``ChainedScheduler``) and stepped once per epoch by the loop:

- ``train.lr_schedule``: ``CosineAnnealingLR``; ``MultiStepLR`` (× ``lr_gamma`` at each milestone);
  with ``lr_values``, ``MultiplicativeLR`` by the ratio of successive values, which sets the lr to
  ``lr_values[i]`` at ``lr_milestones[i]`` while keeping any correction made since; or a constant lr.
- a model with ``corrects_lr`` (the dual ternary model's StateNet): ``MultiplicativeLR`` by the
  model's ``lr_factor()`` for the epoch just trained, after the schedule's step.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import (
    ChainedScheduler,
    CosineAnnealingLR,
    LambdaLR,
    LRScheduler,
    MultiplicativeLR,
    MultiStepLR,
)

from vaekit.config import TrainConfig


def configured_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> LRScheduler:
    """The torch scheduler of ``train.lr_schedule`` and its settings."""
    if cfg.lr_schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=cfg.cosine_t_max or cfg.epochs, eta_min=cfg.min_lr)
    if cfg.lr_schedule == "multistep" and cfg.lr_values:
        previous = [optimizer.param_groups[0]["lr"], *cfg.lr_values[:-1]]
        factors = {int(m): v / p for m, v, p in zip(cfg.lr_milestones, cfg.lr_values, previous)}
        return MultiplicativeLR(optimizer, lambda epoch: factors.get(epoch, 1.0))
    if cfg.lr_schedule == "multistep":
        return MultiStepLR(optimizer, milestones=list(cfg.lr_milestones), gamma=cfg.lr_gamma)
    return LambdaLR(optimizer, lambda _: 1.0)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, model=None) -> LRScheduler:
    """The run's scheduler: the configured schedule, chained with ``model``'s lr correction when it
    makes one (``model.corrects_lr``). The loop steps it once after each epoch, once the model's
    buffers agree across workers."""
    schedule = configured_schedule(optimizer, cfg)
    if not getattr(model, "corrects_lr", False):
        return schedule
    return ChainedScheduler([schedule, MultiplicativeLR(optimizer, lambda _: model.lr_factor())])


def load_scheduler_state(scheduler: LRScheduler, state: dict) -> None:
    """Restore ``scheduler`` from a last.pt, also one written before the model's lr correction was
    chained here: a single scheduler's state, and ``lr_values`` held by vaekit's own class."""
    if isinstance(scheduler, ChainedScheduler) and "_schedulers" not in state:
        schedule, correction = scheduler._schedulers
        _load_one(schedule, state)
        correction.last_epoch, correction._step_count = schedule.last_epoch, schedule._step_count
        return
    _load_one(scheduler, state)


def _load_one(scheduler: LRScheduler, state: dict) -> None:
    if isinstance(scheduler, MultiplicativeLR) and "lr_lambdas" not in state:  # the former MilestoneValuesLR
        state = {**{k: v for k, v in state.items() if k != "factors"}, "lr_lambdas": [None]}
    scheduler.load_state_dict(state)
