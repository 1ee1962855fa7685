"""`vaekit collect images` from folders, globs and arrays, every bad input refused or noted, and
the conv2d_frames family at sizes other than 64×64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import collect as collect_domain
from conftest import collect_refused
from PIL import Image

from vaekit import load_corpus
from vaekit.domains import get_domain
from vaekit.models import create_model


def collect(*args):
    return collect_domain("images", *args)


def refused(out, *args) -> str:
    return collect_refused("images", out, *args)


def save(folder, name, pixels, mode=None):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels), mode).save(folder / name)


def grey_folder(folder, n=5, side=8):
    for i in range(n):
        save(folder, f"{i}.png", np.full((side, side), 40 * i, np.uint8))
    return folder


def test_a_labelled_folder_of_two_sizes_is_resized_split_and_labelled(digit_folder, images_corpus):
    corpus = load_corpus(images_corpus)
    meta = corpus.metadata
    assert meta["counts"] == {"train": 160, "val": 20, "test": 20}
    assert (meta["height"], meta["width"], meta["channels"]) == (16, 16, 1) and meta["source_kind"] == "folder"
    assert meta["label_names"] == [str(k) for k in range(10)]
    assert any(note.startswith("resized 200 image(s) to 16×16") for note in meta["notes"])
    assert meta["compressed"]  # --compress auto: dark digits deflate far below 70 %
    for split in ("train", "val", "test"):
        assert corpus.arrays[split].shape[1:] == (16, 16, 1) and corpus.arrays[split].dtype == np.uint8
        paths, labels = corpus.arrays[f"{split}_path"], corpus.arrays[f"{split}_label"]
        assert all(path.split("/")[0] == str(label) for path, label in zip(paths, labels))
    row = corpus.arrays["test_path"][0]  # each stored image is its file, resized
    source = Image.open(digit_folder / row).resize((16, 16), Image.Resampling.BILINEAR)
    assert np.array_equal(corpus.arrays["test"][0][..., 0], np.asarray(source))


def test_a_held_out_label_goes_to_the_test_split_only(digit_folder, tmp_path):
    out = tmp_path / "held.npz"
    result = collect("--from", digit_folder, "--size", 16, "--labels", "folders", "--hold-out", 7, "--out", out)
    assert result.exit_code == 0, result.output
    corpus = load_corpus(out)
    seven = corpus.metadata["label_names"].index("7")
    assert (corpus.arrays["test_label"] == seven).sum() == 20
    assert seven not in corpus.arrays["train_label"] and seven not in corpus.arrays["val_label"]
    assert corpus.metadata["held_out_labels"] == ["7"]


def test_atari_frames_exported_as_pngs_come_back_unchanged(atari_corpus, tmp_path):
    frames = load_corpus(atari_corpus).arrays["test"]
    for i, frame in enumerate(frames):
        save(tmp_path / "frames", f"{i:03d}.png", frame)
    out = tmp_path / "frames.npz"
    result = collect("--from", f"{tmp_path}/frames/*.png", "--out", out)  # a glob
    assert result.exit_code == 0, result.output
    corpus = load_corpus(out)
    assert corpus.metadata["source_kind"] == "glob" and corpus.metadata["channels"] == 3
    stored = np.concatenate([corpus.arrays[s] for s in ("train", "val", "test")])
    order = np.concatenate([corpus.arrays[f"{s}_index"] for s in ("train", "val", "test")])
    assert np.array_equal(stored[np.argsort(order)], frames)


def test_arrays_are_collected_as_uint8_with_their_own_size(tmp_path):
    floats = np.random.default_rng(0).random((12, 9, 10)).astype(np.float32)  # (N, H, W) in [0, 1]
    np.save(tmp_path / "floats.npy", floats)
    result = collect("--from", tmp_path / "floats.npy", "--out", tmp_path / "a.npz")
    assert result.exit_code == 0, result.output
    corpus = load_corpus(tmp_path / "a.npz")
    assert corpus.arrays["train"].shape[1:] == (9, 10, 1) and not corpus.metadata["compressed"]  # noise: stored
    first = corpus.arrays["train_index"][0]
    assert np.array_equal(corpus.arrays["train"][0][..., 0], np.rint(floats[first] * 255).astype(np.uint8))
    rgb = np.zeros((6, 8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    np.savez(tmp_path / "rgb.npz", images=rgb, labels=np.arange(6))
    result = collect("--from", tmp_path / "rgb.npz", "--channels", 1, "--size", "16x8", "--out", tmp_path / "b.npz")
    assert result.exit_code == 0, result.output
    grey = load_corpus(tmp_path / "b.npz").arrays["test"]
    assert grey.shape[1:] == (8, 16, 1) and np.all(grey == 76)  # ITU-R 601 luma of pure red


def test_resize_modes_stretch_crop_and_pad(tmp_path):
    for i in range(3):
        save(tmp_path / "wide", f"{i}.png", np.full((8, 16), 255, np.uint8))  # 16 wide, 8 high
    stored = {}
    for mode in ("fit", "crop", "pad"):
        result = collect("--from", tmp_path / "wide", "--size", 8, "--resize", mode, "--out", tmp_path / f"{mode}.npz")
        assert result.exit_code == 0, result.output
        stored[mode] = load_corpus(tmp_path / f"{mode}.npz").arrays["train"][0, ..., 0]
    assert (stored["fit"] == 255).all() and (stored["crop"] == 255).all()
    assert (stored["pad"][[0, 1, -2, -1]] == 0).all() and (stored["pad"][3:5] == 255).all()  # black bars


def test_rgba_palette_and_16_bit_images_are_converted_and_noted(tmp_path):
    folder = tmp_path / "modes"
    save(folder, "rgba.png", np.tile(np.array([200, 100, 50, 128], np.uint8), (8, 8, 1)), "RGBA")
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.save(folder / "palette.png")
    Image.fromarray(np.full((8, 8), 257 * 100, np.uint16)).save(folder / "deep.png")
    save(folder, "plain.png", np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "modes.npz"
    result = collect("--from", folder, "--out", out)
    assert result.exit_code == 0, result.output
    for what in ("with alpha (composited over black)", "palette (expanded)", "16-bit (scaled to 8-bit)"):
        assert what in result.stderr
    corpus = load_corpus(out)
    images = {path: image for s in ("train", "val", "test")
              for path, image in zip(corpus.arrays[f"{s}_path"], corpus.arrays[s])}
    assert np.abs(images["rgba.png"][0, 0].astype(int) - [100, 50, 25]).max() <= 1
    assert images["palette.png"][0, 0].tolist() == [10, 20, 30]
    assert images["deep.png"][0, 0].tolist() == [100, 100, 100]


def test_unreadable_files_are_skipped_and_named_or_refused_with_strict(tmp_path):
    folder = grey_folder(tmp_path / "some_bad")
    (folder / "garbage.png").write_bytes(b"not an image at all")
    save(folder, "noise.png", np.random.default_rng(0).integers(0, 256, (8, 8), np.uint8))
    whole = (folder / "noise.png").read_bytes()
    (folder / "noise.png").unlink()
    (folder / "truncated.png").write_bytes(whole[: len(whole) - 30])  # a header that reads, a body that does not
    out = tmp_path / "skipped.npz"
    result = collect("--from", folder, "--out", out)
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable file(s)" in result.stderr and "garbage.png" in result.stderr
    assert "skipped 1 corrupt file(s): truncated.png" in result.stderr
    assert sum(load_corpus(out).metadata["counts"].values()) == 5
    message = refused(tmp_path / "strict.npz", "--from", folder, "--strict")
    assert "garbage.png" in message and "--strict" in message
    (folder / "garbage.png").unlink()
    assert "truncated.png" in refused(tmp_path / "strict.npz", "--from", folder, "--strict")


def test_every_bad_source_is_one_line_exit_2_and_nothing_written(tmp_path):
    out = tmp_path / "out" / "never.npz"
    (tmp_path / "empty").mkdir()
    assert "no image files in this folder" in refused(out, "--from", tmp_path / "empty")
    assert "matches no image files" in refused(out, "--from", f"{tmp_path}/empty/*.png")
    assert "no such folder, glob or .npy/.npz file" in refused(out, "--from", tmp_path / "missing")
    mixed = grey_folder(tmp_path / "mixed")
    save(mixed, "big.png", np.zeros((12, 10), np.uint8))
    message = refused(out, "--from", mixed)
    assert "images of 2 sizes" in message and "pass --size" in message
    assert "need at least 3" in refused(out, "--from", grey_folder(tmp_path / "two", n=2))
    assert "the models need at least 8×8" in refused(out, "--from", grey_folder(tmp_path / "tiny", side=5))
    for bad_size in ("64x", "5", "big"):
        assert f"--size {bad_size}: expected" in refused(out, "--from", mixed, "--size", bad_size)
    assert "--count 50: the source has 6 readable images" in refused(out, "--from", mixed, "--size", 8, "--count", 50)
    assert "--resize zoom" in refused(out, "--from", mixed, "--size", 8, "--resize", "zoom")
    assert "--compress yes: expected one of auto, always, never" in refused(out, "--from", mixed, "--size", 8,
                                                                             "--compress", "yes")
    message = refused(out, "--from", mixed, "--labels", "folders")
    assert "0.png is not in a sub-folder" in message


def test_bad_arrays_and_label_options_are_refused(tmp_path, digit_folder):
    out = tmp_path / "never.npz"
    cases = {
        "nan.npy": (np.full((5, 8, 8), np.nan, np.float32), "NaN or infinite values in 5 of 5 items"),
        "rank.npy": (np.zeros((5, 64), np.uint8), "an array of shape (5, 64); expected (N, H, W)"),
        "four.npy": (np.zeros((5, 8, 8, 4), np.uint8), "with C = 1 or 3"),
        "range.npy": (np.full((5, 8, 8), 2.0), "values from 2 to 2; expected floats in [0, 1]"),
        "int16.npy": (np.zeros((5, 8, 8), np.int16), "dtype int16; expected uint8"),
    }
    for name, (array, expected) in cases.items():
        np.save(tmp_path / name, array)
        message = refused(out, "--from", tmp_path / name)
        assert name in message and expected in message, message
    np.savez(tmp_path / "two.npz", a=np.zeros((5, 8, 8), np.uint8), b=np.zeros(3))
    assert "holds a, b; expected one array, or one named 'images'" in refused(out, "--from", tmp_path / "two.npz")
    assert "needs a folder" in refused(out, "--from", tmp_path / "two.npz", "--labels", "folders")
    assert "--hold-out 11: no such label" in refused(out, "--from", digit_folder, "--size", 16,
                                                     "--labels", "folders", "--hold-out", 11)
    assert "--hold-out needs --labels folders" in refused(out, "--from", digit_folder, "--size", 16, "--hold-out", 1)


@pytest.mark.parametrize("size", [(8, 8), (9, 13), (16, 16), (84, 84)])
def test_the_frame_family_fits_any_size_and_learns_its_sigma(size):
    torch.manual_seed(0)
    model = create_model("conv2d_frames", 3, {"frame_size": list(size), "in_channels": 1, "channels": [4, 4, 4, 4],
                                              "decoder_channels": [4, 4, 4, 4], "hidden": 8, "learn_sigma": True})
    batch = torch.randint(0, 256, (2, *size, 1), dtype=torch.uint8)
    output = model.decode(model.encode(batch)[0])
    assert output.shape == (2, 1, *size) and model.decode_data(torch.zeros(1, 3)).shape == (1, *size, 1)
    model.reconstruction_nll(output, batch, "sum").sum().backward()
    assert model.log_sigma.grad is not None and model.log_sigma.grad != 0
    assert min(model.encoder.feature_shape[1:]) >= 4


def test_ssim_and_psnr_are_perfect_for_a_perfect_reconstruction():
    domain = get_domain("images")
    model = create_model("conv2d_frames", 2, {"frame_size": [8, 12], "in_channels": 3, "channels": [4],
                                              "decoder_channels": [4], "hidden": 8})
    batch = torch.randint(0, 256, (4, 8, 12, 3), dtype=torch.uint8)
    sums = domain.quality_sums(model, batch, model.prepare(batch))  # the output that is the data itself
    assert float(sums["ssim"][0]) / sums["ssim"][1] == pytest.approx(1.0, abs=1e-4)
    assert float(sums["mse"][0]) == 0.0 and domain.derived_metrics({"mse": 0.0})["psnr"] == float("inf")
    noisy = (model.prepare(batch) + 0.1).clamp(0, 1)
    worse = domain.quality_sums(model, batch, noisy)
    assert float(worse["ssim"][0]) < float(sums["ssim"][0])


def test_a_model_option_that_does_not_fit_the_data_is_refused_before_any_file(tmp_path, images_corpus):
    from typer.testing import CliRunner

    from vaekit.cli import app

    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "images", "--data", str(images_corpus), "--runs-dir", str(runs),
                                      "--run-id", "bad", "--epochs", "1", "--set", "model.options.frame_size=[8,8]"])
    assert result.exit_code == 2, result.output
    assert "does not fit the corpus, whose items have shape" in " ".join(result.output.split())
    assert not runs.exists()
    space = tmp_path / "space.yaml"
    space.write_text("size:\n  one_of:\n    small: {model.options.frame_size: [8, 8]}\n")
    swept = CliRunner().invoke(app, ["sweep", "run", "images", "--space", str(space), "--data", str(images_corpus),
                                     "--runs-dir", str(runs), "--set", "train.epochs=1"])
    assert swept.exit_code == 2, swept.output
    assert "does not fit the corpus" in " ".join(swept.output.split()) and not runs.exists()


def test_an_opaque_palette_image_is_not_counted_with_alpha_and_a_transparent_one_is():
    from PIL import Image

    from vaekit.domains.images_collect import convert

    opaque = Image.new("P", (8, 8), 3)
    opaque.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
    pixels, notes = convert(opaque, (8, 8), 3, "fit")
    assert notes == ["palette (expanded)"] and tuple(pixels[0, 0]) == (3, 252, 7)
    transparent = opaque.copy()
    transparent.info["transparency"] = 3
    _, notes = convert(transparent, (8, 8), 3, "fit")
    assert notes == ["palette (expanded)", "with alpha (composited over black)"]
