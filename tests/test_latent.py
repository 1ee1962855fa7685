"""Latent maths, targets and the evaluation block, without training anything."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.domains import get_domain
from vaekit.latent import dimension_stats, interpolation_codes, slerp, sweep_values, traversal_codes
from vaekit.likelihood import importance_sampled_log_likelihood
from vaekit.models import MODELS, create_model
from vaekit.models.ternary import _categorical_nll
from vaekit.report import evaluation_block
from vaekit.metrics import Metric
from vaekit.targets import Target


def test_traversal_sweeps_one_dimension_and_keeps_the_others_at_mu():
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    codes = traversal_codes(mu, dims=[2, 0], values=sweep_values(3.0, 3))
    assert codes.shape == (2, 2, 3, 3)
    assert codes[0, 0, :, 2].tolist() == [-3.0, 0.0, 3.0] and (codes[0, 0, :, :2] == mu[0, :2]).all()
    assert codes[1, 1, :, 0].tolist() == [-3.0, 0.0, 3.0] and (codes[1, 1, :, 1:] == 0).all()


def test_interpolations_start_and_end_at_the_endpoints():
    a, b = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    for method in ("linear", "spherical"):
        path = interpolation_codes(a, b, 5, method)
        assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    linear = interpolation_codes(a, b, 5, "linear")
    assert torch.allclose(linear[2], (a + b) / 2)
    # slerp: the direction turns at a constant rate, the norm goes linearly from 3 to 1
    spherical = slerp(a, b, torch.tensor([0.5]))[0]
    assert spherical.norm().item() == pytest.approx(2.0)
    assert math.atan2(spherical[1], spherical[0]) == pytest.approx(math.pi / 4)
    assert torch.allclose(slerp(a, 2 * a, torch.tensor([0.5]))[0], 1.5 * a)  # parallel: the straight line
    with pytest.raises(ValueError, match="cubic"):
        interpolation_codes(a, b, 3, "cubic")


def test_dimension_stats_order_by_kl_and_mark_inactive_dimensions():
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(500, 3, generator=generator) * torch.tensor([0.5, 0.0, 2.0])
    logvar = torch.log(torch.tensor([0.2, 1.0, 0.01])).expand(500, 3)
    stats = dimension_stats(mu, logvar)
    assert stats.order.tolist() == [2, 0, 1]
    assert stats.active.tolist() == [True, False, True]
    assert stats.kl[1].item() == pytest.approx(0.0, abs=1e-6)  # μ = 0, σ = 1: the prior itself


def test_target_bands_follow_the_specification():
    target = get_domain("arc").targets[0]
    assert target.met(0.923) is True and target.advice(0.923) is None
    assert target.met(0.87) is False
    assert "raise it to d = 32" in target.advice(0.87, {"latent_dim": 16})  # below d = 32 the dimension binds
    assert "train longer before raising d" in target.advice(0.87, {"latent_dim": 32})  # from d = 32 it underfits
    assert target.advice(0.82).startswith("80–85 %: reduce β to 1")
    assert target.advice(0.5).startswith("below 80 %: consider another architecture")
    maximum = Metric("recon_rot", "Recon loss rot", higher_is_better=False, target=Target(0.6)).target_check()
    assert maximum.met(0.5) is True and maximum.met(0.7) is False and maximum.met(float("nan")) is None
    assert Metric("x", "X", target=Target()).target_check().met(1.0) is None


def test_the_block_reproduces_the_specification_layout():
    metrics = {"samples": 10_000, "pixel_accuracy": 0.923, "kl_mean": 0.18, "active_dims": 10, "latent_dim": 10}
    assert evaluation_block(metrics, get_domain("arc"), "test")[:6] == [  # then the figures beside a baseline
        "Test Set Evaluation (10,000 images):",
        "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━",
        "Pixel-wise Accuracy:  92.3%  ✓",
        "Mean KL Divergence:   0.18",
        "Active Dimensions:    10/10",
        "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━",
    ]
    missed = evaluation_block({**metrics, "pixel_accuracy": 0.86}, get_domain("arc"), "val")
    assert missed[0] == "Validation Set Evaluation (10,000 images):" and missed[2].endswith("86.0%  ✗")
    assert missed[6].startswith("Pixel-wise Accuracy misses the target (≥ 90.0%). Advice: 85–90 %")


def test_beneath_the_seed_block_each_figure_stands_beside_the_all_background_answer():
    metrics = {"samples": 10_000, "pixel_accuracy": 0.923, "kl_mean": 0.18, "active_dims": 10, "latent_dim": 10,
               "nonbackground_accuracy": 0.601, "exact_grid_rate": 0.0205,
               "baselines": {"all-background": {"pixel_accuracy": 0.83, "nonbackground_accuracy": 0.0,
                                                "exact_grid_rate": 0.031}}}
    block = evaluation_block(metrics, get_domain("arc"), "test")
    assert block[2] == "Pixel-wise Accuracy:  92.3%  ✓" and block[5] == "━" * 32  # the seed's lines as it wrote them
    assert block[6:] == [
        "Beside the all-background answer:",
        "Pixel-wise Accuracy:        92.3%     (all-background 83.0%)",
        "Non-background Accuracy:    60.1%  ✗  (all-background 0.0%; target ≥ 65.0%)",
        "Exact-grid Rate:            2.05%     (all-background 3.10%)",
    ]
    assert evaluation_block({**metrics, "nonbackground_accuracy": 0.7}, get_domain("arc"), "test")[8].endswith(
        "70.0%  ✓  (all-background 0.0%; target ≥ 65.0%)")
    atari = evaluation_block({"samples": 3, "psnr": 30.0}, get_domain("atari"), "test")
    assert atari[-1] == "━" * 32 and not any(line.startswith("Beside") for line in atari)  # no further figures


def test_the_all_background_answer_is_scored_on_the_same_grids():
    from vaekit.config import LossConfig
    from vaekit.evaluation import evaluate

    grids = torch.zeros(4, 16, 16, dtype=torch.uint8)
    grids[1, 0, :8] = 3  # 8 coloured cells; grids 0, 2 and 3 stay empty
    grids[2, 5, 5] = 1
    torch.manual_seed(0)
    model = create_model("conv2d", 2, MODELS.get("conv2d").tiny_options)
    metrics = evaluate(model, grids, get_domain("arc"), LossConfig(), beta=1.0, baselines=True)
    answer = metrics["baselines"]["all-background"]
    assert answer["pixel_accuracy"] == pytest.approx(1 - 9 / 1024)
    assert answer["nonbackground_accuracy"] == 0.0
    assert answer["exact_grid_rate"] == 0.5
    assert "baselines" not in evaluate(model, grids, get_domain("arc"), LossConfig(), beta=1.0)  # asked for only


def test_every_domain_declares_its_block_and_identifiers():
    for name in ("arc", "atari", "ternary", "gaussians"):
        domain = get_domain(name)
        assert domain.targets and domain.item_noun != "items" and domain.item_identifiers, name


def test_the_dual_ternary_likelihood_is_pathway_a_over_both_halves_of_the_code():
    torch.manual_seed(0)
    model = create_model("ternary_dual", 4, {"hidden_a": [16], "hidden_b": [16]}).eval()
    model.on_epoch_start(200, 400)  # ρ = 0.55, temperatures below 1
    operations = torch.randint(-1, 2, (20, 9), dtype=torch.int8)
    z = torch.randn(20, 8)
    expected = -_categorical_nll(model.decode(z)[:, 0], operations, "sum", float(model.tau_a))
    assert torch.allclose(model.log_likelihood(operations, z), expected)
    z_other_b = z.clone()
    z_other_b[:, 4:] += 1.0
    assert not torch.allclose(model.log_likelihood(operations, z_other_b), expected)  # ρ mixes z_B into A
    estimate = importance_sampled_log_likelihood(model, operations, 16, torch.Generator().manual_seed(0))
    assert (estimate.iwae >= estimate.elbo).all() and (estimate.iwae < 0).all()  # a log-probability
