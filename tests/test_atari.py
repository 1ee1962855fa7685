"""Atari domain with real ALE: short episodes, a tiny model."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import TINY_ATARI_COLLECT
from vaekit import load_corpus
from vaekit.cli import app
from vaekit.domains.atari import split_episodes
from vaekit.domains.atari_collect import resolve_game
from vaekit.errors import VaekitUsageError

runner = CliRunner()
COLLECT = TINY_ATARI_COLLECT  # the session fixture atari_corpus (conftest) is made with these
# the domain's default model (conv2d_frames_spatial), tiny: five stride-2 stages take 32×32 frames to a 1×1 map
TINY_FRAME_MODEL = "model.options={channels: [8, 8, 8, 8, 8], decoder_channels: [8, 8, 8, 8, 8]}"


def test_schema_and_metadata(atari_corpus):
    corpus = load_corpus(atari_corpus)
    total = sum(len(v) for v in corpus.splits.values())
    assert total == corpus.metadata["frames"] == 4 * 25  # every episode truncated at 25 steps
    for split in ("train", "val", "test"):
        frames = corpus.arrays[split]
        assert frames.dtype == np.uint8 and frames.shape[1:] == (32, 32, 3)
        for key in ("actions", "rewards", "terminated", "truncated", "episode", "step"):
            assert corpus.arrays[f"{split}_{key}"].shape == (len(frames),), key
    assert corpus.metadata["env_id"] == "ALE/Breakout-v5"
    settings = corpus.metadata["settings"]
    assert (settings["frame_size"], settings["frameskip"], settings["policy"], settings["seed"]) == (32, 4, "random", 3)
    assert corpus.metadata["ale_py_version"]
    steps = corpus.arrays["train_step"]
    assert steps.min() == 0 and steps.max() == 24
    assert corpus.arrays["train_truncated"].sum() == len(np.unique(corpus.arrays["train_episode"]))


def test_splits_are_episode_disjoint(atari_corpus):
    arrays = load_corpus(atari_corpus).arrays
    episodes = {s: set(arrays[f"{s}_episode"].tolist()) for s in ("train", "val", "test")}
    assert episodes["train"] and episodes["val"] and episodes["test"]
    assert not (episodes["train"] & episodes["val"]) and not (episodes["train"] & episodes["test"])
    assert not (episodes["val"] & episodes["test"])
    parts = split_episodes(100, seed=0)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [80, 10, 10]


def test_same_seed_same_frames(atari_corpus, tmp_path):
    again = tmp_path / "again.npz"
    assert runner.invoke(app, [*COLLECT, "--out", str(again)]).exit_code == 0
    a, b = load_corpus(atari_corpus).arrays, load_corpus(again).arrays
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name, rom", [("Breakout", "breakout"), ("ALE/Breakout-v5", "breakout"),
                                       ("SpaceInvaders", "space_invaders"), ("space_invaders", "space_invaders"),
                                       ("Pong", "pong")])
def test_game_names(name, rom):
    assert resolve_game(name) == rom


def test_unknown_game_exits_2_naming_the_nearest(tmp_path):
    result = runner.invoke(app, ["collect", "atari", "--env", "Breakot", "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "Nearest: Breakout" in result.stderr
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(VaekitUsageError):
        resolve_game("NotAGame")


def test_train_eval_sample_report(atari_corpus, tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "atari", "--data", str(atari_corpus), "--runs-dir", str(runs),
                                 "--run-id", "a", "--epochs", "2", "--latent", "4", "--batch-size", "16",
                                 "--no-progress", "--set", TINY_FRAME_MODEL, "--set", "train.pictures_every=2"])
    assert result.exit_code == 0, result.output
    assert (runs / "a" / "results" / "reconstructions_epoch_002.png").read_bytes()[:4] == b"\x89PNG"
    config = (runs / "a" / "config.yaml").read_text()
    assert "in_channels: 3" in config and "frame_size: 32" in config  # inferred from the corpus
    assert "name: conv2d_frames_spatial" in config and "foreground_weight: 30.0" in config  # the domain's default
    result = runner.invoke(app, ["eval", "a", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "PSNR (dB)" in result.stdout
    metrics = json.loads((runs / "a" / "results" / "metrics.json").read_text())["test"]
    assert metrics["psnr"] == pytest.approx(10 * np.log10(1 / metrics["mse"]))
    result = runner.invoke(app, ["sample", "a", "--runs-dir", str(runs), "-n", "8"])
    assert result.exit_code == 0, result.output
    for name in ("reconstructions.png", "samples.png", "latent_pca.png", "latent_histograms.png",
                 "training_curves.png"):
        assert (runs / "a" / "results" / name).read_bytes()[:4] == b"\x89PNG", name
    result = runner.invoke(app, ["report", "a", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "PSNR (dB)" in result.stdout


def test_a_latent_dim_the_default_models_map_cannot_hold_is_refused_before_any_file(atari_corpus, tmp_path):
    result = runner.invoke(app, ["train", "atari", "--data", str(atari_corpus), "--runs-dir", str(tmp_path),
                                 "--run-id", "odd", "--latent", "33"])
    assert result.exit_code == 2
    assert "latent_dim 33: the 16×16 latent map of 32×32 frames needs a multiple of its 256 cells" in \
        " ".join(result.output.split())
    assert not (tmp_path / "odd").exists()
