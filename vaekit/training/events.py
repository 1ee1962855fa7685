"""The seam of the training loop: ``fit()`` announces what happened, small subscribers act on it.

``fit()`` emits these events and does nothing else with them:

    run_start(t)                 after the model, optimizer and (on --resume) state are ready
    message(t, text, markup)     a line for the user (``t.say``): the console and train.log show it
    epoch_start(t, epoch, total) before an epoch's first step; ``total`` samples on this worker
    batch_end(t, samples, loss)  after every optimizer step (the loss a device tensor: read it rarely)
    step_end(t, record)          every train.log_every_steps-th step; ``record`` is its steps.jsonl line
    epoch_end(t, record)         after validation; ``record`` is the epoch's metrics.jsonl line
    stop(t, reason, message)     training ends early, for a ``StopReason``
    run_end(t)                   after the last epoch (not after an error or a signal)

The loop owns no terminal: the progress bar, the console and train.log are subscribers like the
checkpoints (``ProgressBar``, ``ConsoleEcho``, ``TrainLog``).

Whatever way ``fit()`` ends (the last epoch, a stop, an error in the loop or in a subscriber), every
subscriber's ``close`` is called last, so files, writers and the console are released.

A subscriber's settings are checked by its ``check_config`` classmethod, which
``vaekit.experiment.resolve_config`` calls for every registered subscriber (``check_callbacks``)
before any file is written.

Subscribers are ``Callback`` objects. Each declares its ``stage`` (``STAGES``, in the order the
stages receive every event); within a stage, registration order. Adding a sink or a policy is one
module under ``vaekit/training/callbacks/`` that defines a Callback with its stage and registers it
with ``@register_callback``; the package imports its modules, and the loop is not edited
(docs/training.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import torch
from rich.console import Console

from vaekit.config import Config
from vaekit.runs import RunDir
from vaekit.training.distributed import Workers
from vaekit.training.resume import TrainState

if TYPE_CHECKING:  # imported for the annotations only: these modules import this one's users
    from vaekit.domains import Domain
    from vaekit.training.step import TrainStep


class StopReason(str, Enum):
    """Why training ended before its last epoch (a str, so records and comparisons read it as text)."""

    EARLY_STOPPING = "early_stopping"  # no better val loss for train.early_stopping_patience epochs
    PRUNED = "pruned"  # a sweep's pruner stopped an unpromising trial
    NONFINITE = "nonfinite"  # a loss or gradient went non-finite (exit 65)
    SIGTERM = "SIGTERM"  # preempted or killed (exit 143)
    SIGINT = "SIGINT"  # Ctrl-C (exit 130)

    @property
    def completes_the_run(self) -> bool:
        """True where a policy ended the run as designed (early stopping, pruning): the run is whole,
        not cut short by an error or a signal."""
        return self in (StopReason.EARLY_STOPPING, StopReason.PRUNED)


@dataclass
class Training:
    """A run in training: what the loop holds and what a subscriber may look at (and, for the
    checkpoint and stopping policies, change).

    ``state`` is the run's progress (epoch, step, best epochs), which last.pt saves; ``val`` is the
    latest epoch's full validation metrics (including the per-dimension KL); ``generator`` is the
    data-order RNG; ``rng_state`` returns the RNG state last.pt stores.
    """

    run: RunDir
    config: Config
    model: torch.nn.Module
    domain: Domain
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: TrainStep
    generator: torch.Generator
    state: TrainState
    workers: Workers
    console: Console
    resume: bool
    rng_state: Callable[[], dict]
    show_progress: bool = True
    val: dict | None = None
    stop_reason: tuple[StopReason, str] | None = None
    shared: dict = field(default_factory=dict)  # what one subscriber makes for others (e.g. an epoch's pictures)
    events: Events | None = None  # set once the subscribers are made

    def request_stop(self, reason: StopReason, message: str) -> None:
        """Ask the loop to stop after this epoch's events (e.g. early stopping)."""
        self.stop_reason = (StopReason(reason), message)

    def say(self, text: str, markup: bool = True) -> None:
        """Tell the user ``text`` (rich markup unless ``markup`` is False): every ``on_message``
        subscriber gets it (the console, train.log)."""
        if self.events is not None:
            self.events.message(text, markup)

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory (the main worker under torchrun)."""
        return self.workers.is_main


# The stages of every event, in order, and why each comes where it does.
STAGES = (
    "log",     # the console, train.log and provenance start first, so that they see every line
    "guard",   # the non-finite guard checks the weights before anything is saved
    "record",  # metrics.jsonl and steps.jsonl: the truth the other subscribers may read
    "select",  # the best checkpoint (t.state.best_epoch), which sinks report
    "decide",  # early stopping, which last.pt must save
    "save",    # last.pt and the epoch checkpoints
    "print",   # the progress bar, the console line and metrics.csv
    "draw",    # pictures and curves (t.shared['pictures'], which TensorBoard logs)
    "sink",    # TensorBoard, MLflow, and by default any other subscriber
)


class Callback:
    """A subscriber to the loop's events; every method is a no-op until overridden.

    Build it from the config with ``from_config``; returning None leaves it out of the run.
    ``check_config`` refuses settings out of range (a VaekitUsageError), before the run starts.
    ``stage`` places it among the others (``STAGES``).
    """

    stage: str = "sink"

    @classmethod
    def check_config(cls, config: Config) -> None:
        pass

    @classmethod
    def from_config(cls, config: Config) -> "Callback | None":
        return cls()

    def on_run_start(self, t: Training) -> None:
        pass

    def on_message(self, t: Training, text: str, markup: bool) -> None:
        pass

    def on_epoch_start(self, t: Training, epoch: int, total: int) -> None:
        pass

    def on_batch_end(self, t: Training, samples: int, loss: torch.Tensor) -> None:
        pass

    def on_step_end(self, t: Training, record: dict) -> None:
        pass

    def on_epoch_end(self, t: Training, record: dict) -> None:
        pass

    def on_stop(self, t: Training, reason: StopReason, message: str) -> None:
        pass

    def on_run_end(self, t: Training) -> None:
        pass

    def close(self, t: Training) -> None:
        """Release what the subscriber holds (files, writers); called once ``fit()`` ends, however."""


CALLBACKS: list[type[Callback]] = []


def register_callback(cls: type[Callback]) -> type[Callback]:
    """Add a Callback class to every run, in the order of its declared stage."""
    if cls.stage not in STAGES:
        raise TypeError(f"callback {cls.__name__}: stage '{cls.stage}' is not one of {', '.join(STAGES)}")
    CALLBACKS.append(cls)
    CALLBACKS.sort(key=lambda c: STAGES.index(c.stage))  # stable: registration order within a stage
    return cls


def check_callbacks(config: Config) -> None:
    """Refuse any subscriber setting out of range (each subscriber's ``check_config``)."""
    import vaekit.training.callbacks  # noqa: F401 - registers the built-in subscribers

    for cls in CALLBACKS:
        cls.check_config(config)


def make_callbacks(config: Config) -> list[Callback]:
    """The subscribers of a run, as configured."""
    import vaekit.training.callbacks  # noqa: F401 - registers the built-in subscribers

    return [cb for cls in CALLBACKS if (cb := cls.from_config(config)) is not None]


class Events:
    """Sends each event to every subscriber, in order."""

    def __init__(self, callbacks: list[Callback], training: Training):
        self.callbacks, self.training = callbacks, training
        training.events = self
        # every step's event goes only to those who listen: most subscribers do not
        self.batch_listeners = [cb for cb in callbacks if type(cb).on_batch_end is not Callback.on_batch_end]

    def run_start(self) -> None:
        for cb in self.callbacks:
            cb.on_run_start(self.training)

    def message(self, text: str, markup: bool = True) -> None:
        for cb in self.callbacks:
            cb.on_message(self.training, text, markup)

    def epoch_start(self, epoch: int, total: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_start(self.training, epoch, total)

    def batch_end(self, samples: int, loss: torch.Tensor) -> None:
        for cb in self.batch_listeners:
            cb.on_batch_end(self.training, samples, loss)

    def step_end(self, record: dict) -> None:
        for cb in self.callbacks:
            cb.on_step_end(self.training, record)

    def epoch_end(self, record: dict) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(self.training, record)

    def stop(self, reason: StopReason | str, message: str) -> None:
        reason = StopReason(reason)  # an unknown reason is a programming error, refused here
        for cb in self.callbacks:
            cb.on_stop(self.training, reason, message)

    def run_end(self) -> None:
        for cb in self.callbacks:
            cb.on_run_end(self.training)

    def close(self) -> None:
        """Close every subscriber, even when one of them fails to (the first failure is raised
        after all are closed, unless an error is already on its way out)."""
        failure = None
        for cb in self.callbacks:
            try:
                cb.close(self.training)
            except Exception as error:  # noqa: BLE001 - the others still get closed
                failure = failure or error
        if failure is not None and sys.exc_info()[0] is None:
            raise failure
