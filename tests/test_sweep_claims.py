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

from tests.claim_workers import claim_every_round, fail_stale_together, requeue_together, run_together
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
    assert_each_trial_taken_once(sqlite_url, rounds=20, trials=100)


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


def _study_with_lost_grid_points(url: str) -> optuna.Study:
    """Grid points 0-4: 0 done, 1 failed of its own (NaN), 2 lost to a double claim (the second worker
    found the run directory taken), 3 lost with its worker before it chose its values (failed by its
    heartbeat, no error), 4 interrupted and queued again."""
    grid = [{"model.latent_dim": d} for d in (2, 3, 4, 5, 6)]
    study = optuna.create_study(study_name="s", storage=open_storage(url, create=True))
    study.set_user_attr("grid", grid)
    for point, params in enumerate(grid):
        study.enqueue_trial(params, user_attrs={"grid_point": point})
    outcomes = [{}, {"error": "loss is NaN at epoch 1"},
                {"run_id": "s-t002", "error": "run 's-t002' already exists in runs; pass --resume to continue it"},
                None, {"run_id": "s-t004", "error": "interrupted (stopped by SIGTERM)", "interrupted": True}]
    for outcome in outcomes:
        trial = take_waiting(study)
        for key, value in (outcome or {}).items():
            trial.set_user_attr(key, value)
        study.tell(trial, 1.0 if outcome == {} else None, state=None if outcome == {} else TrialState.FAIL)
    study.enqueue_trial(grid[4], user_attrs={"grid_point": 4, "run_id": "s-t004", "retry_of": 4})
    return study


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_grid_point_lost_not_of_its_own_is_queued_again_once(kind, sqlite_url, tmp_path):
    """Six processes joining the study at once: grid points 2 and 3 are queued again by exactly one."""
    url = sqlite_url if kind == "sqlite" else f"journal:{tmp_path / 's.journal'}"
    study = _study_with_lost_grid_points(url)
    queued = [point for points in run_together(requeue_together, url, ["s"]) for point in points]
    assert sorted(queued) == [2, 3]
    retries = {t.user_attrs["grid_point"]: t for t in study.get_trials() if t.number > 5}
    assert sorted(retries) == [2, 3] and all(t.state == TrialState.WAITING for t in retries.values())
    assert retries[2].user_attrs == {"grid_point": 2, "run_id": "s-t002", "retry_of": 2}
    assert retries[3].user_attrs == {"grid_point": 3, "run_id": "s-t003", "retry_of": 3}
    assert retries[3].system_attrs["fixed_params"] == {"model.latent_dim": 5}


def test_a_worker_whose_trial_was_taken_over_meanwhile_goes_on(tmp_path, arc_corpus, monkeypatch):
    """A worker whose heartbeat was late: another failed its trial and queued it again. Telling the
    outcome then fails in Optuna; the worker says so and takes the next trial instead of exiting 1."""
    from rich.console import Console

    from tests.test_sweep import write
    from vaekit.sweeps import make_plan, workers
    from vaekit.sweeps.claims import fail_running

    plan = make_plan("arc", write(tmp_path / "space.yaml", "model.latent_dim: [2, 3]\n"), tmp_path / "runs",
                     data=arc_corpus)

    from vaekit.sweeps import trial as trial_module

    def trained_while_taken_over(*args, extra_callbacks, **kwargs):
        sweep_trial = extra_callbacks[0]  # what retry_lost_trials does in another worker meanwhile:
        fail_running(sweep_trial.trial.study._storage, sweep_trial.trial._trial_id)

    monkeypatch.setattr(trial_module, "train_run", trained_while_taken_over)
    monkeypatch.setattr(trial_module, "objective_value", lambda run, metric: 0.5)
    console = Console(record=True, width=200)
    assert workers.run_worker(plan, console) == 0
    assert console.export_text().count("another worker failed it meanwhile") == 2
