"""The background of frames corpora, the foreground and small-object metrics on frames whose answer is
known, the baselines, and the foreground-weighted training loss (loss.options.foreground_weight)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vaekit import load_corpus
from vaekit.background import BACKGROUND_KEY, pixel_mode
from vaekit.cli import app
from vaekit.corpus import save_corpus
from vaekit.domains import get_domain
from vaekit.domains.shared_background import foreground_sums
from vaekit.models import create_model
from vaekit.small_objects import small_objects

runner = CliRunner()
TINY = ["--epochs", "1", "--latent", "4", "--batch-size", "16", "--no-progress", "--set", "threads=1",
        "--set", "model.options={channels: [4, 4, 4, 4, 4], decoder_channels: [4, 4, 4, 4, 4]}"]  # a 1×1 latent map

WALL = (slice(0, 3), slice(0, 16))  # 48 pixels: a large object, never a small one
BALL = (slice(8, 10), slice(5, 7))  # 2×2


def frame(ball_at: tuple[int, int] | None = (8, 5)) -> torch.Tensor:
    """A (1, 3, 16, 16) frame in [0, 1]: black, a grey wall on top, a red 2×2 ball at ``ball_at``."""
    x = torch.zeros(1, 3, 16, 16)
    x[0, :, WALL[0], WALL[1]] = 0.5
    if ball_at is not None:
        top, left = ball_at
        x[0, 0, top:top + 2, left:left + 2] = 0.8
    return x


BACKGROUND = torch.zeros(3, 16, 16)  # black: the wall and the ball are foreground


def scores(reconstruction: torch.Tensor, target: torch.Tensor) -> dict:
    sums = foreground_sums(reconstruction, target, BACKGROUND)
    return {key: float(num) / float(den) for key, (num, den) in sums.items()}


def test_pixel_mode_is_the_most_frequent_whole_colour_with_the_smallest_winning_ties():
    frames = np.zeros((5, 2, 2, 3), np.uint8)
    frames[:3, 0, 0] = (200, 72, 72)  # 3 of 5: the ball's red wins
    frames[:2, 0, 1] = (0, 0, 9)  # 2 of 5, against 3 black
    frames[:2, 1, 0] = (9, 0, 0)
    frames[2:4, 1, 0] = (0, 9, 0)  # a 2–2 tie of (9, 0, 0) and (0, 9, 0) with one black
    mode = pixel_mode(frames)
    assert mode[0, 0].tolist() == [200, 72, 72]
    assert mode[0, 1].tolist() == [0, 0, 0]  # 3 black against 2 (0, 0, 9)
    assert mode[1, 0].tolist() == [0, 9, 0]  # the tie goes to the smaller packed colour 0x000900
    grey = np.array([[[[1]]], [[[7]]], [[[7]]]], np.uint8)
    assert pixel_mode(grey).tolist() == [[[7]]]


def test_identical_frame_keeps_everything():
    got = scores(frame(), frame())
    assert got["small_object_recall"] == 1.0 and got["foreground_recall"] == 1.0 and got["foreground_mse"] == 0.0


def test_erased_ball_is_lost_and_only_its_pixels_miss():
    got = scores(frame(ball_at=None), frame())
    assert got["small_object_recall"] == 0.0
    assert got["foreground_recall"] == pytest.approx(48 / 52)  # the wall's 48 of the 52 foreground pixels


def test_moved_ball_is_lost_and_a_ball_moved_by_half_its_size_too():
    assert scores(frame(ball_at=(12, 12)), frame())["small_object_recall"] == 0.0
    # one pixel to the right: IoU 2 / 6 = 0.33 < 0.5
    found = small_objects(frame(ball_at=(8, 6))[:, 0].numpy() > 0.1, frame()[:, 0].numpy() > 0.1)
    assert [(obj.pixels, round(obj.iou, 3), obj.kept) for obj in found] == [(4, 0.333, False)]


def test_a_faint_ball_is_not_kept_and_the_wall_is_never_a_small_object():
    faint = frame()
    faint[0, 0, BALL[0], BALL[1]] = 0.05  # within the foreground tolerance of black: not drawn
    got = scores(faint, frame())
    assert got["small_object_recall"] == 0.0
    found = small_objects(frame()[:, 0].numpy() > 0.1, frame()[:, 0].numpy() > 0.1)
    assert len(found) == 1 and found[0].box == (8, 5, 10, 7)


def test_only_objects_where_the_foreground_is_rare_count():
    rare = np.ones((16, 16), bool)
    assert len(small_objects(frame()[:, 0].numpy() > 0.1, frame()[:, 0].numpy() > 0.1, rare)) == 1
    rare[9, 6] = False  # one pixel of the ball's place is often foreground (a score digit, say)
    assert small_objects(frame()[:, 0].numpy() > 0.1, frame()[:, 0].numpy() > 0.1, rare) == []


def test_the_ball_lies_where_the_foreground_is_rare_and_the_score_does_not(atari_corpus):
    corpus = load_corpus(atari_corpus)
    rate = corpus.arrays["foreground_rate"]  # stored at collect
    by_hand = (np.abs(corpus.arrays["train"].astype(int) - corpus.arrays[BACKGROUND_KEY].astype(int)).max(-1)
               > 25.5).mean(axis=0)
    assert np.allclose(rate, by_hand)
    domain = get_domain("atari")
    domain.load(atari_corpus)
    assert np.array_equal(domain.rare_foreground, by_hand < 0.1)


def test_a_ball_beside_another_object_is_judged_on_its_own():
    target = frame(ball_at=(4, 5))  # one black row between the wall (rows 0–2) and the ball (rows 4–5)
    # the wall's row 2 lies in the ball's window: counted as drawn there, it would make the IoU 4 / 10
    assert scores(target, target)["small_object_recall"] == 1.0
    erased = target.clone()
    erased[0, 0, 4:6, 5:7] = 0
    assert scores(erased, target)["small_object_recall"] == 0.0  # the wall in its window does not count


def test_foreground_weight_default_keeps_the_objective_and_a_weight_scales_only_the_foreground():
    model = create_model("conv2d_frames", 4, {"frame_size": 16, "in_channels": 3, "channels": [4, 4],
                                               "decoder_channels": [4, 4], "hidden": 8})
    batch = (frame() * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    output = torch.full((1, 3, 16, 16), 0.25)
    assert model.reconstruction_objective(output, batch, "sum") is None  # today's behaviour: the NLL itself
    nll = model.reconstruction_nll(output, batch, "sum")
    model.weigh_foreground(BACKGROUND, 10.0)
    per_element = model._nll_per_element(output, model.prepare(batch))
    foreground_part = per_element[0][:, (frame()[0] > 0.1).any(dim=0)].sum()
    weighted = model.reconstruction_objective(output, batch, "sum")
    assert float(weighted) == pytest.approx(float(nll) + 9 * float(foreground_part), rel=1e-5)
    assert torch.equal(model.reconstruction_nll(output, batch, "sum"), nll)  # the reported NLL is unchanged


def test_foreground_weight_on_either_also_weighs_what_the_reconstruction_draws_over_the_background():
    model = create_model("conv2d_frames", 4, {"frame_size": 16, "in_channels": 3, "channels": [4, 4],
                                               "decoder_channels": [4, 4], "hidden": 8})
    batch = (frame() * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    output = model.prepare(batch).clone()
    output[0, :, 12, 12] = 0.5  # a stray dot drawn over the target's background, everything else exact
    model.weigh_foreground(BACKGROUND, 10.0)
    stray = model._nll_per_element(output, model.prepare(batch))[0, :, 12, 12].sum()
    target_only = model.reconstruction_objective(output, batch, "sum")
    model.weigh_foreground(BACKGROUND, 10.0, drawn_too=True)
    either = model.reconstruction_objective(output, batch, "sum")
    assert float(either) == pytest.approx(float(target_only) + 9 * float(stray), rel=1e-5)


@pytest.mark.parametrize("value", ["both", 1])
def test_an_unknown_foreground_weight_on_is_refused_naming_the_choices(atari_corpus, tmp_path, value):
    result = runner.invoke(app, ["train", "atari", "--data", str(atari_corpus), "--runs-dir", str(tmp_path),
                                 "--run-id", "bad", *TINY, "--set", f"loss.options.foreground_weight_on={value}"])
    assert result.exit_code == 2
    assert "loss.options.foreground_weight_on must be one of target, either" in " ".join(result.output.split())
    assert not (tmp_path / "bad").exists()


def test_collect_stores_the_background(atari_corpus):
    corpus = load_corpus(atari_corpus)
    assert np.array_equal(corpus.arrays[BACKGROUND_KEY], pixel_mode(corpus.arrays["train"]))


def test_train_with_a_foreground_weight_logs_the_weighted_objective_and_eval_shows_baselines(atari_corpus, tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "atari", "--data", str(atari_corpus), "--runs-dir", str(runs),
                                 "--run-id", "w", *TINY, "--set", "loss.options.foreground_weight=30"])
    assert result.exit_code == 0, result.output
    record = json.loads((runs / "w" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["val_recon_objective"] > record["val_recon"]  # the weighted term trains; recon stays the NLL
    for key in ("val_foreground_psnr", "val_foreground_recall", "val_small_object_recall"):
        assert math.isfinite(record[key]), key
    result = runner.invoke(app, ["eval", "w", "--runs-dir", str(runs), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    baselines = metrics["baselines"]
    assert set(baselines) == {"mean training frame", "background alone"}
    assert baselines["background alone"]["foreground_recall"] == 0.0  # foreground = differs from it
    test = load_corpus(atari_corpus).arrays
    mean = test["train"].astype(np.float64).mean(axis=0) / 255
    mse = float(((test["test"] / 255 - mean) ** 2).mean())
    assert baselines["mean training frame"]["psnr"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-4)
    result = runner.invoke(app, ["eval", "w", "--runs-dir", str(runs)])
    assert "mean training frame:" in result.stdout and "Small-object recall:" in result.stdout
    result = runner.invoke(app, ["runs", "--runs-dir", str(runs), "--sort", "small_object_recall"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("value", ["-1", ".nan", ".inf", "heavy"])
def test_a_bad_foreground_weight_exits_2_naming_it_and_writes_nothing(atari_corpus, tmp_path, value):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "atari", "--data", str(atari_corpus), "--runs-dir", str(runs),
                                 "--run-id", "w", *TINY, "--set", f"loss.options.foreground_weight={value}"])
    assert result.exit_code == 2, result.output
    assert "loss.options.foreground_weight" in result.stderr and not runs.exists()


def test_a_loss_option_the_domain_does_not_take_exits_2(arc_corpus, tmp_path):
    result = runner.invoke(app, ["train", "arc", "--data", str(arc_corpus), "--runs-dir", str(tmp_path / "runs"),
                                 "--epochs", "1", "--set", "loss.options.foreground_weight=10"])
    assert result.exit_code == 2 and "loss.options.foreground_weight" in result.stderr
    assert not (tmp_path / "runs").exists()


def _rewritten(atari_corpus, path, background):
    corpus = load_corpus(atari_corpus)
    arrays = {k: v for k, v in corpus.arrays.items() if k != BACKGROUND_KEY}
    if background is not None:
        arrays[BACKGROUND_KEY] = background
    save_corpus(path, arrays, corpus.metadata)
    return path


def test_a_background_of_another_size_exits_2_naming_the_file(atari_corpus, tmp_path):
    corpus = _rewritten(atari_corpus, tmp_path / "odd.npz", np.zeros((16, 16, 3), np.uint8))
    result = runner.invoke(app, ["train", "atari", "--data", str(corpus), "--runs-dir", str(tmp_path / "runs"), *TINY])
    assert result.exit_code == 2 and "odd.npz" in result.stderr and "16×16×3" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_corpus_without_a_background_gets_it_from_the_training_split_and_says_so(atari_corpus, tmp_path):
    corpus = _rewritten(atari_corpus, tmp_path / "old.npz", None)
    domain = get_domain("atari")
    with pytest.warns(UserWarning, match="computed it from the training split"):
        domain.load(corpus)
    assert np.array_equal(domain.background, load_corpus(atari_corpus).arrays[BACKGROUND_KEY])


def test_reconstructions_picture_marks_kept_and_lost_small_objects(atari_corpus):
    domain = get_domain("atari")
    domain.load(atari_corpus)
    items = np.repeat(domain.background[None], 2, axis=0)
    items[:, 10:12, 10:12] = (200, 72, 72)
    lost = items.copy()
    lost[1, 10:12, 10:12] = domain.background[10:12, 10:12]
    boxes = domain.small_object_boxes(items, lost)
    assert boxes == [[((10, 10, 12, 12), True)], [((10, 10, 12, 12), False)]]


def test_images_store_a_background_and_show_ssim_baselines(images_corpus, tmp_path):
    corpus = load_corpus(images_corpus)
    assert np.array_equal(corpus.arrays[BACKGROUND_KEY], pixel_mode(corpus.arrays["train"]))
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "images", "--data", str(images_corpus), "--runs-dir", str(runs),
                                 "--run-id", "i", *TINY, "--set", "loss.options.foreground_weight=0"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((runs / "i" / "results" / "metrics.json").read_text())["test"]
    background = metrics["baselines"]["background alone"]
    assert background["ssim"] < 1 and background["foreground_recall"] == 0.0
    assert {"foreground_psnr", "foreground_recall", "small_object_recall"} <= set(metrics)
