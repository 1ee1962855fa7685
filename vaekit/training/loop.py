"""The training loop: plain functions, one epoch at a time, everything logged to metrics.jsonl."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vaekit.config import Config, TrainConfig
from vaekit.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, NonFiniteError, VaekitUsageError, nearest
from vaekit.evaluation import evaluate
from vaekit.runs import RunDir
from vaekit.training.beta import beta_at
from vaekit.training.distributed import SINGLE, Workers
from vaekit.training.events import Events, Training, check_callbacks, make_callbacks
from vaekit.training.precision import inference
from vaekit.training.resume import EpochPosition, apply_changes, restore_rng, rng_state, save_last
from vaekit.training.signals import StopSignals
from vaekit.training.step import NonFiniteStep, TrainStep, epoch_batch_sizes


@dataclass
class TrainState:
    """What --resume needs besides the weights, optimizer and scheduler."""

    epoch: int = 0
    best_val_loss: float = math.inf
    best_loss_epoch: int = 0
    best_score: list = field(default_factory=list)  # of train.selection_metric; higher is better
    best_epoch: int = 0  # the epoch of checkpoints/vae_best.pth
    epochs_without_improvement: int = 0
    wall_seconds: float = 0.0
    stopped_early: bool = False
    global_step: int = 0  # optimizer steps taken (skipped ones counted), the step number of steps.jsonl
    batch_size: int = 0  # of the epochs trained so far (0: a last.pt written before vaekit recorded it)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW; the fused kernel where this torch has it for the device (same maths, one
    kernel per step instead of a Python loop over parameters: 1.2-1.5x faster epochs on CPU)."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


class MilestoneValuesLR(torch.optim.lr_scheduler.LRScheduler):
    """Sets the lr to ``values[i]`` at ``milestones[i]``. Chainable like MultiStepLR (it multiplies
    the current lr by values[i] / previous value), so a model's own per-epoch lr corrections (the
    ternary StateNet's) carry through the milestones instead of being overwritten."""

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: list[int], values: list[float],
                 last_epoch: int = -1):
        previous = [optimizer.param_groups[0]["lr"], *values[:-1]]
        self.factors = {int(m): v / p for m, v, p in zip(milestones, values, previous)}
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = self.factors.get(self.last_epoch, 1.0)
        return [group["lr"] * factor for group in self.optimizer.param_groups]


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.cosine_t_max or cfg.epochs,
                                                          eta_min=cfg.min_lr)
    if cfg.lr_schedule == "multistep" and cfg.lr_values:
        return MilestoneValuesLR(optimizer, list(cfg.lr_milestones), list(cfg.lr_values))
    if cfg.lr_schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.lr_milestones), gamma=cfg.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


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
    signals, the step logger, and ``checkpoint``, which writes a mid-epoch last.pt at a position."""

    generator: torch.Generator
    augment_generator: torch.Generator
    workers: Workers = SINGLE
    signals: StopSignals | None = None
    on_step: Callable[[dict], None] | None = None
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


def train_one_epoch(step: TrainStep, data, domain, config: Config, beta, ctx: StepContext, progress=None, task=None,
                    epoch: int = 1, position: EpochPosition | None = None) -> dict:
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
    kl_range = ""

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
            loss, recon, kl = step(batch, beta, _votes(ctx, cfg, state.global_step))
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
                record = step_record(state.global_step, epoch, beta, step.optimizer.param_groups[0]["lr"], loss,
                                     recon, step.kl_per_dim, workers)
                kl_range = f"  KL/dim {record['kl_min']:.2f}–{record['kl_max']:.2f}"
                ctx.on_step(record)
            if progress is not None:
                live = f"loss {loss.item():.3f}{kl_range}" if batches % 10 == 1 else None
                progress.update(task, advance=batch.shape[0], **({"live": live} if live else {}))
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
    stats["seconds"] = seconds_before + time.perf_counter() - started
    return stats


def selection_score(metrics: dict, selection_metric: str) -> list[float]:
    """The checkpoint-selection score of validation metrics, compared in order (later names break ties).

    'loss' counts as −loss; any other name is a quality metric where higher is better.
    """
    score = []
    for name in (part.strip() for part in selection_metric.split(",")):
        if name == "loss":
            score.append(-metrics["loss"])
        elif name in metrics and not isinstance(metrics[name], list):
            score.append(float(metrics[name]))
        else:
            valid = ", ".join(k for k in metrics if not isinstance(metrics[k], list))
            raise VaekitUsageError(f"train.selection_metric '{name}' is not a validation metric; choose from: {valid}")
    return score


def check_selection_metric(selection_metric: str, valid: list[str]) -> None:
    """Refuse a ``train.selection_metric`` naming anything but the validation metrics ``valid``
    (checked before training, so that a typo never costs an epoch)."""
    for name in (part.strip() for part in selection_metric.split(",")):
        if name not in valid:
            hint = nearest(name, valid)
            suggestion = f" (did you mean '{hint}'?)" if hint else ""
            raise VaekitUsageError(f"train.selection_metric '{name}' is not a validation metric{suggestion}; "
                                   f"choose from: {', '.join(valid)}")


def _compile(step: TrainStep, data, batch_size: int, workers: Workers, console: Console) -> float | None:
    """Compile the training step for this epoch's batch shapes; prints and returns the seconds taken
    (None, after one warning, where torch.compile fails and training goes on eagerly)."""
    if not getattr(step.model, "supports_compile", True):
        console.print(f"[yellow]warning: {type(step.model).__name__} does not support torch.compile; training "
                      "eagerly[/yellow]", soft_wrap=True)
        return None
    shard = workers.shard(torch.arange(data.shape[0], device=data.device))
    examples = [data[shard[:size]] for size in epoch_batch_sizes(shard.shape[0], batch_size)]
    seconds = step.compile_now(examples, beta=1.0)
    if seconds is None:
        console.print(f"[yellow]warning: torch.compile failed, training eagerly instead ({step.compile_error})"
                      "[/yellow]", soft_wrap=True)
    else:
        console.print(f"Compiled the training step in {seconds:.1f} s.")
    return seconds


def stop_for_signal(events: Events, error: Interrupted, signal_name: str, state: TrainState,
                    position: EpochPosition | None) -> None:
    """Stop for a signal: tell the subscribers, then raise ``error`` saying how to continue."""
    if position is None:
        message = (f"{error}; last.pt holds epoch {state.epoch}: continue with --resume, which trains epoch "
                   f"{state.epoch + 1}")
    else:
        message = str(error)
    events.stop(signal_name, message)
    raise Interrupted(message, error.exit_code) from None


def agreed_signal(ctx: StepContext) -> tuple[str, int] | None:
    """The stop signal any worker received, decided by all workers together (a collective)."""
    votes = torch.tensor(_signal_votes(ctx)) + torch.tensor(ctx.pending_signal)
    sigterm, sigint = ctx.workers.agree(votes.to(ctx.generator.device)).tolist()
    ctx.pending_signal = (0.0, 0.0)
    if sigterm:
        return "SIGTERM", EXIT_TERMINATED
    return ("SIGINT", EXIT_INTERRUPTED) if sigint else None


def check_training_config(config: Config) -> None:
    """Refuse any training setting out of range, the callbacks' included, before a file is written
    (``vaekit.experiment.resolve_config`` calls this)."""
    check_callbacks(config)
    for key in ("checkpoint_every_steps", "checkpoint_every_minutes"):
        value = getattr(config.train, key)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and value >= 0):
            raise VaekitUsageError(f"train.{key} {value!r}: expected 0 (off) or more")


def fit(run: RunDir, config: Config, model, domain, tensors: dict, device,
        console: Console | None = None, resume: bool = False, show_progress: bool = True,
        workers: Workers = SINGLE, extra_callbacks: list | None = None) -> TrainState:
    """Train ``model`` on ``tensors['train']``, validating on ``tensors['val']`` after each epoch.

    The loop only trains, validates and builds each epoch's record; what happens with the record
    (metrics.jsonl, the best and last checkpoints, early stopping, the console line, other sinks) is
    done by the subscribers of ``vaekit.training.events`` (the configured ones, then
    ``extra_callbacks``); every subscriber is closed on the way out, whatever the way. With
    ``resume`` it continues from last.pt, at the step after a mid-epoch one's (see
    ``vaekit.training.resume``). Under torchrun every worker calls this; only the main worker
    writes the run directory. ``config.train.precision`` must be resolved already (see
    ``vaekit.training.precision.resolve_precision``).
    """
    check_training_config(config)
    train_data, val_data = tensors["train"], tensors["val"]
    console = console or Console(quiet=True)
    cfg = config.train
    torch.manual_seed(workers.noise_seed(config.seed))  # each worker its own reparameterisation noise
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augment_generator = torch.Generator(device=device).manual_seed(workers.augment_seed(config.seed))
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    step = TrainStep(model, optimizer, cfg.precision, device, config.loss, cfg.grad_clip, workers)
    state, position, notes = TrainState(), None, []
    if resume:
        saved = run.load_checkpoint("last.pt", device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        step.load_state_dict(saved.get("step", {}))
        state = TrainState(**saved["state"])
        if state.stopped_early:  # resuming a run that stopped early means: keep going
            state.stopped_early, state.epochs_without_improvement = False, 0
        position = EpochPosition.from_dict(saved.get("position"), device)
        restore_rng(saved["rng"], generator, augment_generator, config, state.epoch, workers)
        notes = apply_changes(saved, config, optimizer, scheduler, workers.world_size)
        if not state.global_step:  # a last.pt from before vaekit counted steps: number them as it did then
            state.global_step = state.epoch * math.ceil(workers.shard(train_data).shape[0] / (state.batch_size
                                                                                             or cfg.batch_size))
    state.batch_size = cfg.batch_size
    training = Training(run, config, model, domain, optimizer, scheduler, step, generator, state, workers, console,
                        resume, rng_state=lambda: rng_state(generator, augment_generator, workers))
    events = Events([*make_callbacks(config), *(extra_callbacks or [])], training)
    ctx = StepContext(generator, augment_generator, workers, on_step=events.step_end, state=state,
                      checkpoint=lambda at: save_last(training, at))
    try:
        return _train_epochs(events, training, ctx, tensors, device, position, notes, show_progress)
    finally:
        events.close()


def _train_epochs(events: Events, training: Training, ctx: StepContext, tensors: dict, device,
                  position: EpochPosition | None, notes: list[str], show_progress: bool) -> TrainState:
    run, config, model, domain, step = training.run, training.config, training.model, training.domain, training.step
    state, workers, console, optimizer, scheduler = (training.state, training.workers, training.console,
                                                    training.optimizer, training.scheduler)
    cfg, train_data, val_data = config.train, tensors["train"], tensors["val"]
    events.run_start()
    if training.resume:
        where = (f"in epoch {position.epoch}, after its step {position.step}" if position is not None
                 else f"after epoch {state.epoch}")
        console.print(f"Resuming {run.run_id} {where} (best val loss {state.best_val_loss:.4f} "
                      f"at epoch {state.best_loss_epoch}).")
        for note in notes:
            console.print(f"note: {note}", soft_wrap=True)
    model.train()
    compile_seconds = _compile(step, train_data, cfg.batch_size, workers, console) if cfg.compile else None
    progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[live]}"), TimeElapsedColumn(), console=console,
                        transient=True, disable=not (show_progress and workers.is_main))
    with progress, StopSignals() as signals:
        ctx.signals = signals
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            started = time.perf_counter()
            beta = beta_at(epoch, config.beta)
            schedule_values = model.on_epoch_start(epoch, cfg.epochs)
            lr = optimizer.param_groups[0]["lr"]
            task = progress.add_task("train", total=workers.shard(train_data).shape[0], epoch=epoch, live="")
            try:
                train_stats = train_one_epoch(step, train_data, domain, config, beta, ctx, progress, task, epoch,
                                              position)
            except NonFiniteError as error:
                message = (f"{error}. Nothing of epoch {epoch} after last.pt was saved: last.pt holds "
                           f"{_held(ctx.last_checkpoint or position, state)}, vae_best.pth epoch {state.best_epoch}; continue with --resume "
                           "(e.g. with a lower --lr or --set train.grad_clip=1), or set train.nonfinite=skip")
                events.stop("nonfinite", message)
                raise NonFiniteError(message) from None
            except Interrupted as error:
                stop_for_signal(events, error, ctx.stopped_by, state, ctx.last_checkpoint)
            resumed_seconds = position.seconds if position is not None else 0.0
            position = ctx.last_checkpoint = None
            progress.remove_task(task)
            train_stats.pop("seconds")
            scheduler.step()
            workers.average_buffers(model)  # so every worker validates and adjusts the same model
            controller_values = model.on_epoch_end(optimizer)
            val = evaluate(model, val_data, domain, config.loss, beta, precision=cfg.precision)
            with inference(cfg.precision, device):
                val.update(domain.extra_metrics(model, tensors, config, during_training=True))
            seconds = resumed_seconds + time.perf_counter() - started
            state.wall_seconds += seconds
            record = {"epoch": epoch, "beta": beta, "lr": lr,
                      **{f"train_{k}": v for k, v in train_stats.items()},
                      **{f"val_{k}": v for k, v in val.items() if k not in ("kl_per_dim", "active_dims",
                                                                            "latent_dim", "samples")},
                      "kl_per_dim": val["kl_per_dim"], "active_dims": val["active_dims"],
                      **schedule_values, **controller_values, "precision": cfg.precision, "seconds": seconds}
            if compile_seconds is not None:  # once per process, in the first epoch it trained
                record["compile_seconds"], compile_seconds = compile_seconds, None
            state.epoch, training.val = epoch, val
            events.epoch_end(record)  # metrics.jsonl, checkpoints, early stopping, console, sinks
            ctx.checkpoint_clock = time.monotonic()
            if training.stop_reason:
                events.stop(*training.stop_reason)
                break
            stop = agreed_signal(ctx)  # a signal during the last step, validation or the epoch's events
            if stop:
                stop_for_signal(events, Interrupted(f"stopped by {stop[0]} after epoch {epoch}", stop[1]), stop[0],
                                state, None)
    events.run_end()
    return state


def _held(position: EpochPosition | None, state: TrainState) -> str:
    if position is not None and position.step:
        return f"epoch {position.epoch} up to its step {position.step}"
    return f"epoch {state.epoch}"
