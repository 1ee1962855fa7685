"""The training engine: the non-finite guard, sinks (steps.jsonl too), signals and provenance, on tiny ARC runs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import vaekit.training.epoch as epoch_module
from conftest import TINY_MODEL_FLAGS, TINY_MODEL_OPTIONS
from vaekit.cli import app
from vaekit.config import Config, LossConfig
from vaekit.models import create_model
from vaekit.training.epoch import step_record
from vaekit.training.loop import make_optimizer
from vaekit.training.precision import resolve_precision
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
        loss, auxiliary, recon, kl = original(self, batch, beta)
        calls["n"] += 1
        if calls["n"] == bad_step:
            nan = torch.tensor(math.nan)
            return (loss * nan, auxiliary, (recon * nan if term == "recon" else recon),
                    (kl * nan if term == "kl" else kl))
        return loss, auxiliary, recon, kl

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


def test_train_log_holds_the_console_lines_and_the_stop_line(tmp_path, arc_corpus, monkeypatch):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "r", "--epochs", 2).exit_code == 0
    nan_at_step(monkeypatch, 2)
    result = train(arc_corpus, runs, "r", "--epochs", 3, "--resume")
    assert result.exit_code == 65
    log = (runs / "r" / "train.log").read_text()
    assert "epoch   1/2" in log and "epoch   2/2" in log and "Resuming r after epoch 2" in log
    assert "training went non-finite at epoch 3, step 10" in log
    assert "\x1b[" not in log  # plain text


def test_pictures_every_n_epochs_and_tensorboard_scalars_and_images(tmp_path, arc_corpus):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = tmp_path / "runs"
    result = train(arc_corpus, runs, "r", "--epochs", 4, "--tensorboard", "--set", "train.pictures_every=2")
    assert result.exit_code == 0, result.output
    run = runs / "r"
    assert sorted(p.name for p in (run / "results").glob("reconstructions_epoch_*")) == [
        "reconstructions_epoch_002.png", "reconstructions_epoch_004.png"]
    events = EventAccumulator(str(run / "logs"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    logged = records(run)
    val_loss = events.Scalars("val/val_loss")
    assert [e.step for e in val_loss] == [1, 2, 3, 4]
    assert [e.value for e in val_loss] == pytest.approx([r["val_loss"] for r in logged], rel=1e-6)
    assert [e.value for e in events.Scalars("schedule/beta")] == pytest.approx([r["beta"] for r in logged])
    assert events.Scalars("kl_per_dim/000")[-1].value == pytest.approx(logged[-1]["kl_per_dim"][0], rel=1e-6)
    assert "schedule/lr" in events.Tags()["scalars"]
    for name in ("pictures/reconstructions", "pictures/samples"):
        assert [e.step for e in events.Images(name)] == [2, 4]


def test_metrics_csv_has_one_row_per_epoch_matching_the_record_after_a_resume(tmp_path, arc_corpus):
    import csv

    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "r", "--epochs", 2).exit_code == 0
    assert train(arc_corpus, runs, "r", "--epochs", 3, "--resume").exit_code == 0
    rows = list(csv.DictReader((runs / "r" / "metrics.csv").open()))
    logged = records(runs / "r")
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert [float(row["val_loss"]) for row in rows] == pytest.approx([r["val_loss"] for r in logged])
    assert "kl_per_dim" not in rows[0] and "active_dims" in rows[0]


@pytest.fixture(scope="module")
def uninterrupted(arc_corpus, tmp_path_factory):
    """Three epochs in batches of 16 (15 steps an epoch), run straight through; its run directory."""
    runs = tmp_path_factory.mktemp("straight")
    assert train(arc_corpus, runs, "straight", "--epochs", 3, "--batch-size", 16).exit_code == 0
    return runs / "straight"


def without_wall_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("seconds", "compile_seconds")} for row in rows]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_epoch_saves_the_position_and_the_resumed_run_equals_the_uninterrupted_one(
        tmp_path, arc_corpus, uninterrupted, signum, code):
    runs = tmp_path / "runs"
    args = ["train", "arc", "--data", arc_corpus, "--runs-dir", runs, "--run-id", "r", "--no-progress",
            "--set", "threads=1", "--set", "train.early_stopping_patience=0", *TINY_MODEL_FLAGS,
            "--epochs", 3, "--batch-size", 16, "--set", "train.log_every_steps=1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "vaekit", *map(str, args)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    steps = runs / "r" / "steps.jsonl"  # a line per step: wait for epoch 2's third step
    deadline = time.monotonic() + 120
    while not (steps.is_file() and len(steps.read_text().splitlines()) >= 18):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert f"stopped by {signal.Signals(signum).name} in epoch 2, after step" in stderr
    assert "continue with --resume, which trains its next step" in stderr
    last = torch.load(runs / "r" / "checkpoints" / "last.pt", weights_only=True)
    assert last["state"]["epoch"] == 1
    assert last["position"]["epoch"] == 2 and 3 <= last["position"]["step"] < 15
    assert last["state"]["global_step"] == 15 + last["position"]["step"]
    result = train(arc_corpus, runs, "r", "--epochs", 3, "--batch-size", 16, "--resume",
                   "--set", "train.log_every_steps=1")
    assert result.exit_code == 0, result.output
    assert f"in epoch 2, after its step {last['position']['step']}" in result.output
    assert without_wall_times(records(runs / "r")) == without_wall_times(records(uninterrupted))
    assert [json.loads(line)["step"] for line in steps.read_text().splitlines()] == list(range(1, 46))
    resumed = torch.load(runs / "r" / "checkpoints" / "last.pt", weights_only=True)["model"]
    straight = torch.load(uninterrupted / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[name], straight[name]) for name in straight)


def test_provenance_records_each_session_and_report_shows_it(tmp_path, arc_corpus, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setattr(sys, "argv", ["/somewhere/vaekit/__main__.py", "train", "arc", "--epochs", "1"])
    assert train(arc_corpus, runs, "r", "--epochs", 1).exit_code == 0
    assert train(arc_corpus, runs, "r", "--epochs", 2, "--resume").exit_code == 0
    sessions = json.loads((runs / "r" / "provenance.json").read_text())["sessions"]
    assert [s["resumed_after_epoch"] for s in sessions] == [None, 1]
    first = sessions[0]
    expected_precision = resolve_precision("auto", torch.device("cpu"))  # the default train.precision
    assert first["torch"] == torch.__version__ and first["device"] == "cpu" and first["precision"] == expected_precision
    assert first["command"] == "vaekit train arc --epochs 1"
    result = runner.invoke(app, ["report", "r", "--runs-dir", str(runs), "--json"])
    summary = json.loads(result.stdout)["runs"][0]
    assert summary["versions"] == f"vaekit {first['vaekit']}, torch {torch.__version__}"
    assert summary["device"] == f"cpu ({expected_precision})" and summary["resumed"] == 1


@pytest.mark.parametrize("start, stops_after", [(1, 4), (6, 8)])
def test_early_stopping_counts_patience_from_its_start_epoch(start, stops_after):
    """Val loss falls to epoch 2, rises while β ramps (3-5), then improves at 6 and stalls: judged from
    epoch 6, the run stops 2 epochs (the patience) after the best since then, not at once."""
    from types import SimpleNamespace

    from vaekit.config import Config
    from vaekit.training.callbacks.early_stopping import EarlyStopping
    from vaekit.training.distributed import Workers
    from vaekit.training.loop import TrainState

    config = Config()
    config.train.early_stopping_patience, config.train.early_stopping_start = 2, start
    stops = []
    t = SimpleNamespace(state=TrainState(), config=config, workers=Workers(),
                        request_stop=lambda reason, message: stops.append(message))
    losses = [5.0, 1.0, 2.0, 3.0, 4.0, 3.5, 3.6, 3.7, 3.8, 3.9]
    for epoch, loss in enumerate(losses, start=1):
        EarlyStopping().on_epoch_end(t, {"epoch": epoch, "val_loss": loss})
        if stops:
            break
    assert epoch == stops_after and f"after epoch {stops_after}" in stops[0]


# ---------------------------------------------------------------- steps.jsonl (train.log_every_steps)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# 240 training grids in batches of 64: 4 steps an epoch, so 3 epochs are steps 1-12.
def test_every_nth_step_is_logged_with_its_epoch_beta_and_unclamped_kl(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    floor = 3.0  # far above every dimension's KL at this stage, so the loss sees only the floor
    result = train(arc_corpus, runs, "r", "--epochs", 3, "--set", "train.log_every_steps=3",
                   "--set", f"loss.free_bits={floor}")
    assert result.exit_code == 0, result.output
    steps = lines(runs / "r" / "steps.jsonl")
    epochs = {r["epoch"]: r for r in lines(runs / "r" / "metrics.jsonl")}
    assert [(s["step"], s["epoch"]) for s in steps] == [(3, 1), (6, 2), (9, 3), (12, 3)]
    for s in steps:
        dims = s["kl_per_dim"]
        assert len(dims) == 10
        assert s["kl_min"] <= s["kl_mean"] <= s["kl_max"]
        assert (s["kl_min"], s["kl_max"]) == pytest.approx((min(dims), max(dims)), abs=1e-6)
        assert s["kl"] == pytest.approx(sum(dims), abs=1e-5) and s["kl_mean"] == pytest.approx(s["kl"] / 10)
        assert s["kl_max"] < floor  # the unclamped KL, not the free-bits floor
        # ... while the loss that was optimised used the clamped KL: recon + β · d · floor
        assert s["loss"] - s["recon"] == pytest.approx(s["beta"] * 10 * floor, rel=1e-4)
        assert (s["beta"], s["lr"]) == (epochs[s["epoch"]]["beta"], epochs[s["epoch"]]["lr"])


def test_the_step_keeps_the_batch_mean_of_the_unclamped_kl_per_dimension():
    torch.manual_seed(0)
    model = create_model("conv2d", 4, TINY_MODEL_OPTIONS)
    batch = torch.randint(0, 10, (8, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.loss_terms(batch, sample=False).kl_per_dim.mean(0)  # KL needs μ, σ only: no noise
    floor = float(expected.max()) + 1.0
    step = TrainStep(model, make_optimizer(model, Config().train), "fp32", torch.device("cpu"),
                     LossConfig(free_bits=floor))
    loss, recon, kl = step(batch, 1.0)
    torch.testing.assert_close(step.kl_per_dim, expected)
    assert float(kl) == pytest.approx(float(expected.sum()), rel=1e-5)
    record = step_record(7, 2, 1.0, 1e-3, loss, recon, step.kl_per_dim)
    assert record["kl_per_dim"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert record["kl_max"] < floor and record["loss"] == pytest.approx(record["recon"] + 4 * floor, rel=1e-5)
    assert (record["step"], record["epoch"]) == (7, 2)


def test_zero_turns_step_logging_off(tmp_path, arc_corpus, monkeypatch):
    monkeypatch.setattr(epoch_module, "step_record", lambda *a, **k: pytest.fail("step_record called with logging off"))
    result = train(arc_corpus, tmp_path / "runs", "r", "--epochs", 1, "--set", "train.log_every_steps=0")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "runs" / "r" / "steps.jsonl").exists()


def test_a_negative_interval_is_refused(tmp_path, arc_corpus):
    result = train(arc_corpus, tmp_path / "runs", "r", "--epochs", 1, "--set", "train.log_every_steps=-5")
    assert result.exit_code == 2 and "train.log_every_steps" in result.stderr and "-5" in result.stderr
    assert not (tmp_path / "runs" / "r").exists()


def test_a_resumed_run_logs_each_step_once_in_the_file_and_in_tensorboard(tmp_path, arc_corpus, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = tmp_path / "runs"
    every = ["--set", "train.log_every_steps=1", "--tensorboard"]
    assert train(arc_corpus, runs, "straight", "--epochs", 3, *every).exit_code == 0

    nan_at_step(monkeypatch, 7)  # epoch 2's third step: steps 5 and 6 are logged first
    assert train(arc_corpus, runs, "r", "--epochs", 3, *every).exit_code == 65
    assert [s["step"] for s in lines(runs / "r" / "steps.jsonl")] == [1, 2, 3, 4, 5, 6]
    monkeypatch.undo()
    result = train(arc_corpus, runs, "r", "--epochs", 3, "--resume", *every)
    assert result.exit_code == 0, result.output

    resumed, straight = lines(runs / "r" / "steps.jsonl"), lines(runs / "straight" / "steps.jsonl")
    assert [s["step"] for s in resumed] == list(range(1, 13))
    assert [s["epoch"] for s in resumed] == [1] * 4 + [2] * 4 + [3] * 4
    for again, once in zip(resumed, straight):  # on CPU the resumed run repeats the uninterrupted one
        assert again["kl_per_dim"] == pytest.approx(once["kl_per_dim"], rel=1e-5, abs=1e-6)

    events = EventAccumulator(str(runs / "r" / "logs"), size_guidance={"scalars": 0})
    events.Reload()
    for name in ("min", "max", "mean"):
        logged = events.Scalars(f"train/kl_per_dim/{name}")
        assert [e.step for e in logged] == list(range(1, 13)), name
        assert [e.value for e in logged] == pytest.approx([s[f"kl_{name}"] for s in resumed], rel=1e-6)
    assert [e.value for e in events.Scalars("train/kl_per_dim/dim_009")] == pytest.approx(
        [s["kl_per_dim"][9] for s in resumed], rel=1e-5)
    assert [e.step for e in events.Scalars("val/val_loss")] == [1, 2, 3]  # the epoch scalars are kept


def test_subscribers_run_in_the_order_of_their_declared_stages():
    from vaekit.training.events import CALLBACKS, STAGES, Callback, register_callback

    import vaekit.training.callbacks  # noqa: F401

    names = [cls.__name__ for cls in CALLBACKS]
    assert names.index("BestCheckpoint") < names.index("MlflowSink")  # the sink reports the best epoch
    assert names.index("EarlyStopping") < names.index("LastCheckpoint")  # last.pt saves the decision
    assert names.index("EpochPictures") < names.index("TensorBoard")  # TensorBoard logs the epoch's pictures
    assert [STAGES.index(cls.stage) for cls in CALLBACKS] == sorted(STAGES.index(cls.stage) for cls in CALLBACKS)

    class Nowhere(Callback):
        stage = "somewhere"

    with pytest.raises(TypeError, match="stage 'somewhere' is not one of log, guard"):
        register_callback(Nowhere)


def test_the_collapse_warning_is_given_again_only_when_more_dimensions_collapse():
    from types import SimpleNamespace

    from vaekit.training.callbacks.console_line import ConsoleLine

    said: list[str] = []
    t = SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(epochs=4, collapse_threshold=0.05),
                                               objective=SimpleNamespace(name="elbo")),
                        domain=SimpleNamespace(curve_metrics=[]), val={"latent_dim": 3}, say=said.append)
    line = ConsoleLine()
    for epoch, kl in enumerate([[0.01, 1.0, 1.0], [0.01, 1.0, 1.0], [0.01, 0.02, 1.0], [0.01, 1.0, 1.0]], start=1):
        line.on_epoch_end(t, {"epoch": epoch, "beta": 1.0, "train_loss": 1.0, "val_loss": 1.0, "val_recon": 1.0,
                              "val_kl": sum(kl), "kl_per_dim": kl, "active_dims": 1, "seconds": 1.0})
    warnings = [text for text in said if "posterior collapse" in text]
    assert len(warnings) == 2 and "in 1/3 dims" in warnings[0] and "in 2/3 dims" in warnings[1]
