"""A damaged sweep storage is refused with exit 2 and one line, and never written to; a storage error in
the middle of a command is one line with exit 2 or 74, never an internal error."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from typer.testing import CliRunner

from tests.test_sweep import sweep_command, write
from vaekit.cli import app
from vaekit.errors import DiskError, VaekitUsageError
from vaekit.sweeps.storage import storage_errors

runner = CliRunner()
PAGE = 4096  # SQLite's default page size, which Optuna keeps


def damage_middle_pages(file: Path, pages: int = 2) -> None:
    """Overwrite ``pages`` pages in the middle of a SQLite file with seeded garbage; the header (page 1)
    stays intact, so SQLite still opens the file."""
    middle = (file.stat().st_size // PAGE // 2) * PAGE
    assert middle >= PAGE, "the file has a single page"
    with file.open("r+b") as handle:
        handle.seek(middle)
        handle.write(random.Random(0).randbytes(pages * PAGE))


def sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


@pytest.fixture
def damaged_sweep(tmp_path, arc_corpus):
    """A real two-trial sweep whose sweeps.db then has garbage in two middle pages; its command."""
    space = write(tmp_path / "space.yaml", "model.latent_dim: [2, 3]\n")
    runs = tmp_path / "runs"
    command = sweep_command(space, arc_corpus, runs)
    assert runner.invoke(app, command).exit_code == 0
    damage_middle_pages(runs / "sweeps.db")
    return runs, command


def test_a_damaged_database_is_refused_by_every_command_and_left_byte_for_byte(damaged_sweep):
    runs, command = damaged_sweep
    file = runs / "sweeps.db"
    before, run_dirs = sha256(file), sorted(p.name for p in runs.iterdir())
    commands = {"list": ["sweep", "list", "--runs-dir", str(runs)],
                "report": ["sweep", "report", "space", "--runs-dir", str(runs)],
                "run": command, "run --study NEW": [*command, "--study", "NEW"]}
    for name, args in commands.items():
        result = runner.invoke(app, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2, (name, result.output)
        assert len(lines) == 1 and f"{file.resolve()} is damaged" in lines[0], (name, result.output)
        assert "restore it from a copy, or start a new file with --storage" in lines[0], (name, result.output)
        assert sha256(file) == before, f"`sweep {name}` wrote into the damaged file"
    assert sorted(p.name for p in runs.iterdir()) == run_dirs  # no run directory, no plots


def test_a_file_that_is_not_a_database_is_refused_and_unchanged(tmp_path):
    file = write(tmp_path / "sweeps.db", "not a database, but a note\n" * 200)
    before = sha256(file)
    result = runner.invoke(app, ["sweep", "list", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "is damaged (file is not a database)" in result.output, result.output
    assert sha256(file) == before


STORAGE_FAILURES = {
    "damaged mid-command": (optuna.exceptions.StorageInternalError("An exception is raised during the commit."),
                            sqlite3.DatabaseError("database disk image is malformed"), VaekitUsageError),
    "server gone": (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
                    None, VaekitUsageError),
    "disk full": (sqlalchemy.exc.OperationalError("UPDATE trials", {}, sqlite3.OperationalError(
        "database or disk is full")), None, DiskError),
}


@pytest.mark.parametrize("case", STORAGE_FAILURES, ids=list(STORAGE_FAILURES))
def test_a_storage_error_mid_command_is_one_line_with_its_exit_code(case):
    error, cause, expected = STORAGE_FAILURES[case]
    with pytest.raises(expected) as caught:
        with storage_errors("sqlite:///runs/sweeps.db"):
            raise error from cause
    message = str(caught.value)
    assert message.startswith("sweep storage sqlite:///runs/sweeps.db: ") and "\n" not in message
    assert ("malformed" in message) == (case == "damaged mid-command")


def test_sweep_report_gives_every_failed_trial_a_reason(tmp_path):
    from vaekit.sweeps.report import sweep_report
    from vaekit.sweeps.study import take_waiting

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    for number, attrs in enumerate([{"error": "loss is NaN at epoch 1"}, {}, {}]):
        study.enqueue_trial({"x": number})
        trial = take_waiting(study)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"x": 1}, user_attrs={"retry_of": 1, "lost_worker": True, "run_id": "s-t001"})
    rows = {r["number"]: r for r in sweep_report("s", tmp_path, url, plots=False)["trials"]}
    assert rows[0]["error"] == "loss is NaN at epoch 1"
    assert rows[1]["error"].startswith("its worker went silent (no heartbeat for ")
    assert rows[1]["error"].endswith("queued again as trial 3")
    assert rows[2]["error"] == "failed without a recorded reason (its worker stopped, or another tool failed it)"
    assert rows[3]["error"] is None


def test_a_space_file_with_a_key_written_twice_is_refused_with_both_lines(tmp_path, arc_corpus):
    space = write(tmp_path / "space.yaml", "model.latent_dim: [2, 3]\ntrain.lr: [0.001]\nmodel.latent_dim: [4]\n")
    result = runner.invoke(app, sweep_command(space, arc_corpus, tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"Error: {space}: 'model.latent_dim' is written twice (lines 1 and 3); keep one"
    assert not (tmp_path / "runs").exists()


def test_an_unknown_study_lists_the_valid_studies(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="arc_fallback", storage=url)
    result = runner.invoke(app, ["sweep", "report", "arc_fallbak", "--storage", url])
    assert result.exit_code == 2 and "Valid studies: arc_fallback." in result.output, result.output
