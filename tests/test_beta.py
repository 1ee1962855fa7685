import pytest

from vaekit.config import BetaConfig
from vaekit.errors import VaekitUsageError
from vaekit.training.beta import BETA_SCHEDULES, beta_at, resolve_beta_config


def schedule(name, **overrides):
    return resolve_beta_config(BetaConfig(schedule=name, **overrides))


@pytest.mark.parametrize("epoch, expected", [(1, 0.1), (5, 0.5), (10, 1.0), (11, 1.05), (20, 1.5), (30, 2.0),
                                             (31, 2.0), (100, 2.0)])
def test_three_phase_knots(epoch, expected):
    assert beta_at(epoch, schedule("three_phase")) == pytest.approx(expected)


@pytest.mark.parametrize("epoch, expected", [(1, 0.0), (20, 0.0), (21, 0.1 / 60), (50, 0.05), (80, 0.1), (200, 0.1)])
def test_ultra_conservative_knots(epoch, expected):
    assert beta_at(epoch, schedule("ultra_conservative")) == pytest.approx(expected)


@pytest.mark.parametrize("epoch, expected", [(20, 0.0), (1, 0.01), (5, 0.05), (10, 0.1), (15, 0.05), (19, 0.01),
                                             (30, 0.1), (40, 0.0)])
def test_cyclical_is_a_triangle_wave(epoch, expected):
    assert beta_at(epoch, schedule("cyclical")) == pytest.approx(expected)


def test_linear_warmup_without_hold_reaches_max_at_ramp_epochs():
    cfg = schedule("linear_warmup", max_beta=0.5, warmup_epochs=0, ramp_epochs=50)
    assert beta_at(25, cfg) == pytest.approx(0.25)
    assert beta_at(50, cfg) == pytest.approx(0.5)
    assert beta_at(90, cfg) == pytest.approx(0.5)


@pytest.mark.parametrize("epoch, expected", [(1, 0.0), (10, 0.0), (35, 0.25), (60, 0.5), (100, 0.5)])
def test_linear_warmup_defaults_are_the_specification_signature(epoch, expected):
    """10 epochs at 0, then 50 epochs of ramp to 0.5."""
    assert beta_at(epoch, schedule("linear_warmup")) == pytest.approx(expected)


@pytest.mark.parametrize("epoch, expected", [(1, 0.2), (3, 0.6), (5, 1.0), (50, 1.0)])
def test_aggressive_reaches_one_in_five_epochs(epoch, expected):
    assert beta_at(epoch, schedule("aggressive")) == pytest.approx(expected)


def test_constant():
    assert beta_at(7, schedule("constant", max_beta=0.3)) == pytest.approx(0.3)


def test_schedule_defaults_are_filled_but_explicit_values_win():
    cfg = schedule("ultra_conservative", max_beta=0.2)
    assert (cfg.max_beta, cfg.warmup_epochs, cfg.ramp_epochs) == (0.2, 20, 60)


def test_every_schedule_is_non_negative_and_bounded_by_max():
    for name in BETA_SCHEDULES.names():
        cfg = schedule(name)
        values = [beta_at(e, cfg) for e in range(1, 150)]
        assert min(values) >= 0 and max(values) <= cfg.max_beta + 1e-12, name


def test_unknown_schedule_names_the_nearest():
    with pytest.raises(VaekitUsageError, match="cyclical"):
        schedule("cyclic")
