"""train.log: everything the training prints to the console (epoch lines, warnings, why it stopped),
appended as plain text to runs/<id>/train.log, so that it outlives the terminal."""

import time

from rich.console import Console

from vaekit.training.events import Callback, Training, register_callback


@register_callback
class TrainLog(Callback):
    stage = "log"

    def __init__(self):
        self.file = self.console = self.original_print = None

    def on_run_start(self, t: Training) -> None:
        if not t.writes:
            return
        self.file = open(t.run.path / "train.log", "a", encoding="utf-8")  # noqa: SIM115 - closed at run end
        self.console = Console(file=self.file, width=200, no_color=True, highlight=False, soft_wrap=True)
        self.console.print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
                           f"{'resuming after epoch ' + str(t.state.epoch) if t.resume else 'training'} {t.run.run_id}")
        self.original_print = vars(t.console).get("print")  # None: the class's own print
        print_to_console = self.original_print or t.console.print

        def print_both(*objects, **kwargs):
            print_to_console(*objects, **kwargs)
            self.console.print(*objects, **kwargs)
            self.file.flush()

        t.console.print = print_both

    def on_stop(self, t: Training, reason: str, message: str) -> None:
        if self.console is not None and reason != "early_stopping":  # early stopping is printed, hence logged
            self.console.print(message, markup=False)
        self.close(t)

    def on_run_end(self, t: Training) -> None:
        self.close(t)

    def close(self, t: Training) -> None:
        if self.file is not None:
            if self.original_print is None:
                del t.console.print
            else:
                t.console.print = self.original_print
            self.file.close()
            self.file = None
