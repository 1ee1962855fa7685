"""Seed-document config files (flat keys such as learning_rate) are mapped onto our sections."""

import shlex
import subprocess
import sys
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
    ("train:\n  learnng_rate: 0.001\n", "'train.lr'"),  # a nested typo of an alias, not the nearest train key
    ("beta:\n  beta_maxx: 0.5\n", "'beta.max_beta'"),
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
SPEC_FILES = sorted((ROOT / "examples" / "configs" / "specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def splat_corpus(tmp_path_factory, arc_corpus):
    path = tmp_path_factory.mktemp("splats") / "splats.npz"
    result = CliRunner().invoke(app, ["collect", "gaussians", "--from", str(arc_corpus), "--count", "12",
                                      "--splats", "64", "--steps", "20", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_seed_file_trains_by_its_header_command(path, tmp_path, request, monkeypatch):
    """Each file's own first-line command, shortened to one epoch on a tiny model and corpus."""
    monkeypatch.chdir(ROOT)
    words = shlex.split(path.read_text().splitlines()[0][2:])[1:]  # drop "vaekit"
    domain = words[1]
    if domain == "arc":
        tiny = ["--data", str(request.getfixturevalue("arc_corpus")), *TINY_MODEL_FLAGS]
    elif domain == "ternary":
        tiny = ["--data", str(request.getfixturevalue("ternary_corpus"))]
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


def test_ternary_appendix_b_sections_map_onto_the_dual_model(tmp_path, capsys):
    config = _resolve(tmp_path, (ROOT / "examples" / "configs" / "specs" / "ternary_appendix_b.yaml").read_text()
                      .replace("rho_max: 0.7", "rho_max: 0.6").replace("temp_end: 0.2", "temp_end: 0.25"),
                      domain="ternary")
    options = config.model.options
    assert config.model.name == "ternary_dual" and options["statenet"] is True
    assert options["encoder_input"] == "values" and options["rho_knots"] == [[40, 0.1], [120, 0.3], [250, 0.6]]
    assert (options["beta_a"], options["beta_b"]) == ([0.3, 0.8], [0.0, 0.5])
    assert (options["temperature_a"], options["temperature_b"]) == ([1.0, 0.3], [0.9, 0.25])
    assert options["beta_warmup_epochs"] == 50 and options["lambda3_center"] == 0.3
    assert (config.train.epochs, config.train.lr, config.train.optimizer) == (400, 0.001, "adamw")
    assert (config.train.lr_schedule, config.train.lr_milestones, config.train.lr_values) == ("multistep", [50],
                                                                                              [0.0005])
    assert (config.loss.free_bits, config.train.grad_clip) == (0.5, 1.0)
    err = capsys.readouterr().err
    assert "VAE-B.temp_end → model.options.temperature_b" in err and "Regularization.eps_kl ignored" in err


@pytest.mark.parametrize("text, message", [
    ("VAE-A:\n  beta_warmup_epochs: 50\nVAE-B:\n  beta_warmup_epochs: 40\n",
     "'VAE-A.beta_warmup_epochs' and 'VAE-B.beta_warmup_epochs' both set model.options.beta_warmup_epochs"),
    ("VAE-A:\n  beta_start: 0.3\n", "'beta_end' is missing"),
    ("Training:\n  learning_rate: 0.001 → 0.0005 (after a while)\n", "learning_rate: cannot read"),
    ("Model:\n  input_dim: 12\n", "input_dim: 12; expected 9"),
    ("Training:\n  lerning_rate: 0.001\n", "unknown config key 'Training.lerning_rate' \\(did you mean 'train.lr'"),
])
def test_bad_appendix_b_values_are_refused_by_name(tmp_path, text, message):
    with pytest.raises(VaekitUsageError, match=message):
        _resolve(tmp_path, text, domain="ternary")


def test_the_core_config_path_does_not_import_the_translator():
    code = ("import sys, vaekit.config, vaekit.experiment, vaekit.cli; "
            "print('vaekit.spec_configs' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_rho_range_takes_the_model_default_knots():
    from vaekit.models import option_default
    from vaekit.spec_configs import translate

    nested, _ = translate({"Model": {"rho_min": 0.2, "rho_max": 0.9}}, "test")
    default = [list(k) for k in option_default("ternary_dual", "rho_knots")]
    assert nested["model"]["options"]["rho_knots"] == [[default[0][0], 0.2], default[1], [default[-1][0], 0.9]]
