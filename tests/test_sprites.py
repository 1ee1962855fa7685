"""Sprites domain: the drawn factor grid, the corpus, and eval --disentanglement end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vaekit import load_corpus
from vaekit.cli import app
from vaekit.domains.sprites import FACTOR_SIZES, NUM_IMAGES, draw, factor_grid, templates

runner = CliRunner()
TINY_SPRITE_MODEL = "model.options={channels: [8, 8, 8, 8], decoder_channels: [8, 8, 8, 8], hidden: 32}"
SHAPES = templates()


def one(shape=0, scale=5, orientation=0, x=10, y=20) -> np.ndarray:
    return draw(np.array([[shape, scale, orientation, x, y]]), SHAPES)[0, ..., 0]


def test_the_grid_has_dsprites_size_and_order():
    assert FACTOR_SIZES == (3, 6, 40, 32, 32) and NUM_IMAGES == 737_280
    assert factor_grid(np.array([0, 1, 32, NUM_IMAGES - 1])).tolist() == [
        [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [2, 5, 39, 31, 31]]


def test_images_are_binary_and_the_shape_stays_inside_the_frame():
    images = draw(factor_grid(np.random.default_rng(0).choice(NUM_IMAGES, 500, replace=False)), SHAPES)
    assert set(np.unique(images)) == {0, 255}
    assert (images > 0).reshape(500, -1).any(axis=1).all()
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert not border.any()


def test_position_shifts_the_image_by_whole_pixels():
    assert np.array_equal(np.roll(one(x=10), 1, axis=1), one(x=11))
    assert np.array_equal(np.roll(one(y=20), 3, axis=0), one(y=23))


def test_scale_grows_the_area_and_the_shapes_differ():
    for shape in range(3):
        areas = [one(shape=shape, scale=k).sum() for k in range(6)]
        assert areas == sorted(areas) and areas[-1] > 3 * areas[0]  # area ∝ scale², scale 0.5 -> 1
    assert len({one(shape=s).tobytes() for s in range(3)}) == 3


def test_orientation_turns_the_shape():
    square, ellipse, heart = 0, 1, 2
    assert np.array_equal(one(square, orientation=0), one(square, orientation=10))  # a quarter turn
    assert np.array_equal(one(ellipse, orientation=0), one(ellipse, orientation=20))  # a half turn
    assert not np.array_equal(one(ellipse, orientation=0), one(ellipse, orientation=10))
    assert not np.array_equal(one(heart, orientation=0), one(heart, orientation=20))
    template = SHAPES[heart, 5, 0]
    assert np.array_equal(template[:, 1:], template[:, 1:][:, ::-1])  # symmetric about the centre column


@pytest.fixture(scope="module")
def sprites_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("sprites") / "sprites.npz"
    result = runner.invoke(app, ["collect", "sprites", "--count", "600", "--seed", "3", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_collect_stores_the_factors_beside_the_images(sprites_corpus):
    corpus = load_corpus(sprites_corpus)
    assert corpus.metadata["counts"] == {"train": 480, "val": 60, "test": 60}
    everything = np.concatenate([corpus.arrays[f"{s}_index"] for s in ("train", "val", "test")])
    assert len(np.unique(everything)) == 600
    for split in ("train", "val", "test"):
        factors = corpus.arrays[f"{split}_factors"]
        assert np.array_equal(factors, factor_grid(corpus.arrays[f"{split}_index"]))
        assert np.array_equal(corpus.arrays[split], draw(factors, SHAPES))
        assert corpus.arrays[f"{split}_factor_values"][:, 1].min() >= 0.5


def test_collect_is_seeded(sprites_corpus, tmp_path):
    again = tmp_path / "again.npz"
    assert runner.invoke(app, ["collect", "sprites", "--count", "600", "--seed", "3", "--out", str(again)]).exit_code == 0
    assert np.array_equal(load_corpus(again).arrays["test_index"], load_corpus(sprites_corpus).arrays["test_index"])


def test_collect_refuses_a_count_beyond_the_grid(tmp_path):
    result = runner.invoke(app, ["collect", "sprites", "--count", "800000", "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "737,280" in result.output
    assert not (tmp_path / "x.npz").exists()


def test_train_then_eval_disentanglement_json(sprites_corpus, tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "sprites", "--data", str(sprites_corpus), "--runs-dir", str(runs),
                                 "--run-id", "s", "--epochs", "1", "--latent", "4", "--batch-size", "32",
                                 "--no-progress", "--set", "threads=1", "--set", TINY_SPRITE_MODEL])
    assert result.exit_code == 0, result.output
    config = (runs / "s" / "config.yaml").read_text()
    assert "likelihood: bernoulli" in config and "in_channels: 1" in config
    result = runner.invoke(app, ["eval", "s", "--runs-dir", str(runs), "--disentanglement", "--factor-vae-votes", "20",
                                 "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    for key in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap", "factor_vae_score"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["disentanglement_items"] == 60 and metrics["factor_vae_votes"] == 10
    recorded = json.loads((runs / "s" / "results" / "metrics.json").read_text())["test"]
    assert recorded["mig"] == metrics["mig"]
    result = runner.invoke(app, ["sample", "s", "--runs-dir", str(runs), "-n", "8"])
    assert result.exit_code == 0, result.output
    for name in ("reconstructions.png", "samples.png"):
        assert (runs / "s" / "results" / name).read_bytes()[:4] == b"\x89PNG", name


def test_eval_disentanglement_on_a_domain_without_factors_exits_2_naming_those_with(arc_corpus, tmp_path):
    from conftest import TINY_MODEL_FLAGS

    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "arc", "--data", str(arc_corpus), "--runs-dir", str(runs), "--run-id", "a",
                                 "--epochs", "1", "--no-progress", "--set", "threads=1", *TINY_MODEL_FLAGS])
    assert result.exit_code == 0, result.output
    results = runs / "a" / "results" / "metrics.json"
    before = results.read_bytes()
    result = runner.invoke(app, ["eval", "a", "--runs-dir", str(runs), "--disentanglement"])
    assert result.exit_code == 2
    assert "domain 'arc' has no known generative factors; domains with factors: sprites, ternary" in result.output
    assert results.read_bytes() == before
