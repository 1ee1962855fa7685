import torch
import pytest

from vaekit.training.losses import gaussian_kl_per_dim, kl_with_free_bits


def test_kl_is_zero_at_the_prior_and_matches_closed_form():
    mu, sigma = torch.zeros(2, 3), torch.ones(2, 3)
    assert torch.allclose(gaussian_kl_per_dim(mu, sigma), torch.zeros(2, 3))
    kl = gaussian_kl_per_dim(torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    assert kl.item() == pytest.approx(0.5 * (4 + 1 - 1 - torch.log(torch.tensor(4.0)).item()))


KL = torch.tensor([[0.1, 1.0], [0.5, 0.0]])  # (batch=2, d=2)


def test_no_free_bits_is_the_batch_mean_of_the_sum():
    assert kl_with_free_bits(KL, 0.0, "per_sample").item() == pytest.approx((1.1 + 0.5) / 2)


def test_per_sample_free_bits_clamp_each_sample():
    # sample 1: max(0.1,.3)+max(1,.3)=1.3; sample 2: .5+.3=.8; mean 1.05
    assert kl_with_free_bits(KL, 0.3, "per_sample").item() == pytest.approx(1.05)


def test_batch_mean_free_bits_clamp_the_mean_per_dimension():
    # dim means: 0.3, 0.5 -> clamp at 0.4 -> 0.4 + 0.5
    assert kl_with_free_bits(KL, 0.4, "batch_mean").item() == pytest.approx(0.9)


def test_free_bits_give_no_gradient_below_the_floor():
    kl = torch.tensor([[0.1, 1.0]], requires_grad=True)
    kl_with_free_bits(kl, 0.3, "per_sample").backward()
    assert kl.grad.tolist() == [[0.0, 1.0]]
