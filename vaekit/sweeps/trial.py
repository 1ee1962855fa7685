"""One trial = one ordinary run directory, trained by ``vaekit.experiment.train_run`` (the code path
of `vaekit train`), with the trial's values as a config layer.

Outcomes, as Optuna states: COMPLETE with the objective's value; PRUNED when the median pruner stopped
it (the run is kept, with its test evaluation, and its provenance.json says so); FAIL with the
one-line error as the user attribute ``error`` (NaN, a bad combination of values, ...), and the sweep
goes on. A trial stopped by SIGTERM or Ctrl-C is queued again with the same values and run id (the
retry resumes the run from its last.pt), marked FAIL with ``interrupted`` set, and the worker stops.
While it trains, a trial beats a heartbeat, so that a worker killed without a word (SIGKILL) has its
trial queued again by another (``vaekit.sweeps.heartbeat``).
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from optuna.trial import Trial, TrialState
from rich.console import Console

from vaekit.errors import Interrupted, VaekitError, first_line
from vaekit.experiment import train_run
from vaekit.runs import RunDir
from vaekit.sweeps.heartbeat import Heartbeat, queue_again
from vaekit.sweeps.objective import objective_value
from vaekit.sweeps.plan import SweepPlan
from vaekit.sweeps.space import Axis
from vaekit.sweeps.study import run_id_of
from vaekit.training.events import Callback, StopReason, Training


def suggest(trial: Trial, axis: Axis):
    """The trial's value of one axis (a queued trial's fixed value, or one its sampler draws)."""
    if not axis.is_range:
        return trial.suggest_categorical(axis.name, axis.labels)
    distribution = axis.distribution()
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return trial.suggest_int(axis.name, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    return trial.suggest_float(axis.name, distribution.low, distribution.high, step=distribution.step,
                               log=distribution.log)


class SweepTrial(Callback):
    """Records the study and trial in the run's provenance.json; with pruning, reports the objective
    after each epoch and stops the run when the pruner says so."""

    def __init__(self, trial: Trial, plan: SweepPlan, params: dict):
        self.trial, self.plan, self.params = trial, plan, params
        self.pruned_after: int | None = None

    def _sweep_entry(self, **extra) -> dict:
        retry_of = self.trial.user_attrs.get("retry_of")
        return {"study": self.plan.study, "trial": self.trial.number, "params": self.params,
                **({"retry_of": retry_of} if retry_of is not None else {}), **extra}

    def on_run_start(self, t: Training) -> None:
        t.run.write_provenance("sweep", self._sweep_entry())

    def on_epoch_end(self, t: Training, record: dict) -> None:
        value = record.get(f"val_{self.plan.objective.metric}")
        if not self.plan.prune or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        self.trial.report(float(value), record["epoch"])
        if self.trial.should_prune():
            self.pruned_after = record["epoch"]
            t.run.write_provenance("sweep", self._sweep_entry(pruned_after_epoch=record["epoch"]))
            t.request_stop(StopReason.PRUNED, f"pruned by the sweep's median pruner after epoch {record['epoch']}")


def _tell(study: optuna.Study, trial: Trial, state: TrialState, value: float | None = None) -> None:
    """Record the trial's outcome.

    Raises:
        UpdateFinishedTrialError: another worker finished the trial meanwhile (it failed it as silent and
            queued it again), as Optuna raises when a user attribute is set on it.
    """
    told = study.tell(trial, value, state=state, skip_if_finished=True)
    if told.state != state:
        raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial.number} is already {told.state.name}")


def _fail(study: optuna.Study, trial: Trial, error: str, **attrs) -> None:
    trial.set_user_attr("error", error)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    _tell(study, trial, TrialState.FAIL)


def run_trial(study: optuna.Study, trial: Trial, plan: SweepPlan, console: Console | None = None) -> TrialState:
    """Train the trial's run and tell the study its outcome (see the module docstring).

    Raises:
        Interrupted, KeyboardInterrupt: after queueing the trial again; the worker should stop.
    """
    params = {axis.name: suggest(trial, axis) for axis in plan.space.axes}
    run_id = run_id_of(plan, trial)
    trial.set_user_attr("run_id", run_id)
    is_retry = "retry_of" in trial.user_attrs
    run_path = Path(plan.runs_dir) / run_id
    resume = is_retry and (run_path / "checkpoints" / "last.pt").is_file()
    values = (f"sweep '{plan.study}' trial {trial.number}", plan.space.overrides(params))
    layers = [*plan.layers, values, ("sweep workers", {"threads": plan.threads})]
    callback = SweepTrial(trial, plan, params)
    try:
        with Heartbeat(study, trial):
            run = train_run(plan.domain, None if resume else plan.config_file, layers, plan.runs_dir, run_id,
                            resume=resume, overwrite=is_retry and not resume, console=console, show_progress=False,
                            extra_callbacks=[callback])
            value = objective_value(run, plan.objective.metric)
    except (Interrupted, KeyboardInterrupt) as error:
        queue_again(study, trial, params, run_id)
        reason = (first_line(error) or "KeyboardInterrupt").split(";")[0]
        _fail(study, trial, f"interrupted ({reason}); queued again, resuming {run_id}", interrupted=True)
        raise
    except VaekitError as error:
        _fail(study, trial, first_line(error))
        return TrialState.FAIL
    except Exception as error:  # noqa: BLE001 - a bug in one trial is recorded; the sweep goes on
        _fail(study, trial, f"internal error: {type(error).__name__}: {first_line(error)}")
        return TrialState.FAIL
    trial.set_user_attr("value_at_best_checkpoint", value)
    if callback.pruned_after is not None:
        trial.set_user_attr("pruned_after_epoch", callback.pruned_after)
        _tell(study, trial, TrialState.PRUNED)
        return TrialState.PRUNED
    _tell(study, trial, TrialState.COMPLETE, value)
    return TrialState.COMPLETE


def run_of(runs_dir: Path, frozen: optuna.trial.FrozenTrial) -> RunDir | None:
    """The run directory of a trial, when it exists."""
    run_id = frozen.user_attrs.get("run_id")
    path = Path(runs_dir) / run_id if run_id else None
    return RunDir(path) if path is not None and path.is_dir() else None
