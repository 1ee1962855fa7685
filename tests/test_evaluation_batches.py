"""The evaluation batch: sized by the items, and the metrics the same figures at any batch."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.config import LossConfig
from vaekit.domains import get_domain
from vaekit.evaluation import EVAL_BATCH_MAX, evaluate, evaluation_batch_size
from vaekit.models import create_model


def test_the_batch_holds_fewer_large_items():
    assert evaluation_batch_size(torch.zeros(10, 16, 16, dtype=torch.uint8)) == EVAL_BATCH_MAX  # ARC grids
    assert evaluation_batch_size(torch.zeros(10, 64, 64, 3, dtype=torch.uint8)) == 42  # Atari frames
    assert evaluation_batch_size(torch.zeros(10, 9)) == EVAL_BATCH_MAX
    assert evaluation_batch_size(torch.zeros(2, 1024, 1024)) == 1


def test_metrics_do_not_depend_on_the_batch_split_beyond_the_monte_carlo_draws():
    """Accuracies, z-swap included, exactly; the analytic KL up to fp32's order of summation; the
    terms drawn from q(z|x) (loss, recon, ELBO) by the draws, which follow the batch split."""
    torch.manual_seed(0)
    model = create_model("conv2d", 4, {"channels": [4, 4, 4], "hidden": 8, "decoder_channels": [4, 4]})
    data = torch.randint(0, 10, (600, 16, 16), dtype=torch.uint8)
    results = []
    for batch_size in (None, 1024, 64, 42):
        torch.manual_seed(1)
        results.append(evaluate(model, data, get_domain("arc"), LossConfig(), 1.0, batch_size=batch_size,
                                z_swap=True))
    shipped = results[0]
    assert "zswap_pixel_accuracy" in shipped
    for other in results[1:]:
        assert other.keys() == shipped.keys()
        for key, value in shipped.items():
            if key.endswith(("pixel_accuracy", "nonbackground_accuracy", "exact_grid_rate")) or "density" in key:
                assert value == other[key] or (math.isnan(value) and math.isnan(other[key])), key
            elif key.startswith("kl"):
                assert value == pytest.approx(other[key], rel=1e-6, abs=1e-9), key
            elif key in ("loss", "recon", "elbo"):
                assert value == pytest.approx(other[key], rel=1e-3), key
