"""One epoch of training: shuffled mini-batches, the workers' decisions taken together every step,
mid-epoch checkpoints, and the epoch's mean loss terms."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from vaekit.config import Config, TrainConfig
from vaekit.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, NonFiniteError
from vaekit.training.distributed import SINGLE, Workers
from vaekit.training.resume import EpochPosition, TrainState
from vaekit.training.signals import StopSignals
from vaekit.training.step import NonFiniteStep, TrainStep


def step_record(global_step: int, epoch: int, beta: float, lr: float, loss: torch.Tensor, recon: torch.Tensor,
                kl_per_dim: torch.Tensor, workers: Workers = SINGLE) -> dict:
    """The steps.jsonl line of one training step: its loss terms and the batch mean of each latent
    dimension's unclamped KL, with their min, max and mean over the dimensions. Under torchrun the
    values are averaged over the workers (one all-reduce), i.e. those of the whole global batch.
    Costs one device-to-host read."""
    values = workers.mean(torch.cat([torch.stack([loss, recon]).float(), kl_per_dim.float()])).tolist()
    loss_value, recon_value, dims = values[0], values[1], values[2:]
    return {"step": global_step, "epoch": epoch, "beta": beta, "lr": lr, "loss": loss_value, "recon": recon_value,
            "kl": sum(dims), "kl_min": min(dims), "kl_max": max(dims), "kl_mean": sum(dims) / len(dims),
            "kl_per_dim": [round(v, 6) for v in dims]}


@dataclass
class StepContext:
    """What an epoch's steps need besides the model: the generators, the worker group, the stop
    signals, the step and batch listeners, and ``checkpoint``, which writes a mid-epoch last.pt at a
    position."""

    generator: torch.Generator
    augment_generator: torch.Generator
    workers: Workers = SINGLE
    signals: StopSignals | None = None
    on_step: Callable[[dict], None] | None = None
    on_batch: Callable[[int, torch.Tensor], None] | None = None  # (samples, loss) after every step, e.g. a progress bar
    checkpoint: Callable[[EpochPosition], None] | None = None
    state: TrainState = field(default_factory=TrainState)
    checkpoint_clock: float = field(default_factory=time.monotonic)
    last_checkpoint: EpochPosition | None = None  # the position of the epoch's latest mid-epoch last.pt
    stopped_by: str | None = None  # the signal the workers agreed to stop for
    pending_signal: tuple[float, float] = (0.0, 0.0)  # received during an epoch's last step: stop after the epoch


def _signal_votes(ctx: StepContext) -> tuple[float, float]:
    """This worker's votes to stop: (SIGTERM received, SIGINT received)."""
    received = ctx.signals.received if ctx.signals is not None else None
    return float(received == signal.SIGTERM), float(received == signal.SIGINT)


def _votes(ctx: StepContext, cfg: TrainConfig, next_step: int) -> tuple[float, float, float]:
    """This worker's votes for the step about to run: SIGTERM received, SIGINT received, and a
    mid-epoch checkpoint due after the step (by step count on every worker, by the main worker's
    clock for the minutes)."""
    due = bool(cfg.checkpoint_every_steps) and next_step % cfg.checkpoint_every_steps == 0
    if cfg.checkpoint_every_minutes and ctx.workers.is_main:
        due = due or time.monotonic() - ctx.checkpoint_clock >= 60 * cfg.checkpoint_every_minutes
    return (*_signal_votes(ctx), float(due))


def train_one_epoch(step: TrainStep, data, domain, config: Config, beta, ctx: StepContext, epoch: int = 1,
                    position: EpochPosition | None = None) -> dict:
    """One pass over ``data`` (this worker's share of it) in shuffled mini-batches, from the start
    or from ``position`` (a mid-epoch last.pt's); returns the epoch's mean loss terms over all
    workers (and, with ``train.nonfinite: skip``, the count of skipped steps). Every
    ``train.log_every_steps``-th step of the run passes its ``step_record`` to ``ctx.on_step``;
    other steps read nothing from the device for it.

    Every decision is taken by all workers together, after the step's votes are summed
    (``TrainStep``): a non-finite loss anywhere, a stop signal sent to any worker, a checkpoint due.

    Raises:
        NonFiniteError: a step's loss or gradient is not finite and ``train.nonfinite`` is 'stop';
            the message names the epoch, the step and the term.
        Interrupted: a worker received SIGTERM or SIGINT; raised once the current step is done and
            last.pt holds the position after it.
    """
    cfg, workers, state = config.train, ctx.workers, ctx.state
    started = time.perf_counter()
    if position is None:
        order = torch.randperm(data.shape[0], generator=ctx.generator, device=ctx.generator.device).to(data.device)
        position = EpochPosition(epoch, order, batch_size=cfg.batch_size, world_size=workers.world_size)
    mine = workers.shard(position.order)
    n = mine.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sums = torch.tensor(position.sums, device=data.device)  # loss, recon, kl: summed on-device in fp32, read once
    batches, skipped, seconds_before = position.batches, position.skipped, position.seconds
    log_every = cfg.log_every_steps if ctx.on_step is not None else 0

    def where(index: int) -> EpochPosition:
        return EpochPosition(epoch, position.order, index, tuple(workers.mean(sums).tolist()), batches, skipped,
                             seconds_before + time.perf_counter() - started, cfg.batch_size, workers.world_size)

    for index in range(position.step + 1, steps_per_epoch + 1):
        state.global_step += 1
        start = (index - 1) * cfg.batch_size
        batch = data[mine[start : start + cfg.batch_size]]
        if config.data.augment:
            batch = domain.augment(batch, ctx.augment_generator)
        try:
            loss, recon, kl = step(batch, beta, _votes(ctx, cfg, state.global_step), state.global_step)
        except NonFiniteStep as bad:
            if cfg.nonfinite != "skip":
                raise NonFiniteError(f"training went non-finite at epoch {epoch}, step {state.global_step} (batch "
                                     f"{index} of {steps_per_epoch} in the epoch): the {bad.term} is "
                                     f"{bad.value}") from None
            skipped += 1
        else:
            sums += torch.stack([loss, recon, kl]).float()
            batches += 1
            if log_every and state.global_step % log_every == 0:
                ctx.on_step(step_record(state.global_step, epoch, beta, step.optimizer.param_groups[0]["lr"], loss,
                                        recon, step.kl_per_dim, workers))
            if ctx.on_batch is not None:
                ctx.on_batch(batch.shape[0], loss)
        sigterm, sigint, due = step.votes
        if index == steps_per_epoch:  # the epoch's end writes last.pt anyway; a signal stops after it
            ctx.pending_signal = (sigterm, sigint)
            break
        if (sigterm or sigint or due) and ctx.checkpoint is not None:
            ctx.last_checkpoint = where(index)
            ctx.checkpoint(ctx.last_checkpoint)
            ctx.checkpoint_clock = time.monotonic()
        if sigterm or sigint:
            ctx.stopped_by, code = ("SIGTERM", EXIT_TERMINATED) if sigterm else ("SIGINT", EXIT_INTERRUPTED)
            raise Interrupted(f"stopped by {ctx.stopped_by} in epoch {epoch}, after step {state.global_step}; last.pt "
                              f"holds epoch {epoch} up to its step {index} of {steps_per_epoch}: continue with "
                              "--resume, which trains its next step", code)
    loss, recon, kl = workers.mean(sums / max(batches, 1)).tolist()
    stats = {"loss": loss, "recon": recon, "kl": kl}
    if cfg.nonfinite == "skip":
        stats["skipped_steps"] = skipped
    return stats


def agreed_signal(ctx: StepContext) -> tuple[str, int] | None:
    """The stop signal any worker received, decided by all workers together (a collective)."""
    votes = torch.tensor(_signal_votes(ctx)) + torch.tensor(ctx.pending_signal)
    sigterm, sigint = ctx.workers.agree(votes.to(ctx.generator.device)).tolist()
    ctx.pending_signal = (0.0, 0.0)
    if sigterm:
        return "SIGTERM", EXIT_TERMINATED
    return ("SIGINT", EXIT_INTERRUPTED) if sigint else None
