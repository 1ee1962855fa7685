"""What last.pt keeps besides the weights, and what --resume does with it.

last.pt is written after every epoch, and also in the middle of one: when a stop signal arrives
(SIGTERM, SIGINT), every ``train.checkpoint_every_steps`` steps and every
``train.checkpoint_every_minutes`` minutes. A mid-epoch last.pt carries an ``EpochPosition``: the
epoch's whole shuffled order, how many of its steps are done and the sums of their loss terms, so
that --resume continues at the next step and the epoch's record is the one an uninterrupted run
writes.

Settings that a resumed run may change are applied explicitly, with a printed note (``apply_changes``);
those that cannot be applied are refused before anything is written (``resume_refusal``):

- ``train.batch_size`` and the number of workers: at an epoch boundary, applied (the step count
  continues from last.pt's); in the middle of an epoch, refused (the epoch's remaining batches would
  not be the same data).
- ``train.lr``: applied at once; the schedule keeps its shape, scaled to the new base lr.
- ``train.epochs`` with the cosine schedule and ``train.cosine_t_max`` unset (or a new
  ``cosine_t_max``): the cosine is redrawn over the new length, and the next epoch takes its lr from
  the redrawn curve (so extending a run anneals to ``min_lr`` at its new last epoch, never climbs
  back up).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from vaekit.config import Config
from vaekit.training.distributed import SINGLE, Workers

NEW_STREAM = 2  # the (seed, rank, epoch) stream of a worker that last.pt has no state for


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


@dataclass
class EpochPosition:
    """Where in an epoch a mid-epoch last.pt was written.

    Attributes:
        epoch: the epoch under way.
        order: its whole shuffled order of training items (before each worker takes its share).
        step: the steps of the epoch done (the next one to train is ``step + 1``).
        sums: the loss, reconstruction and KL summed over those steps' batches, averaged over the
            workers (the epoch's record divides them by the batch count at the end).
        batches: the steps that counted in ``sums`` (skipped steps do not).
        skipped: the steps skipped so far under ``train.nonfinite: skip``.
        seconds: the wall time the epoch had taken.
        batch_size: the per-worker batch size of the epoch.
        world_size: the number of workers that trained it.
    """

    epoch: int
    order: torch.Tensor
    step: int = 0
    sums: tuple[float, float, float] = (0.0, 0.0, 0.0)
    batches: int = 0
    skipped: int = 0
    seconds: float = 0.0
    batch_size: int = 0
    world_size: int = 1

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "order": self.order.cpu(), "step": self.step, "sums": list(self.sums),
                "batches": self.batches, "skipped": self.skipped, "seconds": self.seconds,
                "batch_size": self.batch_size, "world_size": self.world_size}

    @classmethod
    def from_dict(cls, saved: dict | None, device: torch.device) -> EpochPosition | None:
        if not saved:
            return None
        return cls(**{**saved, "order": saved["order"].to(device), "sums": tuple(saved["sums"])})


def rng_state(data: torch.Generator, augment: torch.Generator, workers: Workers = SINGLE) -> dict:
    """The random states last.pt keeps: the shared data-order generator, and every worker's noise
    and augmentation generators by rank (a collective under torchrun: every worker calls this)."""
    own = {"torch": torch.get_rng_state(), "augment": augment.get_state()}
    if torch.cuda.is_available():
        own["cuda"] = torch.cuda.get_rng_state_all()
    by_rank = workers.gather(own)
    return {"torch": by_rank[0]["torch"], "data": data.get_state(), "by_rank": by_rank}


def saved_world_size(saved: dict) -> int:
    """The number of workers that wrote a last.pt."""
    rng = saved.get("rng", {})
    return len(rng.get("by_rank") or rng.get("torch_by_rank") or [None])


def restore_rng(state: dict, data: torch.Generator, augment: torch.Generator, config: Config, epoch: int,
                workers: Workers = SINGLE) -> None:
    """Put every generator back as last.pt has it. A worker last.pt has no state for (the run goes
    on with more workers) starts new streams seeded from (seed, rank, epoch)."""
    data.set_state(state["data"].cpu())
    by_rank = state.get("by_rank") or [{"torch": s} for s in state.get("torch_by_rank", [state["torch"]])]
    if workers.rank < len(by_rank):
        own = by_rank[workers.rank]
        torch.set_rng_state(own["torch"].cpu())
        if "augment" in own:
            augment.set_state(own["augment"].cpu())
        if "cuda" in own and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in own["cuda"]])
        return
    seeds = np.random.SeedSequence([config.seed, workers.rank, NEW_STREAM, epoch]).generate_state(2, np.uint64)
    torch.manual_seed(int(seeds[0] >> 1))
    augment.manual_seed(int(seeds[1] >> 1))


def resume_refusal(saved: dict, config: Config, world_size: int) -> str | None:
    """Why last.pt cannot be resumed with ``config`` on ``world_size`` workers, or None.

    Only a mid-epoch last.pt refuses anything: its remaining batches are defined by the batch size
    and the number of workers it was written with."""
    position = saved.get("position")
    if not position:
        return None
    epoch, step = position["epoch"], position["step"]
    was = {"train.batch_size": position["batch_size"], "workers": position["world_size"]}
    now = {"train.batch_size": config.train.batch_size, "workers": world_size}
    changed = [f"{key} was {was[key]}, now {now[key]}" for key in was if was[key] != now[key]]
    if not changed:
        return None
    return (f"last.pt was written in the middle of epoch {epoch} (after its step {step}), and {'; '.join(changed)}: "
            f"the rest of the epoch would not be the same batches. Resume with the run's "
            f"--batch-size {was['train.batch_size']} on {was['workers']} worker(s) and --epochs {epoch} to finish "
            "the epoch, then resume again with the new setting")


def save_last(t, position: EpochPosition | None = None) -> None:
    """Write last.pt from the training's current state (atomically), after an epoch or, with
    ``position``, in the middle of one. Every worker calls this (the RNG states are gathered from
    all); the main worker writes. ``t`` is the loop's ``vaekit.training.events.Training``."""
    rng = t.rng_state()
    if t.writes:
        t.run.save_checkpoint({"model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
                               "scheduler": t.scheduler.state_dict(), "step": t.step.state_dict(),
                               "state": asdict(t.state), "rng": rng,
                               "position": position.to_dict() if position is not None else None}, "last.pt")


def cosine_length(config: Config) -> int:
    """T_max of the cosine schedule: ``train.cosine_t_max``, or the run's epochs when unset."""
    return config.train.cosine_t_max or config.train.epochs


def apply_changes(saved: dict, config: Config, optimizer: torch.optim.Optimizer, scheduler,
                  world_size: int) -> list[str]:
    """Apply to the restored optimizer and scheduler what the resumed run's config changes, and say
    what changed (one note each; nothing changes silently)."""
    notes = []
    state = saved["state"]
    was_batch = state.get("batch_size") or 0
    if was_batch and was_batch != config.train.batch_size:
        notes.append(f"train.batch_size {was_batch} -> {config.train.batch_size}: the epochs from here on take "
                     "batches of the new size; step numbers continue from last.pt's")
    was_workers = saved_world_size(saved)
    if was_workers != world_size:
        notes.append(f"workers {was_workers} -> {world_size}: the global batch is {world_size} × "
                     f"{config.train.batch_size} from here on"
                     + ("; the new workers start noise streams of their own" if world_size > was_workers else ""))
    if isinstance(scheduler, torch.optim.lr_scheduler.ChainedScheduler):  # the schedule, then a model's correction
        scheduler = scheduler._schedulers[0]
    was_lr = scheduler.base_lrs[0]
    if not math.isclose(was_lr, config.train.lr, rel_tol=1e-12):
        factor = config.train.lr / was_lr
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
        for group in optimizer.param_groups:
            group["lr"] *= factor
            group["initial_lr"] = group.get("initial_lr", was_lr) * factor
        notes.append(f"train.lr {was_lr:g} -> {config.train.lr:g}: the schedule keeps its shape from the new base "
                     f"lr; the next epoch trains at lr {optimizer.param_groups[0]['lr']:.3g}")
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) and scheduler.T_max != cosine_length(config):
        was_t_max, scheduler.T_max = scheduler.T_max, cosine_length(config)
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * (
                1 + math.cos(math.pi * min(scheduler.last_epoch, scheduler.T_max) / scheduler.T_max)) / 2
        notes.append(f"cosine schedule over {was_t_max} -> {scheduler.T_max} epochs: redrawn over the new length; "
                     f"the next epoch trains at lr {optimizer.param_groups[0]['lr']:.3g}")
    return notes
