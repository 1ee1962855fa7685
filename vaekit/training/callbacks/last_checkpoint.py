"""checkpoints/last.pt after every epoch: weights, optimizer, scheduler, trainer state and RNG, so
that --resume continues exactly where the run stopped (the loop also writes it in the middle of an
epoch: see ``vaekit.training.resume``)."""

from vaekit.training.events import Callback, Training, register_callback
from vaekit.training.resume import save_last


@register_callback
class LastCheckpoint(Callback):
    stage = "save"

    def on_run_start(self, t: Training) -> None:
        if not t.resume:  # so that a run stopped in its first epoch can be resumed too
            save_last(t)

    def on_epoch_end(self, t: Training, record: dict) -> None:
        save_last(t)
