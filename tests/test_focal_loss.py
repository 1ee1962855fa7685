"""The focal loss as the grid models' training loss, with every reported likelihood kept the NLL."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODEL_FLAGS, TINY_MODEL_OPTIONS
from typer.testing import CliRunner

from vaekit.cli import app
from vaekit.config import LossConfig
from vaekit.domains import get_domain
from vaekit.errors import VaekitUsageError
from vaekit.evaluation import evaluate
from vaekit.experiment import resolve_config
from vaekit.likelihood import likelihood_metrics
from vaekit.models import MODELS, create_model, list_models
from vaekit.models.cell_losses import focal_loss
from vaekit.models.conv2d import CategoricalCells, CategoricalGridVAE

GRID_MODELS = [name for name in list_models() if issubclass(MODELS.get(name), CategoricalCells)]


def test_focal_with_gamma_zero_is_the_cross_entropy():
    logits, target = torch.randn(4, 10, 6, 6), torch.randint(0, 10, (4, 6, 6))
    assert torch.equal(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target, reduction="none"))


def test_focal_down_weights_confident_correct_cells():
    logits = torch.log(torch.tensor([[0.9, 0.1]])).view(1, 2, 1, 1).expand(2, 2, 1, 1)
    target = torch.tensor([0, 1]).view(2, 1, 1)  # p_t = 0.9 (confident, right), then p_t = 0.1
    expected = [-(0.1 ** 2) * math.log(0.9), -(0.9 ** 2) * math.log(0.1)]  # −(1 − p_t)^γ log p_t, γ = 2
    assert focal_loss(logits, target, gamma=2.0).flatten().tolist() == pytest.approx(expected, rel=1e-5)
    weighted = focal_loss(logits, target, gamma=2.0, alpha=(0.25, 0.75)).flatten().tolist()
    assert weighted == pytest.approx([0.25 * expected[0], 0.75 * expected[1]], rel=1e-5)


def test_focal_gradient_stays_finite_at_certainty_for_gamma_below_one():
    logits = torch.tensor([[60.0, -60.0]]).view(1, 2, 1, 1).requires_grad_()
    focal_loss(logits, torch.zeros(1, 1, 1, dtype=torch.long), gamma=0.5).sum().backward()
    assert torch.isfinite(logits.grad).all()


def _twins(name="conv2d", **focal):
    """The same weights trained with the cross-entropy and with the focal loss."""
    # the conv models at the CLI tests' size; any other grid model (a transformer) at its own tiny options
    options = {**TINY_MODEL_OPTIONS, **({"head_channels": 8} if name == "conv2d_ar" else {})} \
        if issubclass(MODELS.get(name), CategoricalGridVAE) else MODELS.get(name).tiny_options
    torch.manual_seed(0)
    plain = create_model(name, 3, options)
    focused = create_model(name, 3, {**options, "recon_loss": "focal", **focal})
    focused.load_state_dict(plain.state_dict())
    return plain, focused


@pytest.mark.parametrize("name", GRID_MODELS)
def test_objective_minimises_focal_and_reports_the_nll(name):
    plain, focused = _twins(name)
    batch, cfg = torch.randint(0, 10, (4, 16, 16), dtype=torch.uint8), LossConfig(free_bits=0.1)
    torch.manual_seed(1)
    loss, terms, logs = focused.objective(batch, 0.5, cfg)
    torch.manual_seed(1)
    plain_loss, plain_terms, plain_logs = plain.objective(batch, 0.5, cfg)
    kl = terms.kl_per_dim.clamp(min=0.1).sum(1).mean()
    focal = focal_loss(terms.output, batch, gamma=2.0).flatten(1).sum(1)
    assert torch.allclose(terms.recon, plain_terms.recon)  # the NLL, whatever the model trains with
    assert torch.allclose(terms.recon, F.cross_entropy(terms.output, batch.long(), reduction="none").flatten(1).sum(1))
    assert torch.allclose(loss, focal.mean() + 0.5 * kl)
    assert float(logs["recon_objective"]) == pytest.approx(float(focal.detach().mean()), rel=1e-6)
    assert plain_logs == {} and torch.allclose(plain_loss, plain_terms.recon.mean() + 0.5 * kl)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in focused.parameters())


def test_evaluation_and_iwae_of_a_focal_model_report_the_cross_entropy():
    plain, focused = _twins(focal_alpha=0.5)
    data = torch.randint(0, 10, (12, 16, 16), dtype=torch.uint8)
    domain = get_domain("arc")
    torch.manual_seed(2)
    focal_metrics = evaluate(focused, data, domain, LossConfig(), 1.0)
    torch.manual_seed(2)
    plain_metrics = evaluate(plain, data, domain, LossConfig(), 1.0)
    for key in ("recon", "elbo", "kl", "pixel_accuracy"):
        assert focal_metrics[key] == pytest.approx(plain_metrics[key], rel=1e-6), key
    assert focal_metrics["elbo"] == pytest.approx(-(focal_metrics["recon"] + focal_metrics["kl"]), rel=1e-6)
    assert focal_metrics["recon_objective"] < 0.5 * focal_metrics["recon"]  # α = 0.5 and (1 − p_t)^γ < 1
    assert focal_metrics["loss"] == pytest.approx(focal_metrics["recon_objective"] + focal_metrics["kl"], rel=1e-5)
    assert "recon_objective" not in plain_metrics
    assert likelihood_metrics(focused, data, 3, seed=0) == likelihood_metrics(plain, data, 3, seed=0)


@pytest.mark.parametrize("options, message", [
    ({"recon_loss": "dice"}, "recon_loss 'dice': expected one of cross_entropy, focal"),
    ({"focal_gamma": 1.0}, "apply only with model.options.recon_loss: focal"),
    ({"recon_loss": "focal", "focal_gamma": -1}, "focal_gamma -1: expected a number ≥ 0"),
    ({"recon_loss": "focal", "focal_alpha": [1.0, 2.0]}, "list of 10 positive numbers"),
])
def test_bad_loss_options_are_named(options, message):
    with pytest.raises(VaekitUsageError, match=message):
        create_model("conv2d", 3, {**TINY_MODEL_OPTIONS, **options})


def _resolve(tmp_path, text, domain="arc"):
    path = tmp_path / "seed.yaml"
    path.write_text(text)
    return resolve_config(domain, path, [])


def test_seed_use_focal_loss_maps_to_the_focal_option(tmp_path, capsys):
    config = _resolve(tmp_path, "use_focal_loss: true\nlearning_rate: 0.001\n")
    assert config.model.options == {"recon_loss": "focal", "focal_gamma": 2.0, "focal_alpha": None}
    assert "use_focal_loss → model.options.recon_loss, model.options.focal_gamma" in capsys.readouterr().err
    assert _resolve(tmp_path, "use_focal_loss: false\n").model.options == {}  # cross-entropy, the default
    assert _resolve(tmp_path, "use_focal_loss: false\n", "ternary").model.name == "ternary_mlp"  # not refused
    with pytest.raises(VaekitUsageError, match="use_focal_loss: expected true or false"):
        _resolve(tmp_path, "use_focal_loss: maybe\n")


@pytest.mark.parametrize("domain, text", [("ternary", "use_focal_loss: true\n"),
                                          ("gaussians", "model:\n  options:\n    recon_loss: focal\n")])
def test_models_without_a_loss_choice_refuse_the_option(tmp_path, domain, text):
    with pytest.raises(VaekitUsageError, match=r"model.options.recon_loss: model '\w+' has no choice of "
                                               r"reconstruction loss.*conv2d, conv2d_ar"):
        _resolve(tmp_path, text, domain)


def test_refusal_exits_2_before_any_file_is_written(tmp_path):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "atari", "--data", str(tmp_path / "none.npz"), "--runs-dir", str(runs),
                                      "--set", "model.options.focal_gamma=2", "--no-progress"])
    assert result.exit_code == 2
    assert "model.options.focal_gamma" in result.output and not runs.exists()


def test_tiny_focal_run_trains_and_records_both_figures(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "arc", "--data", str(arc_corpus), "--runs-dir", str(runs), "--run-id",
                                      "f", "--no-progress", *TINY_MODEL_FLAGS, "--epochs", "2", "--set", "threads=1",
                                      "--set", "model.options.recon_loss=focal"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (runs / "f" / "metrics.jsonl").read_text().splitlines()]
    assert records[1]["train_loss"] < records[0]["train_loss"]
    assert all(0 < r["val_recon_objective"] < r["val_recon"] for r in records)
    result = CliRunner().invoke(app, ["eval", "f", "--runs-dir", str(runs), "--nll-samples", "2"])
    assert result.exit_code == 0, result.output
    test = json.loads((runs / "f" / "results" / "metrics.json").read_text())["test"]
    assert test["elbo"] == pytest.approx(-(test["recon"] + test["kl"]), rel=1e-5)
    assert test["recon_objective"] < test["recon"] and test["iwae_log_likelihood"] >= test["iwae_elbo"]
