"""`vaekit sweep run` as real processes: two on one study (SQLite, journal file, PostgreSQL), --workers 2,
and SIGTERM in the middle of a trial followed by the same command."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from tests.test_sweep import sweep_command, write

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
GRID = "model.latent_dim: [2, 3, 4]\n"


def start(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vaekit", *args], env=env or ENV, cwd=ROOT,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def assert_grid_done_once(storage: str, study: str, size: int) -> list[optuna.trial.FrozenTrial]:
    trials = optuna.load_study(study_name=study, storage=optuna_storage(storage)).get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == size, [(t.number, t.state.name, t.params, t.user_attrs) for t in trials]
    assert len({json.dumps(t.params, sort_keys=True) for t in complete}) == size  # no parameter set twice
    return trials


def optuna_storage(url: str):
    from vaekit.sweeps.storage import open_storage

    return open_storage(url, create=False)


def run_two_processes(tmp_path: Path, corpus: Path, storage: str) -> None:
    space = write(tmp_path / "space.yaml", GRID)
    runs = tmp_path / "runs"
    args = sweep_command(space, corpus, runs, "--study", "two", "--storage", storage)
    processes = [start(args, tmp_path / f"worker{i}.log") for i in range(2)]
    for i, process in enumerate(processes):
        assert process.wait(timeout=600) == 0, (tmp_path / f"worker{i}.log").read_text()
    trials = assert_grid_done_once(storage, "two", 3)
    assert len(trials) == 3
    assert sorted(p.name for p in runs.glob("two-t*")) == ["two-t000", "two-t001", "two-t002"]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("journal", marks=pytest.mark.slow)])
def test_two_processes_share_a_grid(kind, tmp_path, arc_corpus):
    storage = f"sqlite:///{tmp_path / 'runs' / 's.db'}" if kind == "sqlite" else f"journal:{tmp_path / 's.journal'}"
    run_two_processes(tmp_path, arc_corpus, storage)


@pytest.mark.slow
def test_workers_option_runs_trials_in_processes(tmp_path, arc_corpus):
    space = write(tmp_path / "space.yaml", GRID)
    runs = tmp_path / "runs"
    process = start(sweep_command(space, arc_corpus, runs, "--workers", "2"), tmp_path / "log")
    assert process.wait(timeout=600) == 0, (tmp_path / "log").read_text()
    assert_grid_done_once(f"sqlite:///{runs / 'sweeps.db'}", "space", 3)


def test_sigterm_mid_trial_then_same_command_completes_the_grid(tmp_path, arc_corpus):
    space = write(tmp_path / "space.yaml", "model.latent_dim: [2, 3]\n")
    runs = tmp_path / "runs"
    args = sweep_command(space, arc_corpus, runs, "--set", "train.epochs=3")
    first = start(args, tmp_path / "first.log")
    metrics = runs / "space-t000" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=300) == 143, (tmp_path / "first.log").read_text()
    second = start(args, tmp_path / "second.log")
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    trials = assert_grid_done_once(f"sqlite:///{runs / 'sweeps.db'}", "space", 2)
    interrupted = [t for t in trials if t.state.name == "FAIL"]
    assert len(interrupted) == 1 and interrupted[0].user_attrs["interrupted"]
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == interrupted[0].number)
    assert retry.state.name == "COMPLETE" and retry.user_attrs["run_id"] == interrupted[0].user_attrs["run_id"]
    provenance = json.loads((runs / retry.user_attrs["run_id"] / "provenance.json").read_text())
    assert len(provenance["sessions"]) == 2 and provenance["sessions"][1]["resumed_after_epoch"] >= 1
    assert provenance["sweep"]["retry_of"] == interrupted[0].number


# ---------------------------------------------------------------------------- PostgreSQL


def _postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    return Path(found[-1]).parent if found[-1] else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a free localhost port (initdb + pg_ctl in a temporary folder;
    as the 'postgres' user when the tests run as root, since initdb refuses root)."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install 'vaekit[postgresql]')")
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; e.g. apt-get install postgresql")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="vaekit-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user for initdb")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "vaekit", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
                    "-o", f"-p {port} -k {folder} -h 127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://vaekit@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_processes_share_a_grid_on_postgresql(postgres_url, tmp_path, arc_corpus):
    run_two_processes(tmp_path, arc_corpus, postgres_url)


def _open_new_storage(url: str) -> str:
    from vaekit.sweeps.storage import open_storage

    open_storage(url, create=True)
    return "ok"


def test_workers_opening_a_new_sqlite_file_together_all_succeed(tmp_path):
    """Several workers started at once on a new SQLite file: one makes the tables, none fails (the race
    that made `sweep run` exit 2 with 'table studies already exists')."""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'new.db'}"
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        assert pool.map(_open_new_storage, [url] * 6) == ["ok"] * 6
