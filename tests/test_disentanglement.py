"""The disentanglement metrics on codes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from vaekit.disentanglement import dci, factor_vae_score, mig, sap

SIZES = (3, 5, 4, 6)
N = 1500


@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, size, N) for size in SIZES], axis=1)


def faithful(factors, noise=0.02, seed=1):
    """Each factor in its own dimension, plus small noise, plus one dimension of pure noise."""
    rng = np.random.default_rng(seed)
    scaled = factors / np.array(SIZES) + rng.normal(0, noise, factors.shape)
    return np.concatenate([scaled, rng.normal(0, 1, (len(factors), 1))], axis=1)


def all_metrics(codes, factors) -> dict[str, float]:
    return {"mig": mig(codes, factors), **dci(codes, factors), "sap": sap(codes, factors)}


def test_codes_equal_to_the_factors_score_near_one(factors):
    scores = all_metrics(faithful(factors), factors)
    assert scores["mig"] > 0.9
    assert scores["disentanglement"] > 0.9 and scores["completeness"] > 0.9 and scores["informativeness"] > 0.95
    # SAP (accuracy-based, discrete factors) is a gap above a second-best dimension that still
    # guesses at chance, and a linear SVM on one dimension cannot pick out a factor's middle values:
    # its ceiling is below 1 (next test)
    assert scores["sap"] > 0.3


def test_sap_of_two_valued_factors_equal_to_the_codes_is_one_minus_chance(factors):
    binary = factors % 2
    assert sap(faithful(binary), binary) == pytest.approx(0.5, abs=0.05)


def test_random_codes_score_near_zero(factors):
    codes = np.random.default_rng(2).normal(size=(N, 5))
    scores = all_metrics(codes, factors)
    assert scores["mig"] < 0.02
    assert scores["disentanglement"] < 0.2 and scores["completeness"] < 0.2
    assert scores["sap"] < 0.05


def test_permuted_and_rescaled_codes_score_as_the_original(factors):
    codes = faithful(factors)
    original = all_metrics(codes, factors)
    changed = codes[:, [3, 0, 4, 2, 1]] * np.array([10.0, -0.1, 3.0, 1e3, 0.5]) + 7.0
    for name, value in all_metrics(changed, factors).items():
        assert value == pytest.approx(original[name], abs=0.02), name


def test_mixing_two_factors_lowers_disentanglement(factors):
    codes = faithful(factors)
    mixed = codes.copy()
    mixed[:, 0], mixed[:, 1] = codes[:, 0] + codes[:, 1], codes[:, 0] - codes[:, 1]
    apart, together = all_metrics(codes, factors), all_metrics(mixed, factors)
    assert together["mig"] < apart["mig"] - 0.1
    assert together["disentanglement"] < apart["disentanglement"] - 0.1
    assert together["sap"] < apart["sap"]


def test_factor_values_need_not_be_zero_based(factors):
    codes = faithful(factors)
    assert mig(codes, factors * 2 - 3) == pytest.approx(mig(codes, factors))


@pytest.mark.parametrize("metric", [mig, dci, sap])
def test_bad_input_names_the_argument(metric, factors):
    codes = faithful(factors)
    with pytest.raises(ValueError, match="codes and factors: different lengths"):
        metric(codes[:-1], factors)
    with_nan = codes.copy()
    with_nan[5, 2] = np.nan
    with pytest.raises(ValueError, match="codes: NaN"):
        metric(with_nan, factors)
    constant = factors.copy()
    constant[:, 2] = 1
    with pytest.raises(ValueError, match="factors: column 2 has a single value"):
        metric(codes, constant)
    with pytest.raises(ValueError, match="codes: expected a non-empty 2D array"):
        metric(codes[:, 0], factors)


class GridSource:
    """Items are the factor indices themselves (as floats)."""

    factor_sizes = SIZES

    def items_for_factors(self, factors):
        return factors.astype(np.float64)


def test_factor_vae_score_separates_a_faithful_from_a_mixing_encoder():
    rng = np.random.default_rng(0)
    faithful_encoder = lambda items: items + rng.normal(0, 0.05, items.shape)  # noqa: E731
    hadamard = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    mixing_encoder = lambda items: (items / np.array(SIZES)) @ hadamard  # every dimension mixes every factor  # noqa: E731
    sizes = dict(batch_size=32, num_train=200, num_eval=100, num_variance=1000)
    good = factor_vae_score(faithful_encoder, GridSource(), **sizes)
    bad = factor_vae_score(mixing_encoder, GridSource(), **sizes)
    assert good["factor_vae_score"] == 1.0 and good["factor_vae_active_dims"] == 4
    assert bad["factor_vae_score"] < 0.8


def test_factor_vae_score_leaves_out_collapsed_dimensions():
    collapsed = lambda items: np.concatenate([items, np.full((len(items), 2), 0.3)], axis=1)  # noqa: E731
    score = factor_vae_score(collapsed, GridSource(), batch_size=16, num_train=50, num_eval=50, num_variance=500)
    assert score["factor_vae_active_dims"] == 4 and score["factor_vae_score"] == 1.0
