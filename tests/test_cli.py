"""End-to-end CLI runs in a temp dir with a tiny model on a small real ARC corpus."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from conftest import TINY_MODEL_FLAGS
from vaekit.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def train(corpus, runs, run_id, *extra):
    return invoke("train", "arc", "--data", corpus, "--runs-dir", runs, "--run-id", run_id,
                  "--no-progress", *TINY_MODEL_FLAGS, *extra)


EXPECTED_FILES = {
    "config.yaml", "metrics.jsonl", "metrics.csv", "train.log", "provenance.json", "checkpoints/vae_best.pth", "checkpoints/encoder.pth",
    "checkpoints/decoder.pth", "checkpoints/last.pt", "results/metrics.json", "results/training_curves.png",
}


def files_under(path):
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def test_collect_train_eval_sample_report(tmp_path):
    corpus = tmp_path / "arc.npz"
    result = invoke("collect", "arc", "--count", 300, "--out", corpus)
    assert result.exit_code == 0, result.output
    assert corpus.is_file()

    runs = tmp_path / "runs"
    result = train(corpus, runs, "r1", "--epochs", 2)
    assert result.exit_code == 0, result.output
    run = runs / "r1"
    assert files_under(run) == EXPECTED_FILES
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["train_loss"] < records[0]["train_loss"]
    for key in ("val_loss", "val_recon", "val_kl", "kl_per_dim", "val_kl_min", "beta", "lr",
                "val_pixel_accuracy", "active_dims", "seconds"):
        assert key in records[0], key
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2 and saved["beta"]["max_beta"] == 2.0

    result = invoke("eval", "r1", "--runs-dir", runs, "--split", "val")
    assert result.exit_code == 0, result.output
    assert "Pixel-wise Accuracy" in result.stdout and "Active Dimensions" in result.stdout
    metrics = json.loads((run / "results" / "metrics.json").read_text())
    assert set(metrics) == {"test", "val"} and 0 <= metrics["val"]["pixel_accuracy"] <= 1

    result = invoke("sample", run, "-n", 8)  # a run given as a path
    assert result.exit_code == 0, result.output
    for name in ("samples.png", "reconstructions.png"):
        assert (run / "results" / name).read_bytes()[:4] == b"\x89PNG"

    assert train(corpus, runs, "r2", "--epochs", 1, "--latent", 4).exit_code == 0
    result = invoke("report", "r1", "r2", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert "r1" in result.stdout and "r2" in result.stdout and "Pixel-wise Accuracy" in result.stdout


def test_resume_continues_exactly_where_it_stopped(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    cosine = ["--set", "train.cosine_t_max=3"]  # unset, the cosine of a 2-epoch run would span 2 epochs
    assert train(arc_corpus, runs, "straight", "--epochs", 3, *cosine).exit_code == 0
    assert train(arc_corpus, runs, "split", "--epochs", 2, *cosine).exit_code == 0
    result = train(arc_corpus, runs, "split", "--epochs", 3, "--resume")
    assert result.exit_code == 0, result.output
    assert "Resuming split after epoch 2" in result.stdout
    straight = [json.loads(x) for x in (runs / "straight" / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (runs / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for a, b in zip(straight, resumed):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--set", "train.epoch=3"], "unknown config key 'train.epoch' (did you mean 'train.epochs'?)"),
    (["--beta-schedule", "cyclic"], "Did you mean 'cyclical'?"),
    (["--model", "conv2"], "Did you mean 'conv2d'?"),
])
def test_bad_settings_exit_2_with_one_line(tmp_path, arc_corpus, args, message):
    result = train(arc_corpus, tmp_path / "runs", "bad", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "bad").exists()


def test_resume_refuses_another_domain_or_a_config_file(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "r", "--epochs", 1).exit_code == 0
    result = invoke("train", "ternary", "--runs-dir", runs, "--run-id", "r", "--resume")
    assert result.exit_code == 2 and "trained domain 'arc'" in result.stderr
    result = train(arc_corpus, runs, "r", "--resume", "--config", "x.yaml")
    assert result.exit_code == 2 and "--config cannot be combined with --resume" in result.stderr


def test_missing_corpus_points_to_collect(tmp_path):
    result = train(tmp_path / "none.npz", tmp_path / "runs", "x")
    assert result.exit_code == 2 and "vaekit collect arc" in result.stderr


def test_existing_run_is_refused_and_left_intact(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "keep", "--epochs", 1).exit_code == 0
    before = (runs / "keep" / "metrics.jsonl").read_text()
    result = train(arc_corpus, runs, "keep", "--epochs", 1)
    assert result.exit_code == 2 and "--resume" in result.stderr and "--overwrite" in result.stderr
    assert (runs / "keep" / "metrics.jsonl").read_text() == before


def test_unknown_domain_and_run(tmp_path):
    result = invoke("train", "ark", "--runs-dir", tmp_path)
    assert result.exit_code == 2 and "Did you mean 'arc'?" in result.stderr
    result = invoke("report", "run_999", "--runs-dir", tmp_path)
    assert result.exit_code == 2 and "no run 'run_999'" in result.stderr


def test_auto_run_ids_count_up(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    for _ in range(2):
        result = invoke("train", "arc", "--data", arc_corpus, "--runs-dir", runs, "--epochs", 1,
                        "--no-progress", *TINY_MODEL_FLAGS)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in runs.iterdir()) == ["run_001", "run_002"]


def test_runs_lists_every_run_even_beside_a_broken_one(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "good", "--epochs", 1).exit_code == 0
    (runs / "broken").mkdir()
    (runs / "broken" / "config.yaml").write_text("domain: arc\nmodle: {name: conv2d}\n")
    result = invoke("runs", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert "good" in result.output and "broken" in result.output and "unreadable" in result.output


def test_help_texts_have_examples():
    for command in (["train"], ["eval"], ["sample"], ["report"], ["collect", "arc"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Example" in result.stdout, command


def test_epoch_checkpoints_are_kept_every_n_and_pruned_to_the_newest_k(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    result = train(arc_corpus, runs, "r", "--epochs", 6, "--set", "train.checkpoint_every=2",
                   "--set", "train.keep_checkpoints=2", "--set", "train.early_stopping_patience=0")
    assert result.exit_code == 0, result.output
    checkpoints = runs / "r" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("epoch_*")) == ["epoch_004.pt", "epoch_006.pt"]
    import torch
    assert all(isinstance(v, torch.Tensor) for v in torch.load(checkpoints / "epoch_004.pt", weights_only=True).values())
    result = invoke("eval", "r", "--runs-dir", runs, "--checkpoint", "epoch_004", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads((runs / "r" / "results" / "metrics_epoch_004.json").read_text())["test"]["epoch"] == 4
    best = json.loads((runs / "r" / "results" / "metrics.json").read_text())["test"]
    assert best["checkpoint"] == "vae_best.pth"  # the best checkpoint's results are left alone
    last = invoke("eval", "r", "--runs-dir", runs, "--checkpoint", "last", "--json")
    assert last.exit_code == 0 and json.loads(last.stdout)["metrics"] != json.loads(result.stdout)["metrics"]
    result = invoke("sample", "r", "--runs-dir", runs, "--checkpoint", "epoch_2", "-n", 4)
    assert result.exit_code == 2
    assert "has no checkpoint 'epoch_2'" in result.stderr and "available: best, last, epoch_004, epoch_006" in result.stderr
