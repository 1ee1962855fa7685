"""The IWAE bound against a model whose log p(x) is known exactly: a linear-Gaussian VAE."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vaekit.likelihood import importance_sampled_log_likelihood, likelihood_metrics
from vaekit.models.base import SIGMA_FLOOR, GaussianVAE

DATA_DIM, LATENT_DIM, NOISE_SIGMA = 5, 2, 0.5


@pytest.fixture(autouse=True)
def one_thread():
    """Thousands of tiny decodes: on a shared 2-core machine two threads spend ten times longer waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class LinearEncoder(nn.Module):
    """μ = A x + c and a fixed σ per dimension."""

    def __init__(self, A, c, sigma):
        super().__init__()
        self.A, self.c, self.sigma = nn.Parameter(A), nn.Parameter(c), nn.Parameter(sigma)

    def forward(self, x):
        return x @ self.A.T + self.c, self.sigma.expand(x.shape[0], -1)


class LinearGaussianVAE(GaussianVAE):
    """x = W z + b + ε, z ~ N(0, I), ε ~ N(0, σ² I): log p(x) = log N(x; b, W Wᵀ + σ² I)."""

    def __init__(self, W, b, encoder):
        super().__init__()
        self.latent_dim = W.shape[1]
        self.W, self.b = nn.Parameter(W), nn.Parameter(b)
        self.encoder = encoder
        self.decoder = nn.Identity()

    def prepare(self, batch):
        return batch

    def decode(self, z):
        return z @ self.W.T + self.b

    def reconstruction_nll(self, output, batch, reduction):
        per_element = (batch - output).pow(2) / (2 * NOISE_SIGMA**2) + math.log(NOISE_SIGMA) + 0.5 * math.log(2 * math.pi)
        return per_element.sum(1) if reduction == "sum" else per_element.mean(1)

    def exact_log_likelihood(self, x):
        covariance = self.W @ self.W.T + NOISE_SIGMA**2 * torch.eye(self.W.shape[0], dtype=x.dtype)
        return torch.distributions.MultivariateNormal(self.b, covariance).log_prob(x)


def orthogonal_model(sigma_factor: float, mean_shift: float) -> LinearGaussianVAE:
    """W with orthogonal columns, so the true posterior is diagonal: N(S Wᵀ(x − b)/σ², S) with
    S = (I + WᵀW/σ²)⁻¹. The encoder is exact for sigma_factor 1 and mean_shift 0."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(DATA_DIM, LATENT_DIM, dtype=torch.float64))
    W = q * torch.tensor([2.0, 0.7], dtype=torch.float64)
    b = torch.randn(DATA_DIM, dtype=torch.float64)
    S = torch.linalg.inv(torch.eye(LATENT_DIM, dtype=torch.float64) + W.T @ W / NOISE_SIGMA**2)
    A = S @ W.T / NOISE_SIGMA**2
    sigma = torch.sqrt(torch.diagonal(S)) * sigma_factor - SIGMA_FLOOR  # encode() adds the floor back
    encoder = LinearEncoder(A, -A @ b + mean_shift, sigma)
    return LinearGaussianVAE(W, b, encoder)


def draw_data(model, n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(n, LATENT_DIM, generator=generator, dtype=torch.float64)
    noise = NOISE_SIGMA * torch.randn(n, DATA_DIM, generator=generator, dtype=torch.float64)
    return (z @ model.W.T + model.b + noise).detach()


def estimate(model, data, samples, seed=0, max_decodes=4096):
    generator = torch.Generator().manual_seed(seed)
    return importance_sampled_log_likelihood(model, data, samples, generator, max_decodes)


def test_an_exact_posterior_gives_the_exact_likelihood_with_one_sample():
    model = orthogonal_model(sigma_factor=1.0, mean_shift=0.0)
    data = draw_data(model, 64)
    truth = model.exact_log_likelihood(data).detach()
    result = estimate(model, data, samples=1)
    assert torch.allclose(result.iwae, truth, rtol=0, atol=1e-9) and torch.allclose(result.elbo, truth, rtol=0, atol=1e-9)


def test_the_bound_tightens_with_k_and_reaches_the_truth_within_monte_carlo_error():
    model = orthogonal_model(sigma_factor=1.6, mean_shift=0.4)  # a deliberately poor posterior
    data = draw_data(model, 2000)
    truth = model.exact_log_likelihood(data).detach()
    gaps = {}
    for k in (1, 4, 32, 256):
        result = estimate(model, data, samples=k, max_decodes=65536)
        assert (result.iwae >= result.elbo - 1e-12).all()  # Jensen: every item, every draw
        gaps[k] = float((truth - result.iwae).mean())
    # Measured: 2.17, 0.44, 0.039, 0.005 nats; the standard errors of these means over 2,000
    # items are 0.07, 0.026, 0.006, 0.002, so each step down is ≥ 5 of them.
    assert gaps[1] > 1.0 and gaps[1] > gaps[4] > gaps[32] > gaps[256] > -0.01
    # At K = 2000 the bias (≈ Var(w)/(2K·E[w]²), ≈ 0.0007 nats here) is about the Monte-Carlo error
    # of the mean over items (≈ 0.0008 nats); measured gap 0.0016: the estimate matches log p(x).
    final = truth - estimate(model, data, samples=2000, seed=5, max_decodes=65536).iwae
    standard_error = float(final.std() / math.sqrt(len(final)))
    assert abs(float(final.mean())) < 4 * standard_error + 0.002


def test_chunks_under_the_memory_cap_keep_each_item_with_its_own_codes():
    # With the exact posterior every weight equals p(x_i), so any mix-up of items and codes
    # between chunks, or a wrong log K, would show.
    model = orthogonal_model(sigma_factor=1.0, mean_shift=0.0)
    data = draw_data(model, 10)
    truth = model.exact_log_likelihood(data).detach()
    for max_decodes in (7, 20, 10_000):  # 1 item × 7 codes; 1 × 20; 10 items × 50 codes at once
        result = estimate(model, data, samples=50, max_decodes=max_decodes)
        assert torch.allclose(result.iwae, truth, rtol=0, atol=1e-9), max_decodes


def test_bits_per_dim_follow_the_bin_width():
    model = orthogonal_model(sigma_factor=1.0, mean_shift=0.0)
    data = draw_data(model, 32)
    model.data_bin_width = 1.0
    metrics = likelihood_metrics(model, data, samples=4, seed=0)
    truth = float(model.exact_log_likelihood(data).mean().detach())
    assert metrics["iwae_log_likelihood"] == pytest.approx(truth, abs=1e-9)
    assert metrics["iwae_bits_per_dim"] == pytest.approx(-truth / (DATA_DIM * math.log(2)))
    model.data_bin_width = 0.5
    half = likelihood_metrics(model, data, samples=4, seed=0)["iwae_bits_per_dim"]
    assert half == pytest.approx(metrics["iwae_bits_per_dim"] + 1.0)  # halving the bin costs one bit
    model.data_bin_width = None
    unnormalised = likelihood_metrics(model, data, samples=4, seed=0)
    assert "iwae_bits_per_dim" not in unnormalised and unnormalised["iwae_normalised"] is False
