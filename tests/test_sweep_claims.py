"""Many worker processes taking waiting trials from one study at the same moment: each trial is taken by
exactly one (``vaekit.sweeps.claims``), on SQLite, a journal file and PostgreSQL. Before the claim was
one atomic statement, SQLite handed a trial to two workers in most rounds of this test."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from tests.claim_workers import claim_every_round, fail_stale_together, run_together
from tests.test_sweep_processes import postgres_url  # noqa: F401 - the throwaway server fixture
from vaekit.sweeps.heartbeat import GRACE_ENV
from vaekit.sweeps.storage import open_storage
from vaekit.sweeps.study import take_waiting


def _queue_rounds(url: str, rounds: int, trials: int) -> list[str]:
    """``rounds`` studies of ``trials`` WAITING trials each."""
    storage = open_storage(url, create=True)
    names = []
    for r in range(rounds):
        study = optuna.create_study(study_name=f"round{r}", storage=storage)
        for _ in range(trials):
            storage.create_new_trial(study._study_id, template_trial=create_trial(state=TrialState.WAITING))
        names.append(study.study_name)
    return names


def assert_each_trial_taken_once(url: str, rounds: int, trials: int) -> None:
    """Run the rounds with WORKERS processes; every trial taken by exactly one of them, none left."""
    names = _queue_rounds(url, rounds, trials)
    taken: dict[str, Counter] = {name: Counter() for name in names}
    for name, numbers in run_together(claim_every_round, url, names):
        taken[name].update(numbers)
    twice = {name: sorted(n for n, k in counts.items() if k > 1) for name, counts in taken.items()}
    twice = {name: numbers for name, numbers in twice.items() if numbers}
    assert not twice, (f"{len(twice)} of {rounds} rounds had trials taken twice "
                       f"({sum(map(len, twice.values()))} of {rounds * trials} trials): {twice}")
    assert all(sorted(counts) == list(range(trials)) for counts in taken.values()), "trials left waiting"
    storage = open_storage(url, create=False)
    for name in names:
        states = Counter(t.state for t in optuna.load_study(study_name=name, storage=storage).get_trials())
        assert states == {TrialState.RUNNING: trials}


@pytest.fixture
def sqlite_url(tmp_path):
    """A SQLite file in memory-backed /dev/shm where there is one (each commit's fsync on a disk makes
    the rounds several times slower; the locking is the same), else in tmp_path."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="vaekit-claims-", dir=shm)) if shm.is_dir() else tmp_path
    yield f"sqlite:///{folder / 's.db'}"
    if folder != tmp_path:
        shutil.rmtree(folder, ignore_errors=True)


def test_six_processes_take_each_waiting_trial_once_on_sqlite(sqlite_url):
    assert_each_trial_taken_once(sqlite_url, rounds=20, trials=30)


@pytest.mark.slow
def test_six_processes_take_each_of_hundreds_of_waiting_trials_once_on_sqlite(sqlite_url):
    assert_each_trial_taken_once(sqlite_url, rounds=20, trials=150)


def test_six_processes_take_each_waiting_trial_once_on_a_journal_file(tmp_path):
    assert_each_trial_taken_once(f"journal:{tmp_path / 's.journal'}", rounds=3, trials=30)


def test_six_processes_take_each_waiting_trial_once_on_postgresql(postgres_url):  # noqa: F811
    assert_each_trial_taken_once(postgres_url, rounds=20, trials=30)


def test_a_silent_trial_is_queued_again_once_when_workers_look_together(sqlite_url, monkeypatch):
    """Six processes finding the same silent trials at once: each is failed and queued again once."""
    monkeypatch.setenv(GRACE_ENV, "1")
    storage = open_storage(sqlite_url, create=True)
    study = optuna.create_study(study_name="s", storage=storage)
    for number in range(50):
        study.enqueue_trial({"x": number})
        trial = take_waiting(study)
        trial.suggest_int("x", 0, 100)
        trial.set_user_attr("run_id", f"s-t{number:03d}")
        storage.record_heartbeat(trial._trial_id)
    time.sleep(1.5)  # every heartbeat is now older than the grace of 1 s
    run_together(fail_stale_together, sqlite_url, ["s"])
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    retries = Counter(t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs)
    assert retries == Counter(range(50)), "a silent trial queued again twice, or not at all"
