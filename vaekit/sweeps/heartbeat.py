"""Trials of workers that died without a word (SIGKILL, the OOM killer, a lost machine).

Such a worker cannot queue its trial again the way SIGTERM does, so the trial would stay RUNNING
forever and its grid point would never be trained. Each running trial therefore records a heartbeat
in the storage every ``HEARTBEAT_SECONDS``; the next worker that asks for a trial fails every trial
whose last heartbeat is older than the grace period and queues it again with its values and run id,
so that the retry resumes the run from its last.pt (see ``vaekit.sweeps.trial``).

Database storages only (SQLite, PostgreSQL, MySQL): Optuna's journal file keeps no heartbeats.
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial, Trial

from vaekit.sweeps.claims import fail_running

HEARTBEAT_SECONDS = 20
GRACE_ENV = "VAEKIT_SWEEP_GRACE_SECONDS"
DEFAULT_GRACE_SECONDS = 180  # nine missed beats: a busy machine delays a beat, it does not skip nine


def grace_seconds() -> int:
    """How long a trial's heartbeat may be silent before another worker takes the trial over
    (``VAEKIT_SWEEP_GRACE_SECONDS``, default 180)."""
    text = os.environ.get(GRACE_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_GRACE_SECONDS


def storage_options() -> dict:
    """Keyword arguments of ``optuna.storages.RDBStorage`` that turn the heartbeats on. Silent trials
    are failed and queued again by ``retry_lost_trials``, not by Optuna's callback."""
    grace = grace_seconds()
    return {"heartbeat_interval": min(HEARTBEAT_SECONDS, max(1, grace // 3)), "grace_period": grace}


def beats(storage) -> bool:
    """Whether the storage keeps heartbeats (what optuna's is_heartbeat_enabled checks, also through
    the cache optuna wraps storages in)."""
    return getattr(storage, "get_heartbeat_interval", lambda: None)() is not None


def queue_again(study: optuna.Study, trial: Trial | FrozenTrial, params: dict, run_id: str, **marks) -> None:
    """Queue a new trial with ``trial``'s values and run id (so that it resumes the run) and its grid
    point; ``marks`` are further user attributes. Used for SIGTERM (``vaekit.sweeps.trial``) and here."""
    attrs = {"run_id": run_id, "retry_of": trial.number, **marks}
    if "grid_point" in trial.user_attrs:
        attrs["grid_point"] = trial.user_attrs["grid_point"]
    study.enqueue_trial(params, user_attrs=attrs)


def requeue_lost_trial(study: optuna.Study, lost: FrozenTrial) -> None:
    """Queue a trial whose worker went silent again, as SIGTERM would have (called once per trial: only
    one process moves it to FAIL)."""
    run_id = lost.user_attrs.get("run_id")
    if run_id is not None:  # else lost before it chose its values: nothing to resume, nothing to retry
        queue_again(study, lost, lost.params, run_id, lost_worker=True)


def retry_lost_trials(study: optuna.Study) -> None:
    """Fail the study's trials whose heartbeat went silent and queue them again (nothing on storages
    without heartbeats). Each is moved RUNNING -> FAIL atomically (``vaekit.sweeps.claims``), so of
    workers that look at once only one queues it again; Optuna's ``fail_stale_trials`` reads, then
    writes, and on SQLite two could both queue it."""
    storage = study._storage
    if not beats(storage):
        return
    with quiet_experimental():
        stale = storage._get_stale_trial_ids(study._study_id)
    for trial_id in stale:
        if fail_running(storage, trial_id):
            requeue_lost_trial(study, storage.get_trial(trial_id))


@contextmanager
def quiet_experimental():
    """Optuna marks its heartbeats experimental and warns on every use; vaekit tests them
    (tests/test_sweep_heartbeat.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class Heartbeat:
    """Beats for one trial from a background thread while the ``with`` block runs."""

    def __init__(self, study: optuna.Study, trial: Trial):
        self.storage, self.trial_id = study._storage, trial._trial_id
        self.enabled = beats(self.storage)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="vaekit-sweep-heartbeat", daemon=True)

    def _beat(self) -> None:
        interval = self.storage.get_heartbeat_interval()
        while not self._stop.wait(interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - a database hiccup must not kill training; the next beat retries
                pass

    def __enter__(self) -> Heartbeat:
        if self.enabled:
            self.storage.record_heartbeat(self.trial_id)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
