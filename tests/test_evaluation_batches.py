"""The evaluation batch: sized by the items, and the metrics the same figures at any batch."""

from __future__ import annotations

import math

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


def test_metrics_are_the_same_figures_at_any_batch():
    """Counts and accuracies exactly; sums of the sampled loss terms up to fp32's order of summation."""
    torch.manual_seed(0)
    model = create_model("conv2d", 4, {"channels": [4, 4, 4], "hidden": 8, "decoder_channels": [4, 4]})
    data = torch.randint(0, 10, (600, 16, 16), dtype=torch.uint8)
    results = []
    for batch_size in (None, 1024, 64):
        torch.manual_seed(1)
        results.append(evaluate(model, data, get_domain("arc"), LossConfig(), 1.0, batch_size=batch_size))
    shipped = results[0]
    for other in results[1:]:
        assert other.keys() == shipped.keys()
        for key, value in shipped.items():
            if key in ("pixel_accuracy", "nonbackground_accuracy", "exact_grid_rate"):
                assert value == other[key], key
            elif isinstance(value, float) and not math.isnan(value):
                assert math.isclose(value, other[key], rel_tol=1e-6, abs_tol=1e-9), key
            elif isinstance(value, float):
                assert math.isnan(other[key]), key  # an empty group
            else:
                assert value == other[key], key
