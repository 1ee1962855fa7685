"""Shared fixtures: a small real ARC corpus, a tiny-model config layer, and example batches drawn
for any stored data format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from vaekit.data_formats import ARC_GRID, FRAMES, SPLAT_SEQUENCE, TERNARY_TABLE, VECTORS

from vaekit.domains.arc import collect_arc


@pytest.fixture(scope="session")
def arc_corpus(tmp_path_factory) -> Path:
    """300 real ARC grids (240/30/30), built once per test session."""
    path = tmp_path_factory.mktemp("corpus") / "arc_small.npz"
    collect_arc(path, count=300, seed=0, version="arcagi1")
    return path


# A small seed-shaped model keeps CLI tests to a few seconds.
TINY_MODEL_OPTIONS = {"channels": [8, 8, 8], "hidden": 16, "decoder_channels": [8, 8]}
TINY_MODEL_FLAGS = ["--set", f"model.options={json.dumps(TINY_MODEL_OPTIONS)}", "--batch-size", "64"]


@pytest.fixture(scope="session")
def ternary_corpus(tmp_path_factory) -> Path:
    from vaekit.domains.ternary import collect_ternary

    path = tmp_path_factory.mktemp("corpus") / "ternary.npz"
    collect_ternary(path, seed=42)
    return path


TINY_TERNARY_FLAGS = ["--batch-size", "256", "--set", "threads=1",
                      "--set", "data.options={prior_samples: 5000, epoch_prior_samples: 2000}"]


# Four short Breakout episodes at 32×32: real ALE frames in about a second.
TINY_ATARI_COLLECT = ["collect", "atari", "--env", "Breakout", "--episodes", "4", "--max-steps-per-episode", "25",
                      "--frame-size", "32", "--seed", "3"]


@pytest.fixture(scope="session")
def atari_corpus(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from vaekit.cli import app

    path = tmp_path_factory.mktemp("atari") / "breakout.npz"
    result = CliRunner().invoke(app, [*TINY_ATARI_COLLECT, "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def write_digit_folder(folder: Path, per_class: int = 20, upscale_every: int = 3) -> Path:
    """scikit-learn's bundled 8×8 digits (no download) as PNGs in one sub-folder per class; every
    ``upscale_every``-th image is stored at 12×12, so the folder holds two sizes."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images / 16 * 255).astype(np.uint8)
    written = 0
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for row in np.flatnonzero(digits.target == label)[:per_class]:
            image = Image.fromarray(pixels[row])
            if written % upscale_every == 0:
                image = image.resize((12, 12), Image.Resampling.NEAREST)
            image.save(folder / str(label) / f"{row:04d}.png")
            written += 1
    return folder


@pytest.fixture(scope="session")
def digit_folder(tmp_path_factory) -> Path:
    """200 real digits (20 per class) as PNGs of two sizes, 8×8 and 12×12."""
    return write_digit_folder(tmp_path_factory.mktemp("digits") / "digits")


@pytest.fixture(scope="session")
def images_corpus(tmp_path_factory, digit_folder) -> Path:
    """The digit folder collected at 16×16 with its folder labels, through the CLI."""
    from typer.testing import CliRunner

    from vaekit.cli import app

    path = tmp_path_factory.mktemp("images") / "digits16.npz"
    result = CliRunner().invoke(app, ["collect", "images", "--from", str(digit_folder), "--size", "16",
                                      "--labels", "folders", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="session")
def arrays_corpus(tmp_path_factory) -> Path:
    """scikit-learn's bundled breast-cancer table (569 × 30) written as a CSV with a header and collected."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from vaekit.domains.arrays import collect_arrays, read_csv

    table = load_breast_cancer()
    folder = tmp_path_factory.mktemp("arrays")
    csv = folder / "cancer.csv"
    np.savetxt(csv, table.data, delimiter=",", header=",".join(table.feature_names), comments="")
    values, names = read_csv(csv)
    collect_arrays(values, folder / "cancer.npz", str(csv), seed=0, feature_names=names)
    return folder / "cancer.npz"


def collect(domain: str, *args):
    """`vaekit collect DOMAIN ARGS...` through the CLI runner."""
    from typer.testing import CliRunner

    from vaekit.cli import app

    return CliRunner().invoke(app, ["collect", domain, *[str(a) for a in args]])


def collect_refused(domain: str, out: Path, *args) -> str:
    """Run `vaekit collect DOMAIN ARGS... --out OUT` expecting a refusal: exit 2, one line on stderr,
    no corpus and no temp file written. Returns the line."""
    result = collect(domain, *args, "--out", out)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
    return message


def stored_batch(data_format, n: int, generator: torch.Generator, options: dict | None = None) -> torch.Tensor:
    """``n`` random items in ``data_format``, shaped for a model built with ``options`` (its
    ``tiny_options``: frame_size and in_channels, features, length); a new DataFormat adds a case."""
    options = options or {}
    if data_format is ARC_GRID:
        return torch.randint(0, 10, (n, 16, 16), generator=generator, dtype=torch.uint8)
    if data_format is TERNARY_TABLE:
        return torch.randint(-1, 2, (n, 9), generator=generator).to(torch.int8)
    if data_format is FRAMES:
        side, channels = options.get("frame_size", 16), options.get("in_channels", 3)
        return torch.randint(0, 256, (n, side, side, channels), generator=generator, dtype=torch.uint8)
    if data_format is SPLAT_SEQUENCE:
        scenes = torch.randn(n, 8, options.get("length", 16), generator=generator)
        scenes[:, 4] = torch.rand(scenes[:, 4].shape, generator=generator) * math.pi  # θ in [0, π)
        return scenes
    if data_format is VECTORS:
        return torch.randn(n, options.get("features", 5), generator=generator)
    raise AssertionError(f"add a batch for {data_format.name}")
