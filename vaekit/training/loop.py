"""The training loop: plain functions, one epoch at a time, everything logged to metrics.jsonl."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vaekit.config import Config, TrainConfig
from vaekit.errors import Interrupted, NonFiniteError, VaekitUsageError, nearest
from vaekit.evaluation import evaluate
from vaekit.runs import RunDir
from vaekit.training.beta import beta_at
from vaekit.training.distributed import SINGLE, Workers
from vaekit.training.events import Callback, Events, Training, make_callbacks
from vaekit.training.lr_schedules import load_scheduler_state, make_scheduler
from vaekit.training.precision import inference
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


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW; the fused kernel where this torch has it for the device (same maths, one
    kernel per step instead of a Python loop over parameters: 1.2-1.5x faster epochs on CPU)."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _rng_state(generator: torch.Generator, workers: Workers = SINGLE) -> dict:
    """The random states last.pt keeps; under torchrun also every worker's own noise state (a
    collective: every worker calls this)."""
    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if workers.distributed:
        state["torch_by_rank"] = workers.gather(torch.get_rng_state())
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict, generator: torch.Generator, workers: Workers = SINGLE) -> None:
    by_rank = state.get("torch_by_rank") or []
    own = by_rank[workers.rank] if workers.distributed and len(by_rank) == workers.world_size else state["torch"]
    torch.set_rng_state(own.cpu())
    generator.set_state(state["data"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


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


def train_one_epoch(step: TrainStep, data, domain, config: Config, beta, generator, progress, task,
                    workers: Workers = SINGLE, epoch: int = 1, signals: StopSignals | None = None,
                    on_step: Callable[[dict], None] | None = None) -> dict:
    """One pass over ``data`` (this worker's share of it) in shuffled mini-batches; returns the
    epoch's mean loss terms over all workers (and, with ``train.nonfinite: skip``, the count of
    skipped steps). Every ``train.log_every_steps``-th step of the run (counted from its start)
    passes its ``step_record`` to ``on_step``; other steps read nothing from the device for it.

    Raises:
        NonFiniteError: a step's loss or gradient is not finite and ``train.nonfinite`` is 'stop';
            the message names the epoch, the step and the term.
        Interrupted: ``signals`` received SIGTERM or SIGINT; raised once the current step is done.
    """
    cfg = config.train
    order = torch.randperm(data.shape[0], generator=generator, device=generator.device).to(data.device)
    order = workers.shard(order)
    n = order.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sums = torch.zeros(3, device=data.device)  # loss, recon, kl: summed on-device in fp32, read once
    batches = skipped = 0
    log_every = cfg.log_every_steps if on_step is not None else 0
    kl_range = ""
    for index, start in enumerate(range(0, n, cfg.batch_size), start=1):
        global_step = (epoch - 1) * steps_per_epoch + index
        batch = data[order[start : start + cfg.batch_size]]
        if config.data.augment:
            batch = domain.augment(batch, generator)
        try:
            loss, recon, kl = step(batch, beta)
        except NonFiniteStep as bad:
            if cfg.nonfinite == "skip":
                skipped += 1
                continue
            raise NonFiniteError(f"training went non-finite at epoch {epoch}, step "
                                 f"{global_step} (batch {index} of {steps_per_epoch} "
                                 f"in the epoch): the {bad.term} is {bad.value}") from None
        sums += torch.stack([loss, recon, kl]).float()
        batches += 1
        if signals is not None and signals.received:
            raise Interrupted(f"stopped by {signals.received.name} in epoch {epoch}, after step "
                              f"{global_step}", signals.exit_code)
        if log_every and global_step % log_every == 0:
            record = step_record(global_step, epoch, beta, step.optimizer.param_groups[0]["lr"], loss, recon,
                                 step.kl_per_dim, workers)
            kl_range = f"  KL/dim {record['kl_min']:.2f}–{record['kl_max']:.2f}"
            on_step(record)
        if progress is not None:
            live = f"loss {loss.item():.3f}{kl_range}" if batches % 10 == 1 else None
            progress.update(task, advance=batch.shape[0], **({"live": live} if live else {}))
    loss, recon, kl = workers.mean(sums / max(batches, 1)).tolist()
    stats = {"loss": loss, "recon": recon, "kl": kl}
    if cfg.nonfinite == "skip":
        stats["skipped_steps"] = skipped
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


def interrupted(events: Events, error: Interrupted, signal_name: str, saved_epoch: int) -> None:
    """Stop for a signal: tell the subscribers, then raise ``error`` saying how to continue."""
    message = (f"{error}; last.pt holds epoch {saved_epoch}: continue with --resume, which trains epoch "
               f"{saved_epoch + 1} again from its start")
    events.stop(signal_name, message)
    raise Interrupted(message, error.exit_code) from None


def fit(run: RunDir, config: Config, model, domain, tensors: dict, device,
        console: Console | None = None, resume: bool = False, show_progress: bool = True,
        workers: Workers = SINGLE, extra_callbacks: list[Callback] | None = None) -> TrainState:
    """Train ``model`` on ``tensors['train']``, validating on ``tensors['val']`` after each epoch.

    The loop only trains, validates and builds each epoch's record; what happens with the record
    (metrics.jsonl, the best and last checkpoints, early stopping, the console line, other sinks) is
    done by the subscribers of ``vaekit.training.events``. With ``resume`` it continues from last.pt. Under torchrun every worker
    calls this; only the main worker writes the run directory. ``config.train.precision`` must be
    resolved already (see ``vaekit.training.precision.resolve_precision``). ``extra_callbacks`` are
    subscribed after the configured ones.
    """
    train_data, val_data = tensors["train"], tensors["val"]
    console = console or Console(quiet=True)
    cfg = config.train
    torch.manual_seed(workers.noise_seed(config.seed))  # each worker its own reparameterisation noise
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, model)
    step = TrainStep(model, optimizer, cfg.precision, device, config.loss, cfg.grad_clip, workers)
    state = TrainState()
    if resume:
        saved = run.load_checkpoint("last.pt", device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        load_scheduler_state(scheduler, saved["scheduler"])
        step.load_state_dict(saved.get("step", {}))
        state = TrainState(**saved["state"])
        if state.stopped_early:  # resuming a run that stopped early means: keep going
            state.stopped_early, state.epochs_without_improvement = False, 0
        _restore_rng(saved["rng"], generator, workers)
    training = Training(run, config, model, domain, optimizer, scheduler, step, generator, state, workers, console,
                        resume, rng_state=lambda: _rng_state(generator, workers))
    events = Events([*make_callbacks(config), *(extra_callbacks or [])], training)
    events.run_start()
    if resume:
        console.print(f"Resuming {run.run_id} after epoch {state.epoch} (best val loss {state.best_val_loss:.4f} "
                      f"at epoch {state.best_loss_epoch}).")
    workers.copy_from_main(model)
    model.train()
    compile_seconds = _compile(step, train_data, cfg.batch_size, workers, console) if cfg.compile else None
    progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[live]}"), TimeElapsedColumn(), console=console,
                        transient=True, disable=not (show_progress and workers.is_main))
    with progress, StopSignals() as signals:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            started = time.perf_counter()
            beta = beta_at(epoch, config.beta)
            schedule_values = model.on_epoch_start(epoch, cfg.epochs)
            lr = optimizer.param_groups[0]["lr"]
            task = progress.add_task("train", total=workers.shard(train_data).shape[0], epoch=epoch, live="")
            try:
                train_stats = train_one_epoch(step, train_data, domain, config, beta, generator, progress, task,
                                              workers, epoch, signals, on_step=events.step_end)
            except NonFiniteError as error:
                message = (f"{error}. Nothing of epoch {epoch} was saved: last.pt holds epoch {state.epoch}, "
                           f"vae_best.pth epoch {state.best_epoch}; continue with --resume (e.g. with a lower "
                           "--lr or --set train.grad_clip=1), or set train.nonfinite=skip")
                events.stop("nonfinite", message)
                raise NonFiniteError(message) from None
            except Interrupted as error:
                interrupted(events, error, signals.received.name, state.epoch)
            progress.remove_task(task)
            workers.average_buffers(model)  # so every worker validates, corrects the lr and adjusts the same model
            scheduler.step()  # the configured schedule, then the model's own lr correction (lr_schedules.py)
            controller_values = model.on_epoch_end()
            val = evaluate(model, val_data, domain, config.loss, beta, precision=cfg.precision)
            with inference(cfg.precision, device):
                val.update(domain.extra_metrics(model, tensors, config, during_training=True))
            seconds = time.perf_counter() - started
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
            if training.stop_reason:
                events.stop(*training.stop_reason)
                break
            if signals.received:  # a signal during validation or the epoch's events
                interrupted(events, Interrupted(f"stopped by {signals.received.name} after epoch {epoch}",
                                                signals.exit_code), signals.received.name, state.epoch)
    events.run_end()
    return state
