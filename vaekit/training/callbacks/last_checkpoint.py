"""checkpoints/last.pt after every epoch: weights, optimizer, scheduler, trainer state and RNG, so
that --resume continues exactly where the run stopped."""

from dataclasses import asdict

from vaekit.training.events import Callback, Training, register_callback


def save_last(t: Training) -> None:
    """Write last.pt from the training's current state (atomically). Every worker calls this (the
    RNG states are gathered from all); the main worker writes."""
    rng = t.rng_state()
    if t.writes:
        t.run.save_checkpoint({"model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
                               "scheduler": t.scheduler.state_dict(), "step": t.step.state_dict(),
                               "state": asdict(t.state), "rng": rng}, "last.pt")


@register_callback
class LastCheckpoint(Callback):
    def on_run_start(self, t: Training) -> None:
        if not t.resume:  # so that a run stopped in its first epoch can be resumed too
            save_last(t)

    def on_epoch_end(self, t: Training, record: dict) -> None:
        save_last(t)
