"""metrics.jsonl: one JSON line per epoch, the run's record that every other view reads."""

from vaekit.training.events import Callback, Training, register_callback


@register_callback
class MetricsLog(Callback):
    stage = "record"

    def on_run_start(self, t: Training) -> None:
        if t.resume and t.writes:  # drop records written after last.pt's epoch (an interrupted epoch)
            t.run.truncate_metrics(t.state.epoch)

    def on_epoch_end(self, t: Training, record: dict) -> None:
        if t.writes:
            t.run.append_metrics(record)
