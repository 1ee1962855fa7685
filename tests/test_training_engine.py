"""The training engine: the non-finite guard, sinks, signals and provenance, on tiny ARC runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY_MODEL_FLAGS
from vaekit.cli import app
from vaekit.training.step import TrainStep

runner = CliRunner()


def train(corpus, runs, run_id, *extra):
    args = ["train", "arc", "--data", corpus, "--runs-dir", runs, "--run-id", run_id, "--no-progress",
            "--set", "threads=1", "--set", "train.early_stopping_patience=0", *TINY_MODEL_FLAGS, *extra]
    return runner.invoke(app, [str(a) for a in args])


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def nan_at_step(monkeypatch, bad_step: int, term: str = "kl"):
    """Make the training step's KL (or reconstruction) NaN at the ``bad_step``-th step of the process."""
    original, calls = TrainStep.eager_forward, {"n": 0}

    def forward(self, batch, beta):
        loss, recon, kl = original(self, batch, beta)
        calls["n"] += 1
        if calls["n"] == bad_step:
            nan = torch.tensor(math.nan)
            return loss * nan, (recon * nan if term == "recon" else recon), (kl * nan if term == "kl" else kl)
        return loss, recon, kl

    monkeypatch.setattr(TrainStep, "eager_forward", forward)


# 240 training grids in batches of 64: 4 steps an epoch, so step 6 is epoch 2's second batch.
def test_a_nan_stops_with_65_naming_epoch_step_and_term_and_resume_continues(tmp_path, arc_corpus, monkeypatch):
    runs = tmp_path / "runs"
    nan_at_step(monkeypatch, 6)
    result = train(arc_corpus, runs, "r", "--epochs", 3)
    assert result.exit_code == 65, result.output
    assert "epoch 2, step 6 (batch 2 of 4 in the epoch): the KL term is nan" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    run = runs / "r"
    assert [r["epoch"] for r in records(run)] == [1]
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["state"]["epoch"] == 1
    for name in ("vae_best.pth", "encoder.pth", "decoder.pth"):
        weights = torch.load(run / "checkpoints" / name, weights_only=True)
        assert all(torch.isfinite(v).all() for v in weights.values())
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    monkeypatch.undo()
    result = train(arc_corpus, runs, "r", "--epochs", 3, "--resume")
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in records(run)] == [1, 2, 3]


def test_a_nan_reconstruction_is_named(tmp_path, arc_corpus, monkeypatch):
    nan_at_step(monkeypatch, 2, term="recon")
    result = train(arc_corpus, tmp_path / "runs", "r", "--epochs", 1)
    assert result.exit_code == 65 and "epoch 1, step 2" in result.stderr
    assert "the reconstruction term is nan" in result.stderr


def test_policy_skip_skips_the_batch_and_counts_it(tmp_path, arc_corpus, monkeypatch):
    nan_at_step(monkeypatch, 6)
    result = train(arc_corpus, tmp_path / "runs", "r", "--epochs", 2, "--set", "train.nonfinite=skip")
    assert result.exit_code == 0, result.output
    logged = records(tmp_path / "runs" / "r")
    assert [r["train_skipped_steps"] for r in logged] == [0, 1]
    assert all(math.isfinite(r["train_loss"]) for r in logged)


def test_an_unknown_nonfinite_policy_is_refused(tmp_path, arc_corpus):
    result = train(arc_corpus, tmp_path / "runs", "r", "--epochs", 1, "--set", "train.nonfinite=ignore")
    assert result.exit_code == 2 and "train.nonfinite 'ignore': expected one of stop, skip" in result.stderr
