"""Bad input and faults through the CLI: one line on stderr naming the file, key or value, the
documented exit code, no traceback, and every file that existed before byte-for-byte unchanged."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import TINY_MODEL_FLAGS
from vaekit.cli import app
from vaekit.errors import EXIT_DISK, EXIT_USAGE

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def train(corpus, runs, run_id, *extra):
    return invoke("train", "arc", "--data", corpus, "--runs-dir", runs, "--run-id", run_id, "--no-progress",
                  "--set", "threads=1", *TINY_MODEL_FLAGS, *extra)


def digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file under the given folders (or of the given files)."""
    files = {}
    for root in roots:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def assert_one_line_error(result, code: int, *fragments: str) -> str:
    """The exit code, one non-empty line on stderr holding every fragment, and no traceback."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, arc_corpus) -> Path:
    """One finished one-epoch tiny ARC run, trained once for this module."""
    runs = tmp_path_factory.mktemp("trained") / "runs"
    result = train(arc_corpus, runs, "r", "--epochs", 1)
    assert result.exit_code == 0, result.output
    return runs / "r"


@pytest.fixture
def run(tmp_path, trained_run) -> Path:
    """A private copy of the trained run: tmp_path/runs/r."""
    shutil.copytree(trained_run, tmp_path / "runs" / "r")
    return tmp_path / "runs" / "r"


# ----------------------------------------------------------------------------- refused resume


@pytest.mark.parametrize("args, message", [
    (["--latent", 4], "model.latent_dim: the run has 10, the command asks for 4"),
    (["--model", "conv2d_wide"], "model.name: the run has 'conv2d', the command asks for 'conv2d_wide'"),
    (["--set", "model.options={hidden: 32}"], "model.options.hidden: the run has 16, the command asks for 32"),
])
def test_refused_resume_leaves_the_run_byte_for_byte(run, arc_corpus, args, message):
    before = digest(run)
    result = train(arc_corpus, run.parent, "r", "--resume", *args)
    assert_one_line_error(result, EXIT_USAGE, "cannot resume run 'r'", message)
    assert digest(run) == before
    assert invoke("eval", run).exit_code == 0  # the run still works


# ----------------------------------------------------------------------------- broken checkpoints


def damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "flipped":  # torch.load alone would load these bytes without noticing
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + bytes(b ^ 0xFF for b in raw[middle:middle + 64]) + raw[middle + 64:])
    elif how == "foreign":
        torch.save([1, 2, 3], path)


@pytest.mark.parametrize("command, checkpoint", [
    ("eval", "vae_best.pth"), ("sample", "vae_best.pth"), ("report", "vae_best.pth"), ("report", "last.pt"),
    ("resume", "last.pt"), ("encode", "vae_best.pth"), ("traverse", "vae_best.pth"),
    ("interpolate", "vae_best.pth"),
])
def test_a_truncated_checkpoint_is_named_by_every_command(run, arc_corpus, command, checkpoint):
    damage(run / "checkpoints" / checkpoint, "truncated")
    before = digest(run)
    if command == "resume":
        result = train(arc_corpus, run.parent, "r", "--resume", "--epochs", 2)
    else:
        result = invoke(command, run)
    assert_one_line_error(result, EXIT_USAGE, f"{run / 'checkpoints' / checkpoint}: not a readable checkpoint",
                          "truncated")
    assert digest(run) == before


@pytest.mark.parametrize("how, reason", [
    ("empty", "the file is empty"), ("flipped", "fails its CRC check"),
    ("foreign", "holds a list, expected a state dict of tensors"),
])
def test_damaged_checkpoints_say_what_is_wrong(run, how, reason):
    damage(run / "checkpoints" / "vae_best.pth", how)
    assert_one_line_error(invoke("eval", run), EXIT_USAGE, "vae_best.pth", reason)


def test_runs_lists_a_run_with_a_broken_checkpoint_as_unreadable_naming_the_file(run):
    damage(run / "checkpoints" / "last.pt", "empty")
    result = invoke("runs", "--runs-dir", run.parent)
    assert result.exit_code == 0, result.output
    flat = re.sub(r"[\s│┃]", "", result.stdout)  # the table folds long cells over several lines
    assert "unreadable" in flat and "checkpoints/last.pt" in flat and "thefileisempty" in flat


# ----------------------------------------------------------------------------- broken corpora


def corpus_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def write_npz(path: Path, arrays: dict) -> Path:
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return path


def broken_arc_corpus(arc_corpus: Path, tmp_path: Path, how: str) -> Path:
    path = tmp_path / f"{how}.npz"
    arrays = corpus_arrays(arc_corpus)
    if how == "truncated":
        path.write_bytes(arc_corpus.read_bytes()[:5000])
        return path
    if how == "float":
        arrays["train"] = arrays["train"].astype(np.float32)
    elif how == "shape":
        arrays["train"] = arrays["train"][:, :8, :8]
    elif how == "range":
        arrays["val"] = arrays["val"].copy()
        arrays["val"][3, 4, 5] = 12
    elif how == "empty":
        arrays["test"] = arrays["test"][:0]
    elif how == "splits_differ":
        arrays["val"] = np.zeros((5, 16, 8), np.uint8)
    return write_npz(path, arrays)


@pytest.mark.parametrize("how, message", [
    ("truncated", "not a readable vaekit corpus"),
    ("float", "split 'train' has dtype float32; expected 16×16 integer grids of colours 0–9"),
    ("shape", "split 'train' has items of shape (8, 8); expected 16×16"),
    ("range", "split 'val' has values from 0 to 12; expected 16×16 integer grids of colours 0–9"),
    ("empty", "split 'test' is empty"),
    ("splits_differ", "split 'val' has items of shape (16, 8)"),
])
def test_a_broken_corpus_is_refused_before_any_file_is_written(tmp_path, arc_corpus, how, message):
    corpus = broken_arc_corpus(arc_corpus, tmp_path, how)
    before = digest(corpus)
    result = train(corpus, tmp_path / "runs", "x")
    assert_one_line_error(result, EXIT_USAGE, str(corpus), message)
    assert not (tmp_path / "runs").exists()
    assert digest(corpus) == before


def tiny_splat_corpus(path: Path, poison: float | None = None) -> Path:
    """A hand-made gaussians corpus: 6/3/3 scenes of 16 splats; ``poison`` goes into train item 2."""
    rng = np.random.default_rng(0)
    arrays = {split: rng.normal(size=(n, 8, 16)).astype(np.float32) for split, n in
              (("train", 6), ("val", 3), ("test", 3))}
    if poison is not None:
        arrays["train"][2, 5, 7] = poison
    arrays.update(norm_mean=np.zeros(8, np.float32), norm_std=np.ones(8, np.float32),
                  metadata=np.array(json.dumps({"domain": "gaussians"})))
    return write_npz(path, arrays)


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_non_finite_values_are_refused_before_training(tmp_path, poison):
    corpus = tiny_splat_corpus(tmp_path / "splats.npz", poison)
    result = invoke("train", "gaussians", "--data", corpus, "--runs-dir", tmp_path / "runs", "--no-progress")
    assert_one_line_error(result, EXIT_USAGE, str(corpus),
                          "split 'train' has NaN or infinite values (in 1 of 6 items; the first is item 2)")
    assert not (tmp_path / "runs").exists()


def test_eval_and_sample_check_the_corpus_too(run, arc_corpus, tmp_path):
    corpus = broken_arc_corpus(arc_corpus, tmp_path, "range")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["path"] = str(corpus)
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = digest(run)
    for command in ("eval", "sample", "encode", "traverse", "interpolate"):
        assert_one_line_error(invoke(command, run), EXIT_USAGE, str(corpus), "split 'val' has values from 0 to 12")
    assert digest(run) == before


def test_json_output_is_one_document_or_nothing(run):
    """--json keeps stdout for one JSON document: warnings and errors go to stderr, with the same codes."""
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 2, "val_lo')
    result = invoke("report", run, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"][0]["run"] == "r"
    assert "warning:" in result.stderr and "cut short" in result.stderr
    damage(run / "checkpoints" / "vae_best.pth", "truncated")
    result = invoke("eval", run, "--json")
    assert_one_line_error(result, EXIT_USAGE, "vae_best.pth: not a readable checkpoint")
    assert result.stdout == ""
    damage(run / "checkpoints" / "last.pt", "empty")
    listed = json.loads(invoke("runs", "--runs-dir", run.parent, "--json").stdout)["runs"]
    assert listed[0]["run"] == "r" and "the file is empty" in listed[0]["error"]


# ----------------------------------------------------------------------------- torn metrics.jsonl


def test_report_skips_a_torn_last_line_with_a_warning_and_changes_nothing(run):
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 2, "val_lo')
    before = digest(run)
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "metrics.jsonl" in result.stderr and "cut short" in result.stderr
    assert "Traceback" not in result.output
    assert digest(run) == before


def test_resume_repairs_a_torn_last_line(run, arc_corpus):
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 2, "val_lo')
    result = train(arc_corpus, run.parent, "r", "--resume", "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert "cut short" in result.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]


def test_a_bad_line_before_the_last_is_an_error_naming_file_and_line(run, arc_corpus):
    lines = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val\n' + lines)
    before = digest(run)
    for result in (invoke("report", run), train(arc_corpus, run.parent, "r", "--resume", "--epochs", 2)):
        assert_one_line_error(result, EXIT_USAGE, f"{run / 'metrics.jsonl'}, line 1: not a JSON record")
    assert digest(run) == before


def test_a_bad_steps_line_before_the_last_refuses_a_resume_before_anything_is_written(run, arc_corpus):
    (run / "steps.jsonl").write_text('{"step": 1, "ep\n{"step": 2, "epoch": 1}\n')
    before = digest(run)
    result = train(arc_corpus, run.parent, "r", "--resume", "--epochs", 2)
    assert_one_line_error(result, EXIT_USAGE, f"{run / 'steps.jsonl'}, line 1: not a JSON record")
    assert digest(run) == before


# ----------------------------------------------------------------------------- disks


class FullDisk:
    """A file handle that takes ``room`` bytes, then fails the way a full disk does."""

    def __init__(self, handle, room: int = 1000):
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()


def test_a_full_disk_while_saving_names_the_file_and_keeps_the_old_checkpoints(run, arc_corpus, monkeypatch):
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, handle: real_save(obj, FullDisk(handle)))
    checkpoints = digest(run / "checkpoints")
    metrics = (run / "metrics.jsonl").read_bytes()
    result = train(arc_corpus, run.parent, "r", "--resume", "--epochs", 2)
    line = assert_one_line_error(result, EXIT_DISK, f"cannot write {run / 'checkpoints'}", "No space left on device")
    assert re.search(r"checkpoints/(vae_best\.pth|last\.pt|encoder\.pth)", line)
    assert digest(run / "checkpoints") == checkpoints
    assert (run / "metrics.jsonl").read_bytes().startswith(metrics)
    assert not list(run.rglob("*.tmp"))


@pytest.fixture
def read_only(monkeypatch):
    """Make folders read-only the way a read-only mount does (tests run as root, where chmod is
    not enough): creating a directory or a file under them fails with EROFS."""
    folders: list[Path] = []
    real_mkdir, real_open = os.mkdir, os.open

    def refused(path) -> bool:
        return any(Path(path).resolve().is_relative_to(f.resolve()) for f in folders)

    def mkdir(path, mode=0o777, **kwargs):
        if refused(path) and Path(path).parent.exists():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, mode, **kwargs)

    def open_(path, flags, mode=0o777, **kwargs):
        if refused(path) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    return folders.append


def test_a_read_only_runs_directory_is_one_line_naming_it(tmp_path, arc_corpus, read_only):
    runs = tmp_path / "runs"
    runs.mkdir()
    read_only(runs)
    result = train(arc_corpus, runs, "x", "--epochs", 1)
    assert_one_line_error(result, EXIT_DISK, f"cannot write {runs / 'x'}", "Read-only file system")
    assert list(runs.iterdir()) == []


def test_eval_of_a_run_on_a_read_only_disk_names_the_results_file(run, read_only):
    before = digest(run)
    read_only(run)
    result = invoke("eval", run)
    assert_one_line_error(result, EXIT_DISK, f"cannot write {run / 'results' / 'metrics.json'}",
                          "Read-only file system")
    assert digest(run) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_chmod_read_only_runs_directory(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    try:
        result = train(arc_corpus, runs, "x", "--epochs", 1)
    finally:
        runs.chmod(0o755)
    assert_one_line_error(result, EXIT_DISK, str(runs / "x"))


def test_stale_temp_files_go_when_a_resume_starts_and_stay_when_it_is_refused(run, arc_corpus):
    stale = [run / "checkpoints" / ".last.pt.k2j3h4.tmp", run / "results" / ".metrics.json.a8d7f6.tmp",
             run / ".config.yaml.9s8d7f.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    assert train(arc_corpus, run.parent, "r", "--resume", "--latent", 4).exit_code == EXIT_USAGE
    assert all(path.exists() for path in stale)
    result = train(arc_corpus, run.parent, "r", "--resume", "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert not list(run.rglob("*.tmp"))


# ----------------------------------------------------------------------------- values and late checks


@pytest.mark.parametrize("args, message", [
    (["--lr", "-0.1"], "train.lr must be positive, got -0.1"),
    (["--batch-size", 0], "train.batch_size must be at least 1, got 0"),
    (["--seed", -1], "seed must be an integer from 0 to 2**63 - 1, got -1"),
    (["--set", "train.grad_clip=-2"], "train.grad_clip must be non-negative (0 disables), got -2.0"),
    (["--set", "train.selection_metric=bogus"],
     "train.selection_metric 'bogus' is not a validation metric; choose from: loss, kl_min, active_dims, elbo, "
     "pixel_accuracy, nonbackground_accuracy, exact_grid_rate"),
    (["--set", "train.selection_metric=pixel_acuracy"], "(did you mean 'pixel_accuracy'?)"),
])
def test_bad_values_echo_the_value_before_any_file_exists(tmp_path, arc_corpus, args, message):
    result = train(arc_corpus, tmp_path / "runs", "x", *args)
    assert_one_line_error(result, EXIT_USAGE, message)
    assert not (tmp_path / "runs").exists()


def test_a_value_typer_cannot_parse_is_echoed(tmp_path, arc_corpus):
    result = train(arc_corpus, tmp_path / "runs", "x", "--epochs", "ten")
    assert result.exit_code == EXIT_USAGE
    assert "--epochs" in result.output and "'ten'" in result.output and "Traceback" not in result.output


def test_a_model_the_domain_cannot_use_is_refused_listing_the_models_that_fit(tmp_path):
    result = invoke("train", "ternary", "--model", "conv2d", "--runs-dir", tmp_path / "runs")
    assert_one_line_error(result, EXIT_USAGE, "model 'conv2d' cannot train on domain 'ternary'",
                          "Models for ternary: ternary_dual, ternary_mlp")
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- internal errors


def test_an_internal_error_is_one_line_and_the_traceback_is_opt_in(run, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("vaekit.trained_runs.evaluate_run", broken)
    result = invoke("eval", run)
    assert_one_line_error(result, 1, "internal error: ZeroDivisionError: division by zero", "VAEKIT_DEBUG=1")
    for result in (invoke("--debug", "eval", run), invoke("eval", run, env={"VAEKIT_DEBUG": "1"})):
        assert result.exit_code == 1
        assert "Traceback" in result.stderr and "internal error" in result.stderr
