"""results/training_curves.png, redrawn from metrics.jsonl after every epoch."""

import os

from vaekit.plots import training_curves
from vaekit.training.events import Callback, Training, register_callback


@register_callback
class TrainingCurves(Callback):
    stage = "draw"

    def on_epoch_end(self, t: Training, record: dict) -> None:
        if not t.writes:
            return
        path = t.run.results / "training_curves.png"
        partial = path.with_name(".training_curves.partial.png")  # so a reader never sees half a PNG
        training_curves(t.run.read_metrics(quiet=True), partial, t.domain.curve_metrics, t.model.phase_boundaries())
        os.replace(partial, path)
