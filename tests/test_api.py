"""The Python API: docs/api.md's example runs as written, and keyword arguments map to config fields."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import vaekit
from vaekit.api import keyword_layer
from vaekit.errors import VaekitUsageError

DOCS = Path(__file__).resolve().parents[1] / "docs"


def documented_example(start: str = "## Example", end: str = "## Your own data") -> str:
    text = (DOCS / "api.md").read_text()
    section = text[text.index(start):text.index(end)]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_documented_example_runs(tmp_path, monkeypatch, ternary_corpus, capsys):
    (tmp_path / "data").mkdir()
    shutil.copy(ternary_corpus, tmp_path / "data" / "ternary.npz")
    monkeypatch.chdir(tmp_path)
    exec(compile(documented_example(), "docs/api.md", "exec"), {})
    assert "reconstructed exactly" in capsys.readouterr().out
    assert (tmp_path / "runs" / "api_demo" / "results" / "metrics.json").is_file()
    run = vaekit.load_run("api_demo", runs_dir=tmp_path / "runs")
    assert run.config.train.epochs == 2 and run.config.model.latent_dim == 8 and run.config.threads == 1


def test_the_documented_own_data_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(documented_example("## Your own data", "## Reference"), "docs/api.md", "exec"), {})
    out = capsys.readouterr().out
    assert "PSNR" in out and "over 64 features" in out
    corpora = sorted(p.name for p in (tmp_path / "runs" / "corpora").iterdir())
    assert len(corpora) == 2 and corpora[0].startswith("arrays_") and corpora[1].startswith("images_")
    run = vaekit.load_run("digits_images", runs_dir=tmp_path / "runs")
    assert run.model.encoder.feature_shape[1:] == (4, 4)  # 8×8 digits: one stride-2 stage
    assert vaekit.load_corpus(run.config.data.path).metadata["counts"] == {"train": 1437, "val": 180, "test": 180}


def test_keywords_name_config_fields():
    assert keyword_layer({"epochs": 5, "latent_dim": 16, "max_beta": 0.5, "seed": 3, "name": "x"}) == {
        "train": {"epochs": 5}, "model": {"latent_dim": 16}, "beta": {"max_beta": 0.5}, "seed": 3, "name": "x"}
    assert keyword_layer({}, {"model.options": {"hidden": [8]}}) == {"model": {"options": {"hidden": [8]}}}
    with pytest.raises(VaekitUsageError, match="did you mean 'epochs'"):
        keyword_layer({"epoch": 5})
    with pytest.raises(VaekitUsageError, match="ambiguous"):
        keyword_layer({"options": {}})


def test_importing_vaekit_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, vaekit; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=DOCS.parent).stdout.strip() == "False"


def test_an_unknown_keyword_is_refused_before_in_memory_data_is_converted_and_written(tmp_path):
    import numpy as np

    with pytest.raises(VaekitUsageError, match="unknown config field 'epochz'"):
        vaekit.train("arrays", data=np.random.default_rng(0).normal(size=(100, 4)), epochz=1, runs_dir=tmp_path,
                     quiet=True)
    assert list(tmp_path.rglob("*")) == []
