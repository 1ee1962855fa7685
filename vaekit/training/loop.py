"""The training loop: one epoch at a time, each announced to the subscribers (``vaekit.training.events``),
which log, save, print and draw; the loop itself owns no file and no terminal."""

from __future__ import annotations

import math
import time

import torch
from rich.console import Console

from vaekit.config import Config, TrainConfig
from vaekit.errors import Interrupted, NonFiniteError, VaekitUsageError
from vaekit.evaluation import evaluate
from vaekit.runs import RunDir
from vaekit.training.beta import beta_at
from vaekit.training.distributed import SINGLE, Workers
from vaekit.training.epoch import StepContext, agreed_signal, train_one_epoch
from vaekit.training.events import Callback, Events, StopReason, Training, make_callbacks
from vaekit.training.lr_schedules import load_scheduler_state, make_scheduler
from vaekit.training.objective import build_objective
from vaekit.training.precision import inference
from vaekit.training.resume import EpochPosition, TrainState, apply_changes, restore_rng, rng_state, save_last
from vaekit.training.signals import StopSignals
from vaekit.training.step import TrainStep, epoch_batch_sizes


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW; the fused kernel where this torch has it for the device (same maths, one
    kernel per step instead of a Python loop over parameters: 1.2-1.5x faster epochs on CPU)."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def selection_names(selection_metric: str, metrics: dict) -> list[str]:
    """The metrics train.selection_metric ranks by, in order; the validation loss breaks what ties
    remain (a model stuck on one accuracy for every epoch is then kept at its best likelihood, not its
    first epoch) unless the setting names it already."""
    names = [part.strip() for part in selection_metric.split(",")]
    return names if "loss" in names or "loss" not in metrics else [*names, "loss"]


def selection_score(metrics: dict, selection_metric: str, domain) -> list[float]:
    """The checkpoint-selection score of validation metrics, compared in order (later names break ties);
    each metric ranked in the direction its declaration gives (a lower-is-better one negated)."""
    score = []
    for name in selection_names(selection_metric, metrics):
        declared = domain.metric(name)
        if declared is not None and name in metrics and not isinstance(metrics[name], list):
            score.append(declared.score(metrics[name]))
        else:
            valid = ", ".join(k for k in metrics if not isinstance(metrics[k], list))
            raise VaekitUsageError(f"train.selection_metric '{name}' is not a validation metric; choose from: {valid}")
    return score


def _compile(step: TrainStep, data, batch_size: int, workers: Workers, say) -> float | None:
    """Compile the training step for this epoch's batch shapes; says and returns the seconds taken
    (None, after one warning, where torch.compile fails and training goes on eagerly)."""
    if not getattr(step.model, "supports_compile", True):
        say(f"[yellow]warning: {type(step.model).__name__} does not support torch.compile; training eagerly[/yellow]")
        return None
    shard = workers.shard(torch.arange(data.shape[0], device=data.device))
    examples = [data[shard[:size]] for size in epoch_batch_sizes(shard.shape[0], batch_size)]
    seconds = step.compile_now(examples, beta=1.0)
    if seconds is None:
        say(f"[yellow]warning: torch.compile failed, training eagerly instead ({step.compile_error})[/yellow]")
    else:
        say(f"Compiled the training step in {seconds:.1f} s.")
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


def fit(run: RunDir, config: Config, model, domain, tensors: dict, device, *, resume: bool = False,
        workers: Workers = SINGLE, console: Console | None = None, show_progress: bool = True,
        extra_callbacks: list[Callback] | None = None) -> TrainState:
    """Train ``model`` on ``tensors['train']``, validating on ``tensors['val']`` after each epoch.

    The loop only trains, validates and builds each epoch's record; what happens with the record
    (metrics.jsonl, the best and last checkpoints, early stopping, the console line, other sinks) is
    done by the subscribers of ``vaekit.training.events`` (the configured ones, then
    ``extra_callbacks``), the console and the progress bar too (on ``console``, a quiet one by
    default); every subscriber is closed on the way out, whatever the way. With
    ``resume`` it continues from last.pt, at the step after a mid-epoch one's (see
    ``vaekit.training.resume``). Under torchrun every worker calls this; only the main worker
    writes the run directory. ``config`` must have passed ``vaekit.validation.check_run_config`` and
    its ``train.precision`` be resolved (``vaekit.training.precision.resolve_precision``).
    """
    train_data = tensors["train"]
    console = console or Console(quiet=True)
    cfg = config.train
    torch.manual_seed(workers.noise_seed(config.seed))  # each worker its own reparameterisation noise
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augment_generator = torch.Generator(device=device).manual_seed(workers.augment_seed(config.seed))
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, model)
    objective = build_objective(config, model.latent_dim, train_data.shape[0], workers.share_size(train_data.shape[0]))
    step = TrainStep(model, optimizer, cfg.precision, device, config.loss, cfg.grad_clip, workers, objective)
    state, position, notes = TrainState(), None, []
    if resume:
        saved = run.load_checkpoint("last.pt", device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        load_scheduler_state(scheduler, saved["scheduler"])
        step.load_state_dict(saved.get("step", {}))
        state = TrainState(**saved["state"])
        if state.stopped_early:  # resuming a run that stopped early means: keep going
            state.stopped_early, state.epochs_without_improvement = False, 0
        position = EpochPosition.from_dict(saved.get("position"), device)
        restore_rng(saved["rng"], generator, augment_generator, config, state.epoch, workers)
        notes = apply_changes(saved, config, optimizer, scheduler, workers.world_size)
        if not state.global_step:  # a last.pt from before vaekit counted steps: number them as it did then
            state.global_step = state.epoch * math.ceil(workers.share_size(train_data.shape[0])
                                                        / (state.batch_size or cfg.batch_size))
    state.batch_size = cfg.batch_size
    training = Training(run, config, model, domain, optimizer, scheduler, step, generator, state, workers, console,
                        resume, rng_state=lambda: rng_state(generator, augment_generator, workers),
                        show_progress=show_progress)
    events = Events([*make_callbacks(config), *(extra_callbacks or [])], training)
    ctx = StepContext(generator, augment_generator, workers, on_step=events.step_end, state=state,
                      on_batch=events.batch_end if events.batch_listeners else None,
                      checkpoint=lambda at: save_position(training, at))
    try:
        return _train_epochs(events, training, ctx, tensors, device, position, notes)
    finally:
        events.close()


def _train_epochs(events: Events, training: Training, ctx: StepContext, tensors: dict, device,
                  position: EpochPosition | None, notes: list[str]) -> TrainState:
    run, config, model, domain, step = training.run, training.config, training.model, training.domain, training.step
    state, workers, optimizer, scheduler = training.state, training.workers, training.optimizer, training.scheduler
    cfg, train_data, val_data = config.train, tensors["train"], tensors["val"]
    events.run_start()
    if training.resume:
        where = (f"in epoch {position.epoch}, after its step {position.step}" if position is not None
                 else f"after epoch {state.epoch}")
        training.say(f"Resuming {run.run_id} {where} (best val loss {state.best_val_loss:.4f} "
                     f"at epoch {state.best_loss_epoch}).")
        for note in notes:
            training.say(f"note: {note}")
    model.train()
    compile_seconds = _compile(step, train_data, cfg.batch_size, workers, training.say) if cfg.compile else None
    with StopSignals() as signals:
        ctx.signals = signals
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            started = time.perf_counter()
            beta = beta_at(epoch, config.beta)
            schedule_values = model.on_epoch_start(epoch, cfg.epochs)
            lr = optimizer.param_groups[0]["lr"]
            events.epoch_start(epoch, workers.share_size(train_data.shape[0]))
            try:
                train_stats = train_one_epoch(step, train_data, domain, config, beta, ctx, epoch, position)
            except NonFiniteError as error:
                message = (f"{error}. {_saved(epoch, ctx.last_checkpoint or position, state)}, vae_best.pth epoch "
                           f"{state.best_epoch}; continue with --resume (e.g. with a lower --lr or --set "
                           "train.grad_clip=1), or set train.nonfinite=skip")
                events.stop(StopReason.NONFINITE, message)
                raise NonFiniteError(message) from None
            except Interrupted as error:
                stop_for_signal(events, error, ctx.stopped_by, state, ctx.last_checkpoint)
            resumed_seconds = position.seconds if position is not None else 0.0
            position = ctx.last_checkpoint = None
            workers.average_buffers(model)  # so every worker validates, corrects the lr and adjusts the same model
            scheduler.step()  # the configured schedule, then the model's own lr correction (lr_schedules.py)
            controller_values = model.on_epoch_end()
            val = evaluate(model, val_data, domain, config.loss, beta, precision=cfg.precision, objective=step.objective)
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


def save_position(training: Training, at: EpochPosition) -> None:
    """Write a mid-epoch last.pt, if the weights are finite (a finite gradient can still overflow
    them): every checkpoint holds finite weights. All workers hold the same weights, so all agree."""
    bad = [name for name, p in training.model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise NonFiniteError(f"the weights went non-finite in epoch {at.epoch} by its step {at.step} ({len(bad)} "
                             f"tensors, e.g. {bad[0]})")
    save_last(training, at)


def _saved(epoch: int, position: EpochPosition | None, state: TrainState) -> str:
    """What a stop for a non-finite value kept: up to the epoch's last mid-epoch last.pt, or the epoch before."""
    if position is not None and position.step:
        return (f"Nothing after step {position.step} of epoch {epoch} was saved: last.pt holds epoch {epoch} up to "
                f"its step {position.step}")
    return f"Nothing of epoch {epoch} was saved: last.pt holds epoch {state.epoch}"
