"""The progress bar of each epoch: samples done, the loss now and then, and the time taken (on the
main worker's console, when the caller asks for it; it disappears when the epoch ends)."""

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vaekit.training.events import Callback, StopReason, Training, register_callback

LIVE_EVERY = 10  # reading the loss waits for the device: once every this many steps


@register_callback
class ProgressBar(Callback):
    stage = "print"

    def __init__(self):
        self.progress = self.task = None
        self.batches = 0
        self.kl_range = ""

    def on_run_start(self, t: Training) -> None:
        if t.show_progress and t.writes:
            self.progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[live]}"), TimeElapsedColumn(), console=t.console,
                                     transient=True)
            self.progress.start()

    def on_epoch_start(self, t: Training, epoch: int, total: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task("train", total=total, epoch=epoch, live="")
            self.batches = 0

    def on_batch_end(self, t: Training, samples: int, loss: torch.Tensor) -> None:
        if self.task is None:
            return
        self.batches += 1
        live = {"live": f"loss {loss.item():.3f}{self.kl_range}"} if self.batches % LIVE_EVERY == 1 else {}
        self.progress.update(self.task, advance=samples, **live)

    def on_step_end(self, t: Training, record: dict) -> None:
        self.kl_range = f"  KL/dim {record['kl_min']:.2f}–{record['kl_max']:.2f}"

    def on_epoch_end(self, t: Training, record: dict) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def on_stop(self, t: Training, reason: StopReason, message: str) -> None:
        self.close(t)

    def on_run_end(self, t: Training) -> None:
        self.close(t)

    def close(self, t: Training) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = self.task = None
