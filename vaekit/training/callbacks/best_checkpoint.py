"""checkpoints/vae_best.pth, encoder.pth and decoder.pth: the best epoch by train.selection_metric."""

from vaekit.training.events import Callback, Training, register_callback
from vaekit.training.loop import selection_score


@register_callback
class BestCheckpoint(Callback):
    def on_epoch_end(self, t: Training, record: dict) -> None:
        score = selection_score(t.val, t.config.train.selection_metric)
        if not t.state.best_score or score > t.state.best_score:
            t.state.best_score, t.state.best_epoch = score, record["epoch"]
            if t.writes:
                t.run.save_checkpoint(t.model.state_dict(), "vae_best.pth")
                t.run.save_checkpoint(t.model.encoder.state_dict(), "encoder.pth")
                t.run.save_checkpoint(t.model.decoder.state_dict(), "decoder.pth")
