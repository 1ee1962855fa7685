"""Shared fixtures: a small real ARC corpus and a tiny-model config layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
