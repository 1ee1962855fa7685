"""train.log: every line the training tells the user (epoch lines, warnings, notes, why it stopped),
appended as plain text to runs/<id>/train.log, so that it outlives the terminal."""

import time

from rich.console import Console

from vaekit.training.events import Callback, StopReason, Training, register_callback


@register_callback
class TrainLog(Callback):
    stage = "log"

    def __init__(self):
        self.file = self.log = None

    def on_run_start(self, t: Training) -> None:
        if not t.writes:
            return
        self.file = open(t.run.path / "train.log", "a", encoding="utf-8")  # noqa: SIM115 - closed at run end
        self.log = Console(file=self.file, width=200, no_color=True, highlight=False, soft_wrap=True)
        self.log.print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
                       f"{'resuming after epoch ' + str(t.state.epoch) if t.resume else 'training'} {t.run.run_id}")

    def on_message(self, t: Training, text: str, markup: bool) -> None:
        if self.log is not None:
            self.log.print(text, markup=markup)
            self.file.flush()

    def on_stop(self, t: Training, reason: StopReason, message: str) -> None:
        if self.log is not None and reason is not StopReason.EARLY_STOPPING:  # that one is said, hence logged
            self.log.print(message, markup=False)
        self.close(t)

    def on_run_end(self, t: Training) -> None:
        self.close(t)

    def close(self, t: Training) -> None:
        if self.file is not None:
            self.file.close()
            self.file = self.log = None
