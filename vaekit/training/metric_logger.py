"""One interface for the sinks that log a run's numbers elsewhere (TensorBoard, MLflow, metrics.csv).

A sink says what to do with an epoch's scalars (and, if it wants them, a step's record), and how to
open and finish; ``MetricLogger`` turns the loop's events into those calls on the main worker only,
and ``scalar_fields`` is the one filter of what a record's scalars are. Lightning's ``Logger``
(``log_metrics``, ``finalize(status)``) has the same shape.
"""

from __future__ import annotations

from vaekit.training.events import Callback, StopReason, Training


def scalar_fields(record: dict, text: bool = False, leave_out: tuple[str, ...] = ()) -> dict:
    """The scalar values of a metrics.jsonl or steps.jsonl record: numbers (booleans are not), and
    with ``text`` strings too (e.g. the precision); lists such as kl_per_dim and ``leave_out`` keys
    left out."""
    kinds = (int, float, str) if text else (int, float)
    return {key: value for key, value in record.items()
            if isinstance(value, kinds) and not isinstance(value, bool) and key not in leave_out}


class MetricLogger(Callback):
    """A sink of a run's scalars; subclasses override ``open``, ``log_epoch`` and what else they need.

    ``finish(t, completed)`` ends the sink's record of the run: ``completed`` is False where a signal
    or a non-finite value stopped training, True after the last epoch, early stopping or pruning.
    ``abort`` ends it when an error stopped training (in the loop or in a subscriber).
    """

    stage = "sink"

    def __init__(self):
        self.logging = False

    def open(self, t: Training) -> None:
        pass

    def log_epoch(self, t: Training, epoch: int, scalars: dict[str, float], record: dict) -> None:
        pass

    def log_step(self, t: Training, step: int, record: dict) -> None:
        pass

    def finish(self, t: Training, completed: bool) -> None:
        pass

    def abort(self, t: Training) -> None:
        self.finish(t, completed=False)

    def on_run_start(self, t: Training) -> None:
        if t.writes:
            self.open(t)
            self.logging = True

    def on_step_end(self, t: Training, record: dict) -> None:
        if self.logging:
            self.log_step(t, record["step"], record)

    def on_epoch_end(self, t: Training, record: dict) -> None:
        if self.logging:
            self.log_epoch(t, record["epoch"], scalar_fields(record, leave_out=("epoch",)), record)

    def on_stop(self, t: Training, reason: StopReason, message: str) -> None:
        self._end(t, lambda: self.finish(t, reason.completes_the_run))

    def on_run_end(self, t: Training) -> None:
        self._end(t, lambda: self.finish(t, True))

    def close(self, t: Training) -> None:
        self._end(t, lambda: self.abort(t))

    def _end(self, t: Training, how) -> None:
        if self.logging:
            self.logging = False
            how()
