import json
import math

import pytest
import torch
from typer.testing import CliRunner

from vaekit import load_corpus
from vaekit.cli import app
from vaekit.domains.splats import cell_layout, fit_splats, grid_shape, morton_order, render
from vaekit.experiment import resolve_config
from vaekit.models import create_model

runner = CliRunner()


def one_splat(x, y, sx, sy, theta, rgb):
    return torch.tensor([[[x, y, math.log(sx), math.log(sy), theta, *rgb]]])


def test_renderer_matches_the_formula_for_a_hand_placed_gaussian():
    image = render(one_splat(0.5, 0.5, 0.1, 0.05, math.pi / 6, (1.0, 0.5, 0.0)), 16, 16)[0]
    # Pixel (row 9, col 8) has centre ((8+0.5)/16, (9+0.5)/16) = (0.53125, 0.59375).
    dx, dy = 0.53125 - 0.5, 0.59375 - 0.5
    u = dx * math.cos(math.pi / 6) + dy * math.sin(math.pi / 6)
    v = -dx * math.sin(math.pi / 6) + dy * math.cos(math.pi / 6)
    expected = math.exp(-0.5 * (u**2 / 0.1**2 + v**2 / 0.05**2))
    assert image[9, 8, 0].item() == pytest.approx(expected, rel=1e-5)
    assert image[9, 8, 1].item() == pytest.approx(expected / 2, rel=1e-5)
    assert image[..., 2].abs().max() == 0
    assert image[..., 0].argmax().item() in (7 * 16 + 7, 7 * 16 + 8, 8 * 16 + 7, 8 * 16 + 8)  # peak at centre


def test_rotating_a_splat_by_pi_renders_the_same_image():
    a = render(one_splat(0.4, 0.6, 0.08, 0.03, 0.3, (1, 1, 1)), 16, 16)
    b = render(one_splat(0.4, 0.6, 0.08, 0.03, 0.3 + math.pi, (1, 1, 1)), 16, 16)
    assert torch.allclose(a, b, atol=1e-6)


def test_fit_lowers_the_error_on_a_tiny_image():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    image = torch.stack([xx, yy, (xx - yy).abs()], -1)[None]
    _, before = fit_splats(image, 64, steps=0)
    params, after = fit_splats(image, 64, steps=60)
    assert after.item() > before.item() + 3  # dB
    assert params.shape == (1, 64, 8) and (params[..., 4] >= 0).all() and (params[..., 4] < math.pi).all()


def test_morton_order_keeps_neighbours_together():
    xy = torch.tensor([[[0.9, 0.9], [0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.12, 0.12]]])
    assert morton_order(xy)[0].tolist() == [1, 4, 2, 3, 0]  # quadrants in Z order: TL, TR, BL, BR


def test_cells_tile_the_image_in_spatial_order():
    assert grid_shape(512, 64, 64) == (32, 16) and grid_shape(64, 16, 16) == (8, 8)
    centres, (dx, dy) = cell_layout(512, 64, 64)
    assert (dx, dy) == (1 / 16, 1 / 32)
    assert len({(round(x, 6), round(y, 6)) for x, y in centres.tolist()}) == 512  # every cell once
    steps = (centres[1:] - centres[:-1]).norm(dim=-1)
    shuffled = centres[torch.randperm(512, generator=torch.Generator().manual_seed(0))]
    assert steps.mean() < (shuffled[1:] - shuffled[:-1]).norm(dim=-1).mean() / 4


def test_fitted_splats_stay_in_their_cells():
    image = torch.rand(2, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    params, _ = fit_splats(image, 64, steps=40, lr=0.05)
    centres, spacing = cell_layout(64, 16, 16)
    assert ((params[..., :2] - centres).abs() <= torch.tensor(spacing) + 1e-6).all()


@pytest.mark.parametrize("name", ["conv1d_gaussian", "resnet_conv1d_gaussian"])
def test_per_group_loss_equals_the_formula(name):
    model = create_model(name, latent_dim=8)
    target = torch.randn(2, 8, 512)
    target[:, 4] = torch.rand(2, 512) * math.pi
    output = torch.randn(2, 9, 512)
    t = model.prepare(target)
    xy = (output[:, 0:2] - t[:, 0:2]).pow(2).sum(1)
    scale = (output[:, 2:4] - t[:, 2:4]).pow(2).sum(1)
    predicted_theta = 0.5 * torch.atan2(output[:, 5], output[:, 4])
    rot = 1 - torch.cos(2 * (predicted_theta - target[:, 4]))
    feat = (output[:, 6:9] - t[:, 6:9]).pow(2).sum(1)
    per_group = (xy / 2 + scale / 2 + rot / 1 + feat / 3).sum(1)
    assert torch.allclose(model.reconstruction_nll(output, target, "sum"), per_group, rtol=1e-4)
    model.loss_weighting = "equal"
    assert torch.allclose(model.reconstruction_nll(output, target, "sum"), (xy + scale + rot + feat).sum(1), rtol=1e-4)


def test_rotation_loss_does_not_punish_theta_plus_pi():
    model = create_model("conv1d_gaussian", latent_dim=8)
    target = torch.zeros(1, 8, 512)
    target[:, 4] = 0.2
    output = model.prepare(target.clone())
    flipped = target.clone()
    flipped[:, 4] = 0.2 + math.pi
    assert model.group_errors(output, flipped)["rot"].item() == pytest.approx(0.0, abs=1e-6)


def test_angle_rotation_is_one_z_scored_channel_scored_by_squared_error():
    model = create_model("conv1d_gaussian", latent_dim=8, options={"rotation": "angle", "theta_norm": [1.5, 0.5]})
    target = torch.randn(2, 8, 512)
    target[:, 4] = torch.rand(2, 512) * math.pi
    t = model.prepare(target)
    assert t.shape == (2, 8, 512) and torch.allclose(t[:, 4], (target[:, 4] - 1.5) / 0.5)
    assert model.encoder(t)[0].shape == (2, 8) and model.decode(torch.zeros(3, 8)).shape == (3, 8, 512)
    output = torch.randn(2, 8, 512)
    rot = (output[:, 4] - t[:, 4]).pow(2)
    assert torch.allclose(model.group_errors(output, target)["rot"], rot.mean(1))
    # θ and θ + π are one ellipse, but this encoding (the seed's) scores them apart.
    flipped = target.clone()
    flipped[:, 4] = target[:, 4] + math.pi
    assert model.group_errors(t, flipped)["rot"].min() > 30
    assert torch.allclose(model.predicted_angle(t), target[:, 4], atol=1e-5)  # decoded back, unwrapped


def test_rotation_encoding_is_refused_by_name():
    from vaekit.errors import VaekitUsageError
    with pytest.raises(VaekitUsageError, match="conv1d_gaussian': rotation 'quaternion': expected one of embedding, angle"):
        create_model("conv1d_gaussian", latent_dim=8, options={"rotation": "quaternion"})


def test_seed_scale_rotation_loss_is_theta_mse_over_its_variance(tmp_path):
    from vaekit.domains import get_domain
    domain = get_domain("gaussians")
    model = create_model("conv1d_gaussian", latent_dim=8, options={"length": 64})
    batch = torch.randn(4, 8, 64)
    batch[:, 4] = torch.rand(4, 64) * math.pi
    output = model.prepare(batch)
    output[:, 4:6] = torch.tensor([1.0, 0.0])[None, :, None]  # every θ̂ = 0
    sums = domain.quality_sums(model, batch, output)
    metrics = {k: float(num) / den for k, (num, den) in sums.items()}
    out = domain.derived_metrics(metrics)
    theta = batch[:, 4]
    assert out["recon_rot_seed_scale"] == pytest.approx((theta.pow(2).mean() / theta.var(unbiased=False)).item(),
                                                        rel=1e-4)


def test_every_gaussians_config_loads():
    from pathlib import Path
    folder = Path(__file__).resolve().parents[1] / "examples" / "configs" / "gaussians"
    names = sorted(p.name for p in folder.glob("*.yaml"))
    seed_experiments = ["conv1d_base.yaml", "conv1d_beta0.5.yaml", "conv1d_512d.yaml", "conv1d_512d_beta0.5.yaml",
                        "conv1d_512d_beta0.1.yaml", "conv1d_512d_beta0.yaml", "resnet_conv1d_512d.yaml"]
    fixes = ["conv1d_512d_beta0_weighted.yaml", "conv1d_512d_beta0.01.yaml"]  # run_007's change alone; ours
    assert names == sorted([*seed_experiments, *fixes])
    for path in folder.glob("*.yaml"):
        config = resolve_config("gaussians", path, [])
        as_the_seed_ran = path.name in seed_experiments and not path.name.startswith("resnet")
        options = config.model.options
        assert (options["loss_weighting"] == "equal") == as_the_seed_ran, path.name
        assert (options["rotation"] == "angle") == (path.name != "conv1d_512d_beta0.01.yaml"), path.name
        assert config.train.batch_size == 32 and config.train.epochs == 100 and config.train.lr == 1e-3
        assert config.beta.schedule == "linear_warmup" and (config.beta.warmup_epochs, config.beta.ramp_epochs) == (0, 50)


def test_collect_and_train_end_to_end(tmp_path, arc_corpus):
    corpus = tmp_path / "splats.npz"
    result = runner.invoke(app, ["collect", "gaussians", "--from", str(arc_corpus), "--count", "12",
                                 "--splats", "64", "--steps", "20", "--out", str(corpus)])
    assert result.exit_code == 0, result.output
    loaded = load_corpus(corpus)
    assert loaded.arrays["train"].shape[1:] == (8, 64) and loaded.arrays["norm_std"].shape == (8,)
    assert loaded.metadata["mean_fit_psnr"] > 10
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "gaussians", "--data", str(corpus), "--runs-dir", str(runs),
                                 "--run-id", "g", "--epochs", "2", "--latent", "8", "--no-progress",
                                 "--set", "model.options={length: 64}", "--set", "train.pictures_every=2"])
    assert result.exit_code == 0, result.output
    assert (runs / "g" / "results" / "reconstructions_epoch_002.png").read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(app, ["eval", "g", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "Predicted/true std, rot" in result.stdout
    metrics = json.loads((runs / "g" / "results" / "metrics.json").read_text())["test"]
    for group in ("xy", "scale", "rot", "feat"):
        assert f"recon_{group}" in metrics and f"std_ratio_{group}" in metrics
    assert not any(key.startswith("_") for key in metrics)
    assert 0 <= metrics["recon_rot_seed_scale"] < 10
    config = json.loads(json.dumps(__import__("yaml").safe_load((runs / "g" / "config.yaml").read_text())))
    theta = loaded.arrays["train"][:, 4]
    assert config["model"]["options"]["theta_norm"] == pytest.approx([theta.mean(), theta.std()], abs=1e-5)
    result = runner.invoke(app, ["sample", "g", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert (runs / "g" / "results" / "reconstructions.png").is_file()
    result = runner.invoke(app, ["report", "g", "--runs-dir", str(runs)], terminal_width=200)
    assert result.exit_code == 0, result.output
    # the run's model options, the command's before those inferred from the corpus
    assert "Model options" in result.stdout and "length=64, theta_norm=[" in result.stdout
