"""The run directory's I/O under faults: damaged checkpoints, torn logs, full disks, stale temp files."""

from __future__ import annotations

import errno
import os
import warnings

import pytest
import torch

from vaekit.errors import DiskError, VaekitUsageError, VaekitWarning
from vaekit.files import atomic_write_bytes, remove_stale_temp_files
from vaekit.checkpoint_files import weights_mismatch
from vaekit.runs import RunDir


@pytest.fixture
def run(tmp_path) -> RunDir:
    run = RunDir(tmp_path / "r")
    run.checkpoints.mkdir(parents=True)
    return run


def test_a_checkpoint_round_trips_and_each_kind_of_damage_is_named(run):
    weights = {"w": torch.arange(1000.0)}
    path = run.save_checkpoint(weights, "vae_best.pth")
    assert torch.equal(run.load_checkpoint("vae_best.pth")["w"], weights["w"])
    raw = path.read_bytes()
    middle = len(raw) // 2
    cases = {
        b"": "the file is empty",
        raw[:middle]: "truncated",
        raw[:middle] + bytes(b ^ 1 for b in raw[middle:middle + 8]) + raw[middle + 8:]: "fails its CRC check",
        b"not a checkpoint at all": "not written by torch.save",
    }
    for content, reason in cases.items():
        path.write_bytes(content)
        with pytest.raises(VaekitUsageError, match=rf"{path}: not a readable checkpoint \(.*{reason}"):
            run.load_checkpoint("vae_best.pth")


def test_a_last_checkpoint_without_its_parts_is_refused(run):
    run.save_checkpoint({"model": {}}, "last.pt")
    with pytest.raises(VaekitUsageError, match="last.pt: not a vaekit checkpoint .missing optimizer, scheduler"):
        run.load_checkpoint("last.pt")


def test_weights_that_do_not_fit_are_named_with_both_shapes(run):
    model = torch.nn.Linear(3, 2)
    assert weights_mismatch(model, model.state_dict()) is None
    other = torch.nn.Linear(4, 2).state_dict()
    assert weights_mismatch(model, other) == "weight has shape (2, 4) in the file, the model needs (2, 3)"
    assert weights_mismatch(model, {"weight": [1, 2]}) == "it holds a dict, not a state dict of tensors"
    run.save_checkpoint(other, "vae_best.pth")
    with pytest.raises(VaekitUsageError, match=r"vae_best.pth does not fit the model in .*config.yaml"):
        run.load_weights(model, "vae_best.pth")


def test_a_torn_last_metrics_line_is_skipped_with_a_warning_and_dropped_by_truncation(run):
    run.append_metrics({"epoch": 1, "val_loss": 2.0})
    with run.metrics_path.open("a") as handle:
        handle.write('{"epoch": 2, "val_')
    with pytest.warns(VaekitWarning, match="metrics.jsonl: ignoring its last line"):
        assert run.read_metrics() == [{"epoch": 1, "val_loss": 2.0}]
    with pytest.warns(VaekitWarning):
        run.truncate_metrics(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run.read_metrics() == [{"epoch": 1, "val_loss": 2.0}]


def test_a_bad_metrics_line_elsewhere_is_an_error(run):
    run.metrics_path.write_text('{"epoch": 1}\n[1, 2]\n{"epoch": 3}\n')
    with pytest.raises(VaekitUsageError, match=r"metrics.jsonl, line 2: expected a JSON object"):
        run.read_metrics()


def test_an_append_the_disk_refuses_is_undone(run, monkeypatch):
    run.append_metrics({"epoch": 1})
    before = run.metrics_path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):  # the first call lands half the line, the next finds the disk full
        monkeypatch.setattr(os, "write", failing)
        return real_write(fd, data[: len(data) // 2])

    def failing(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(DiskError, match=rf"cannot write {run.metrics_path}: No space left on device"):
        run.append_metrics({"epoch": 2, "val_loss": 1.0})
    assert run.metrics_path.read_bytes() == before


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write_bytes(path, lambda handle: handle.write(b"old"))

    def full(handle):
        handle.write(b"new, half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(DiskError, match=rf"cannot write {path}: No space left on device"):
        atomic_write_bytes(path, full)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["file.bin"]
    with pytest.raises(ZeroDivisionError):  # not a disk problem: passed through, still cleaned up
        atomic_write_bytes(path, lambda handle: 1 / 0)
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_stale_temp_files_are_removed_by_folder_or_by_name(tmp_path):
    for name in (".a.pt.x1.tmp", ".b.json.x2.tmp", "keep.tmp", "c.pt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in remove_stale_temp_files(tmp_path, "a.pt")] == [".a.pt.x1.tmp"]
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".b.json.x2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "keep.tmp"]
