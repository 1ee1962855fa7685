"""checkpoints/epoch_NNN.pt every train.checkpoint_every epochs, the newest train.keep_checkpoints kept."""

from vaekit.config import Config
from vaekit.errors import VaekitUsageError
from vaekit.training.events import Callback, Training, register_callback


@register_callback
class EpochCheckpoints(Callback):
    stage = "save"

    def __init__(self, every: int, keep: int):
        self.every, self.keep = every, keep

    @classmethod
    def check_config(cls, config: Config) -> None:
        for key in ("checkpoint_every", "keep_checkpoints"):
            if getattr(config.train, key) < 0:
                raise VaekitUsageError(f"train.{key} {getattr(config.train, key)}: expected 0 (off) or more")

    @classmethod
    def from_config(cls, config: Config) -> "EpochCheckpoints | None":
        return cls(config.train.checkpoint_every, config.train.keep_checkpoints) if config.train.checkpoint_every else None

    def on_epoch_end(self, t: Training, record: dict) -> None:
        epoch = record["epoch"]
        if not t.writes or epoch % self.every:
            return
        t.run.save_checkpoint(t.model.state_dict(), f"epoch_{epoch:03d}.pt")
        kept = t.run.epoch_checkpoints()
        # files of later epochs than this one were left by a run that was interrupted and resumed
        for old in [e for e in kept if e > epoch] + (list(kept)[: -self.keep] if self.keep else []):
            if old in kept:
                kept.pop(old).unlink()
