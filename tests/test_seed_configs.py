"""Seed-document config files (flat keys such as learning_rate) are mapped onto our sections."""

import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import TINY_MODEL_FLAGS
from vaekit.cli import app
from vaekit.errors import VaekitUsageError
from vaekit.experiment import resolve_config

ARC_SPEC = """latent_dim: 10
batch_size: 128
learning_rate: 1e-3
optimizer: Adam
lr_schedule: CosineAnnealingLR(T_max=50, eta_min=1e-5)
max_epochs: 50
early_stopping_patience: 10
"""


def _resolve(tmp_path, text, domain="arc"):
    path = tmp_path / "seed.yaml"
    path.write_text(text)
    return resolve_config(domain, path, [])


def test_arc_specification_file_maps_onto_our_keys(tmp_path, capsys):
    config = _resolve(tmp_path, ARC_SPEC.replace("latent_dim: 10", "latent_dim: 7").replace("128", "64")
                      .replace("T_max=50, eta_min=1e-5", "T_max=40, eta_min=2e-5"))
    assert config.model.latent_dim == 7 and config.train.batch_size == 64
    assert config.train.lr == 1e-3 and config.train.optimizer == "adam"
    assert (config.train.lr_schedule, config.train.cosine_t_max, config.train.min_lr) == ("cosine", 40, 2e-5)
    assert config.train.epochs == 50 and config.train.early_stopping_patience == 10
    assert "learning_rate → train.lr" in capsys.readouterr().err


def test_beta_specification_keys(tmp_path):
    config = _resolve(tmp_path, "beta_schedule: ultra_conservative\nbeta_max: 0.2\nbeta_warmup_epochs: 3\n"
                                "beta_ramp_epochs: 7\nbeta_cycle_length: 9\nuse_free_bits: true\n"
                                "free_bits_lambda: 0.3\n")
    assert (config.beta.schedule, config.beta.max_beta, config.beta.warmup_epochs) == ("ultra_conservative", 0.2, 3)
    assert (config.beta.ramp_epochs, config.beta.cycle_length, config.loss.free_bits) == (7, 9, 0.3)


def test_log_every_n_steps_sets_the_step_logging_interval(tmp_path):
    assert _resolve(tmp_path, "beta_schedule: cyclical\nlog_every_n_steps: 7\n").train.log_every_steps == 7


def test_free_bits_off_when_use_free_bits_false(tmp_path):
    assert _resolve(tmp_path, "use_free_bits: false\nfree_bits_lambda: 0.3\n").loss.free_bits == 0.0


def test_ignored_keys_are_reported(tmp_path, capsys):
    _resolve(tmp_path, "run_id: exp1\nlearning_rate: 0.002\n")
    assert "run_id ignored" in capsys.readouterr().err


@pytest.mark.parametrize("text, hint", [
    ("train:\n  learning_rate: 0.001\n", "'train.lr'"),
    ("learnng_rate: 0.001\n", "'train.lr'"),
    ("latent_dimm: 4\n", "'model.latent_dim'"),
    ("train:\n  batch_sise: 4\n", "'train.batch_size'"),
])
def test_unknown_keys_suggest_across_sections_and_aliases(tmp_path, text, hint):
    with pytest.raises(VaekitUsageError, match=f"did you mean {hint}"):
        _resolve(tmp_path, text)


def test_unreadable_lr_schedule_is_refused(tmp_path):
    with pytest.raises(VaekitUsageError, match="lr_schedule"):
        _resolve(tmp_path, "lr_schedule: StepLR(step_size=3)\n")


def test_our_own_files_are_not_translated(tmp_path, capsys):
    config = _resolve(tmp_path, "train:\n  lr: 0.002\n")
    assert config.train.lr == 0.002 and capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- the shipped seed files

ROOT = Path(__file__).resolve().parents[1]
SEED_FILES = sorted((ROOT / "examples" / "configs" / "seeds").glob("*.yaml"))


@pytest.fixture(scope="module")
def splat_corpus(tmp_path_factory, arc_corpus):
    path = tmp_path_factory.mktemp("splats") / "splats.npz"
    result = CliRunner().invoke(app, ["collect", "gaussians", "--from", str(arc_corpus), "--count", "12",
                                      "--splats", "64", "--steps", "20", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.stem)
def test_seed_file_trains_by_its_header_command(path, tmp_path, request, monkeypatch):
    """Each file's own first-line command, shortened to one epoch on a tiny model and corpus."""
    monkeypatch.chdir(ROOT)
    words = shlex.split(path.read_text().splitlines()[0][2:])[1:]  # drop "vaekit"
    domain = words[1]
    if domain == "arc":
        tiny = ["--data", str(request.getfixturevalue("arc_corpus")), *TINY_MODEL_FLAGS]
    else:
        tiny = ["--data", str(request.getfixturevalue("splat_corpus")), "--latent", "8",
                "--set", "model.options={length: 64}"]
    result = CliRunner().invoke(app, [*words, *tiny, "--epochs", "1", "--set", "threads=1", "--no-progress",
                                      "--runs-dir", str(tmp_path / "runs"), "--run-id", "seed"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "seed" / "checkpoints" / "last.pt").is_file()
    saved = yaml.safe_load((tmp_path / "runs" / "seed" / "config.yaml").read_text())
    document = yaml.safe_load(path.read_text())
    if "learning_rate" in document:
        assert saved["train"]["lr"] == float(document["learning_rate"])
    if "beta_schedule" in document:
        assert saved["beta"]["schedule"] == document["beta_schedule"]
        assert saved["loss"]["free_bits"] == document["free_bits_lambda"]
    if "encoder_filters" in document:
        assert saved["model"]["options"]["encoder_filters"] == document["encoder_filters"]
    if "beta" in document:
        assert {key: saved["beta"][key] for key in document["beta"]} == document["beta"]


def test_focal_loss_is_refused_but_its_absence_accepted(tmp_path, capsys):
    _resolve(tmp_path, "use_focal_loss: false\n")
    assert "use_focal_loss →" in capsys.readouterr().err
    with pytest.raises(VaekitUsageError, match="use_focal_loss: true is not supported"):
        _resolve(tmp_path, "use_focal_loss: true\n")
