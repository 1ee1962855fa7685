"""Run a sweep: one worker loop in this process, or K worker processes on this machine.

A worker takes trials from the study until none is left (see ``vaekit.sweeps.study.next_trial``).
SIGTERM and Ctrl-C stop it cleanly: a trial in training saves last.pt and is queued again, and the
worker ends with the signal's exit code. Running the same command again continues the study.
"""

from __future__ import annotations

import multiprocessing
import signal
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
from rich.console import Console

from vaekit.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, VaekitError
from vaekit.sweeps.heartbeat import grace_seconds
from vaekit.sweeps.plan import SweepPlan
from vaekit.sweeps.storage import storage_errors
from vaekit.sweeps.study import join_study, next_trial
from vaekit.sweeps.trial import run_trial


@dataclass
class SweepOutcome:
    """The study's trial counts by state when a ``run_sweep`` call ended (RUNNING: other workers')."""

    study: str
    storage: str
    states: dict[str, int]


class WorkerFailed(VaekitError):
    """A worker process ended with an error (its own line is above); the command exits with its code."""

    def __init__(self, exit_code: int):
        super().__init__(f"a sweep worker process ended with exit code {exit_code} (its error is above)")
        self.exit_code = exit_code


@contextmanager
def _sigterm_interrupts():
    """Between trials (and while a trial evaluates), SIGTERM raises Interrupted instead of killing
    the process, so that a RUNNING trial is queued again; training installs its own handler."""

    def handle(signum, frame):
        raise Interrupted("stopped by SIGTERM", EXIT_TERMINATED)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _describe(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def run_worker(plan: SweepPlan, console: Console | None = None, quiet_training: bool = False) -> int:
    """Take and run trials of the plan's study until it is done; returns how many this worker ran (a
    trial another worker failed meanwhile, as silent, is not counted: its retry runs it again).

    Raises:
        Interrupted: SIGTERM or Ctrl-C (the trial in progress is queued again).
    """
    console = console or Console()
    study = join_study(plan)
    ran = 0
    with _sigterm_interrupts():
        while (trial := next_trial(study, plan)) is not None:
            try:
                state = run_trial(study, trial, plan, Console(quiet=True) if quiet_training else console)
            except optuna.exceptions.UpdateFinishedTrialError:  # not this worker's failure: take the next
                console.print(f"trial {trial.number}: another worker failed it meanwhile (its heartbeat was late by "
                              f"more than {grace_seconds()} s) and queued it again; this outcome is not recorded",
                              markup=False, highlight=False)
                continue
            ran += 1
            frozen = study._storage.get_trial(trial._trial_id)
            shown = (f"{plan.objective.metric} {frozen.value:.4f}" if frozen.value is not None
                     else frozen.user_attrs.get("error", ""))
            console.print(f"trial {trial.number} [{frozen.user_attrs.get('run_id')}] ({_describe(frozen.params)}): "
                          f"{state.name} {shown}", markup=False, highlight=False)
    return ran


def _worker_process(plan: SweepPlan) -> None:
    """The body of one of K worker processes: its exit code says how it ended; an error is one line."""
    try:
        with storage_errors(plan.storage):
            run_worker(plan, Console(), quiet_training=True)
    except Interrupted as error:
        raise SystemExit(error.exit_code) from None
    except VaekitError as error:
        Console(stderr=True).print(f"Error: {error}", markup=False, highlight=False)
        raise SystemExit(error.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None


def _run_processes(plan: SweepPlan) -> None:
    """K worker processes; SIGTERM to this process is passed on to them, Ctrl-C reaches them from the
    terminal. Raises Interrupted when any was stopped by a signal."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no forked torch threads
    processes = [context.Process(target=_worker_process, args=(plan,), name=f"sweep-worker-{i}")
                 for i in range(plan.workers)]

    def forward(signum, frame):
        for process in processes:
            if process.is_alive():
                process.terminate()

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        for process in processes:
            process.start()
        for process in processes:
            while True:
                try:
                    process.join()
                    break
                except KeyboardInterrupt:  # the workers got the same Ctrl-C: wait for them to queue their trials
                    continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    codes = [p.exitcode for p in processes]
    stopped = [c for c in codes if c in (EXIT_INTERRUPTED, EXIT_TERMINATED, -signal.SIGTERM)]
    if stopped:
        code = EXIT_TERMINATED if stopped[0] != EXIT_INTERRUPTED else EXIT_INTERRUPTED
        raise Interrupted("the sweep's workers were stopped", code)
    if any(codes):
        raise WorkerFailed(next(c for c in codes if c))


def run_sweep(plan: SweepPlan, console: Console | None = None) -> SweepOutcome:
    """Run the plan's study to its end with ``plan.workers`` trials at a time.

    Raises:
        Interrupted: stopped by SIGTERM or Ctrl-C; running the same plan again continues.
        VaekitUsageError: a damaged storage, or one that failed mid-sweep (DiskError: its file system).
    """
    console = console or Console()
    with storage_errors(plan.storage):
        study = join_study(plan)  # created and its grid queued once, before any worker starts
        if plan.workers == 1:
            run_worker(plan, console)
        else:
            _run_processes(plan)
        trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    return SweepOutcome(plan.study, plan.storage, states)
