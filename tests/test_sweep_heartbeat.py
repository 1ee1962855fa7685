"""A worker that dies without a word (SIGKILL) leaves its trial RUNNING; its silent heartbeat gets the
trial failed and queued again with its values and run id, while trials that still beat are left alone."""

from __future__ import annotations

import json
import signal
import time

import optuna

from tests.test_sweep import sweep_command, write
from tests.test_sweep_processes import ENV, assert_grid_done_once, start
from vaekit.sweeps.heartbeat import GRACE_ENV, Heartbeat, retry_lost_trials
from vaekit.sweeps.storage import open_storage
from vaekit.sweeps.study import counted_trials, take_waiting


def _running_trial(study: optuna.Study, run_id: str) -> optuna.Trial:
    trial = take_waiting(study)
    trial.suggest_categorical("model.latent_dim", [2, 3, 4])
    trial.set_user_attr("run_id", run_id)
    return trial


def test_a_silent_trial_is_queued_again_and_a_beating_one_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv(GRACE_ENV, "2")
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", create=True)
    study = optuna.create_study(study_name="s", storage=storage)
    for point, d in enumerate((3, 4)):
        study.enqueue_trial({"model.latent_dim": d}, user_attrs={"grid_point": point})
    lost = _running_trial(study, "s-t000")
    storage.record_heartbeat(lost._trial_id)  # one beat, then its worker is killed
    alive = _running_trial(study, "s-t001")
    storage.record_heartbeat(alive._trial_id)  # stale too, unless the Heartbeat below keeps beating
    with Heartbeat(study, alive):
        time.sleep(3.5)
        retry_lost_trials(study)
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {0: "FAIL", 1: "RUNNING", 2: "WAITING"}
    retry = study.get_trials()[2]
    assert retry.system_attrs["fixed_params"] == {"model.latent_dim": 3}
    assert retry.user_attrs == {"run_id": "s-t000", "retry_of": 0, "grid_point": 0, "lost_worker": True}
    assert counted_trials(study.get_trials()) == 2  # the lost trial's retry counts in its place
    retry_lost_trials(study)  # a second look queues nothing more
    assert len(study.get_trials()) == 3


def test_sigkill_mid_trial_then_same_command_resumes_and_completes_the_grid(tmp_path, arc_corpus):
    space = write(tmp_path / "space.yaml", "model.latent_dim: [2, 3]\n")
    runs = tmp_path / "runs"
    args = sweep_command(space, arc_corpus, runs, "--set", "train.epochs=3")
    env = {**ENV, GRACE_ENV: "3"}
    first = start(args, tmp_path / "first.log", env)
    metrics = runs / "space-t000" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=60) == -signal.SIGKILL
    # within a long grace period the dead worker's trial looks alive: this run trains the other point only
    early = start(args, tmp_path / "early.log", {**ENV, GRACE_ENV: "600"})
    assert early.wait(timeout=600) == 0, (tmp_path / "early.log").read_text()
    assert "1 trial(s) RUNNING in other workers" in (tmp_path / "early.log").read_text()
    second = start(args, tmp_path / "second.log", env)  # its trial's heartbeat is now older than 3 s
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    trials = assert_grid_done_once(f"sqlite:///{runs / 'sweeps.db'}", "space", 2)
    lost = [t for t in trials if t.state.name == "FAIL"]
    assert len(lost) == 1
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == lost[0].number)
    assert retry.user_attrs["lost_worker"] and retry.user_attrs["run_id"] == "space-t000"
    provenance = json.loads((runs / "space-t000" / "provenance.json").read_text())
    assert len(provenance["sessions"]) == 2 and provenance["sessions"][1]["resumed_after_epoch"] >= 1
