"""Every registered model builds, trains a step on CPU, and gets a gradient on every parameter."""

import pytest
import torch

from vaekit.config import LossConfig
from vaekit.errors import VaekitUsageError
from conftest import stored_batch
from vaekit.models import MODELS, count_parameters, create_model, list_models


def tiny(name: str, latent_dim: int = 3):
    """The registered model at its declared tiny options."""
    return create_model(name, latent_dim=latent_dim, options=MODELS.get(name).tiny_options)


def example_batch(name: str) -> torch.Tensor:
    """Four items of the model's stored format, shaped for its tiny options."""
    cls = MODELS.get(name)
    return stored_batch(cls.data_format, 4, torch.Generator().manual_seed(0), cls.tiny_options)


@pytest.mark.parametrize("name", list_models())
def test_model_trains_a_step(name):
    torch.manual_seed(0)
    model = tiny(name)
    model.on_epoch_start(1, 10)
    batch = example_batch(name)
    loss, terms, _ = model.objective(batch, 0.5, LossConfig(free_bits=0.1))
    assert terms.recon.shape == (4,) and terms.kl_per_dim.shape == (4, model.latent_dim)
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
    assert torch.isfinite(loss)
    sample = model.sample_prior(2)
    assert sample.shape[0] == 2 and sample.dtype == batch.dtype


@pytest.mark.parametrize("name", list_models())
def test_model_returns_fp32_under_bf16_autocast(name):
    """The contract that keeps losses and metrics in fp32 while the layers run in bf16."""
    torch.manual_seed(0)
    model = tiny(name)
    model.on_epoch_start(1, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu, sigma = model.encode(example_batch(name))
        output = model.decode(mu)
        scored = model.decode_for_likelihood(mu, example_batch(name))
        loss, terms, _ = model.objective(example_batch(name), 0.5, LossConfig())
    assert mu.dtype == sigma.dtype == output.dtype == scored.dtype == torch.float32
    assert loss.dtype == terms.recon.dtype == terms.kl_per_dim.dtype == torch.float32
    assert torch.isfinite(loss)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("name", list_models())
def test_declared_memory_format_is_applied(name):
    model = tiny(name)
    weights = [p for p in model.parameters() if p.dim() == 4]
    # a 1×1 kernel's weight is laid out the same both ways, so each weight is checked for the declared
    # layout rather than against the other one
    layout = torch.channels_last if model.prefers_channels_last else torch.contiguous_format
    assert all(p.is_contiguous(memory_format=layout) for p in weights)


def test_seed_conv2d_has_the_seed_layers():
    model = create_model("conv2d", latent_dim=10)
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(10, 32, 1), (32, 64, 2), (64, 128, 2)]
    assert model.encoder.dense[0].in_features == 2048
    deconvs = [m for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(d.in_channels, d.out_channels, d.kernel_size[0]) for d in deconvs] == [(128, 64, 4), (64, 32, 4)]
    assert count_parameters(model) == 792_542


def test_unknown_model_and_option_are_named():
    with pytest.raises(VaekitUsageError, match="conv2d"):
        create_model("conv2", latent_dim=2)
    with pytest.raises(VaekitUsageError, match="hidden"):
        create_model("conv2d", latent_dim=2, options={"hiden": 3})


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace", "bernoulli"])
def test_frame_likelihoods_are_lowest_at_the_truth(likelihood):
    model = create_model("conv2d_frames", latent_dim=2, options={"likelihood": likelihood})
    batch = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    target = model.prepare(batch).clamp(0.01, 0.99)
    as_output = torch.logit if likelihood == "bernoulli" else (lambda means: means)  # logits vs means
    exact = as_output(target)
    worse = as_output((target + 0.2).clamp(0.01, 0.99))
    assert (model.reconstruction_nll(exact, batch, "sum") < model.reconstruction_nll(worse, batch, "sum")).all()


def test_laplace_frame_likelihood_is_the_density_of_standard_deviation_sigma():
    model = create_model("conv2d_frames", latent_dim=2, options={"likelihood": "laplace", "sigma": 0.1})
    batch = torch.full((1, 8, 8, 3), 51, dtype=torch.uint8)  # 0.2
    scale = 0.1 / 2 ** 0.5
    nll = model.reconstruction_nll(torch.full((1, 3, 8, 8), 0.5), batch, "sum")
    assert nll.item() == pytest.approx(192 * (0.3 / scale + torch.log(torch.tensor(2 * scale)).item()), rel=1e-5)
    assert model.data_bin_width == 1 / 255  # a density over intensities, so bits per dimension are reported


def test_gaussian_frame_decoder_still_learns_where_its_output_is_far_off():
    """The Gaussian mean is the raw output: no sigmoid whose gradient vanishes on a black screen."""
    model = create_model("conv2d_frames", latent_dim=2, options={"likelihood": "gaussian"})
    batch = torch.full((1, 64, 64, 3), 255, dtype=torch.uint8)
    output = torch.full((1, 3, 64, 64), -8.0, requires_grad=True)  # a saturated sigmoid would give ~3e-4
    model.reconstruction_nll(output, batch, "sum").sum().backward()
    assert output.grad.abs().min() > 1.0
    assert model.frame_means(output).max() == 0.0  # shown and scored clamped to [0, 1]


def test_flatten_sends_a_channels_last_gradient_back_channels_last():
    from vaekit.models.layers import Flatten

    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = Flatten()(x)
    assert torch.equal(out, torch.nn.Flatten()(x))
    grad = torch.randn_like(out)
    out.backward(grad)
    assert torch.equal(x.grad, grad.view(2, 3, 4, 5)) and x.grad.is_contiguous(memory_format=torch.channels_last)
