import pytest
import torch

from vaekit.config import Config, validate
from vaekit.errors import VaekitUsageError
from vaekit.training.lr_schedules import load_scheduler_state, make_scheduler

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


class CorrectingModel:
    """Stands for the dual ternary model: asks for the lr ×factors[i] after epoch i + 1."""

    corrects_lr = True

    def __init__(self, factors):
        self.factors, self.epoch = factors, 0

    def lr_factor(self):
        return self.factors[self.epoch - 1]


def _corrected_lrs(cfg, factors, resume_after=None):
    """The lr of each epoch under the run's scheduler, optionally rebuilt from its state (a resume)."""
    model = CorrectingModel(factors)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = make_scheduler(optimizer, cfg, model)
    lrs = []
    for epoch in range(1, len(factors) + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        model.epoch = epoch
        scheduler.step()
        if epoch == resume_after:
            saved = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
            scheduler = make_scheduler(optimizer, cfg, model)
            optimizer.load_state_dict(saved["optimizer"])
            load_scheduler_state(scheduler, saved["scheduler"])
    return lrs


def test_values_keep_a_models_own_lr_correction():
    """The model's correction multiplies the lr after the schedule's step each epoch, and carries
    through the milestones: at a milestone the lr moves by the ratio of the values."""
    cfg = Config().train
    cfg.lr, cfg.lr_schedule, cfg.lr_milestones, cfg.lr_values = 1e-3, "multistep", [2, 4], [5e-4, 1e-4]
    factors = [1.05, 0.98, 1.0, 1.02, 1.0]
    expected = [1e-3, 1e-3 * 1.05, 5e-4 * 1.05 * 0.98, 5e-4 * 1.05 * 0.98, 1e-4 * 1.05 * 0.98 * 1.02]
    assert _corrected_lrs(cfg, factors) == pytest.approx(expected, rel=1e-12)
    assert _corrected_lrs(cfg, factors, resume_after=2) == pytest.approx(expected, rel=1e-12)


def test_a_constant_schedule_resets_the_correction_each_epoch_as_before():
    """With lr_schedule 'constant' the schedule sets the initial lr each epoch and the correction
    multiplies that: the lr of epoch e + 1 is lr · factor(e), never a product of factors."""
    cfg = Config().train
    cfg.lr, cfg.lr_schedule = 1e-3, "constant"
    assert _corrected_lrs(cfg, [1.05, 0.95, 1.0, 1.0]) == pytest.approx([1e-3, 1.05e-3, 0.95e-3, 1e-3], rel=1e-12)


def test_last_pt_of_a_run_written_before_the_chained_scheduler_resumes_with_the_same_lrs():
    """last.pt of the ternary v5.5 config written by vaekit before the lr correction moved into the
    scheduler (MilestoneValuesLR's state after epoch 1 of milestones [1, 2, 3])."""
    cfg = Config().train
    cfg.lr, cfg.lr_schedule, cfg.lr_milestones, cfg.lr_values = 1e-3, "multistep", [1, 2, 3], [5e-4, 3e-4, 2e-4]
    old_state = {"factors": {1: 0.5, 2: 0.6, 3: 2e-4 / 3e-4}, "base_lrs": [0.001], "last_epoch": 1,
                 "_step_count": 2, "_is_initial": False, "_get_lr_called_within_step": False, "_last_lr": [0.0005]}
    model = CorrectingModel([1.01, 1.02, 1.03])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = make_scheduler(optimizer, cfg, model)
    optimizer.param_groups[0]["lr"] = 5e-4 * 1.01  # as the old checkpoint's optimizer holds it
    load_scheduler_state(scheduler, old_state)
    lrs = []
    for epoch in (2, 3):
        optimizer.step()
        model.epoch = epoch
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([3e-4 * 1.01 * 1.02, 2e-4 * 1.01 * 1.02 * 1.03], rel=1e-12)


@pytest.mark.parametrize("milestones, values", [([50, 120], [5e-4]), ([50], [-1.0]), ([120, 50], [5e-4, 3e-4])])
def test_bad_lr_values_are_refused_naming_the_key(milestones, values):
    cfg = Config()
    cfg.train.lr_schedule, cfg.train.lr_milestones, cfg.train.lr_values = "multistep", milestones, values
    with pytest.raises(VaekitUsageError, match=r"train\.lr_values must be empty or \d+ positive"):
        validate(cfg)
