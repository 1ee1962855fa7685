"""checkpoints/vae_best.pth, encoder.pth and decoder.pth: the best epoch by train.selection_metric.

A NaN score ranks below every number, so an epoch whose score is NaN (e.g. the first, before the
model decodes anything valid) is kept only until an epoch with a real score comes."""

import math

from vaekit.training.events import Callback, Training, register_callback
from vaekit.training.loop import selection_score


def ranked(score: list[float]) -> list[float]:
    """A score that compares in order: NaN as −inf."""
    return [-math.inf if math.isnan(v) else v for v in score]


def better(score: list[float], best: list[float]) -> bool:
    """Whether ``score`` ranks above ``best`` on the metrics both hold (a run resumed from a version
    without the loss's tie-break saved a shorter best score: a tie with it is not a win)."""
    common = min(len(score), len(best))
    return ranked(score)[:common] > ranked(best)[:common]


@register_callback
class BestCheckpoint(Callback):
    stage = "select"

    def on_epoch_end(self, t: Training, record: dict) -> None:
        score = selection_score(t.val, t.config.train.selection_metric, t.domain)
        if not t.state.best_score or better(score, t.state.best_score):
            t.state.best_score, t.state.best_epoch = score, record["epoch"]
            if t.writes:
                t.run.save_checkpoint(t.model.state_dict(), "vae_best.pth")
                t.run.save_checkpoint(t.model.encoder.state_dict(), "encoder.pth")
                t.run.save_checkpoint(t.model.decoder.state_dict(), "decoder.pth")
