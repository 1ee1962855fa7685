import pytest
import torch

from vaekit.config import Config, validate
from vaekit.errors import VaekitUsageError
from vaekit.training.loop import make_scheduler

REPORT_MILESTONES = [50, 120, 180, 220, 250, 300]
REPORT_VALUES = [5e-4, 3e-4, 1e-4, 5e-5, 2e-5, 1e-5]


def _lrs(train_cfg, epochs):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=train_cfg.lr)
    scheduler = make_scheduler(optimizer, train_cfg)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs, optimizer


def test_multistep_with_values_sets_the_reports_lr_at_each_knot():
    cfg = Config().train
    cfg.lr, cfg.lr_schedule, cfg.lr_milestones, cfg.lr_values = 1e-3, "multistep", REPORT_MILESTONES, REPORT_VALUES
    lrs, _ = _lrs(cfg, 320)
    expected = {0: 1e-3, 49: 1e-3, 50: 5e-4, 119: 5e-4, 120: 3e-4, 180: 1e-4, 220: 5e-5, 250: 2e-5, 299: 2e-5,
                300: 1e-5, 319: 1e-5}
    assert {e: lrs[e] for e in expected} == pytest.approx(expected, rel=1e-9)


def test_values_keep_a_models_own_lr_correction():
    """StateNet multiplies the lr in place each epoch; a milestone then moves it by the ratio of values."""
    cfg = Config().train
    cfg.lr, cfg.lr_schedule, cfg.lr_milestones, cfg.lr_values = 1e-3, "multistep", [2], [5e-4]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = make_scheduler(optimizer, cfg)
    optimizer.step()
    scheduler.step()
    optimizer.param_groups[0]["lr"] *= 1.05
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4 * 1.05)


@pytest.mark.parametrize("milestones, values", [([50, 120], [5e-4]), ([50], [-1.0]), ([120, 50], [5e-4, 3e-4])])
def test_bad_lr_values_are_refused_naming_the_key(milestones, values):
    cfg = Config()
    cfg.train.lr_schedule, cfg.train.lr_milestones, cfg.train.lr_values = "multistep", milestones, values
    with pytest.raises(VaekitUsageError, match=r"train\.lr_values must be empty or \d+ positive"):
        validate(cfg)
