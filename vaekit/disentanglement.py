"""Disentanglement metrics: how well each latent dimension captures one known generative factor.

Inputs are ``codes`` (N, d), a representation per item (the posterior means), and ``factors`` (N, K),
the discrete value of each ground-truth factor per item (any K distinct values per column; they are
relabelled 0..n_k−1). Each metric is written from its paper's definition; the estimators (bins,
classifiers, sample sizes) follow the choices of disentanglement_lib (Locatello et al. 2019, the
``unsupervised_study_v1`` metric configs) except where a docstring says otherwise and why.

    mig(codes, factors)             Chen et al. 2018, Mutual Information Gap
    dci(codes, factors)             Eastwood & Williams 2018, disentanglement/completeness/informativeness
    sap(codes, factors)             Kumar et al. 2018, Separated Attribute Predictability
    factor_vae_score(encode, source) Kim & Mnih 2018, majority-vote classifier on fixed-factor batches
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager
from typing import Protocol

import numpy as np

MIG_BINS = 20  # disentanglement_lib: histogram_discretizer, num_bins = 20
TRAIN_FRACTION = 2 / 3  # disentanglement_lib draws 10,000 train and 5,000 test points for DCI and SAP
SAP_SVM_C = 0.01  # disentanglement_lib: LinearSVC(C=0.01, class_weight="balanced") per code and factor
FACTOR_VAE_THRESHOLD = 0.05  # disentanglement_lib: prune_dims.threshold, on the global standard deviation


@contextmanager
def _quiet_classifiers():
    """sklearn warns when a factor has many values for few items (a small evaluation sample) and
    when the SAP SVM stops at its iteration limit; neither changes what the metric means."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        yield


def check_inputs(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``codes`` (N, d) and ``factors`` (N, K); return float codes and 0-based factor labels.

    Raises:
        ValueError: naming the argument: not 2D, different lengths, NaN or infinite codes, a factor
            with a single value.
    """
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    for name, array in (("codes", codes), ("factors", factors)):
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"{name}: expected a non-empty 2D array (items × columns), got shape {array.shape}")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes and factors: different lengths ({codes.shape[0]:,} codes, "
                         f"{factors.shape[0]:,} factor rows)")
    if not np.isfinite(codes).all():
        rows = int((~np.isfinite(codes).all(axis=1)).sum())
        raise ValueError(f"codes: NaN or infinite values in {rows:,} of {codes.shape[0]:,} rows")
    labels = np.empty(factors.shape, dtype=np.int64)
    for k in range(factors.shape[1]):
        values, labels[:, k] = np.unique(factors[:, k], return_inverse=True)
        if len(values) < 2:
            raise ValueError(f"factors: column {k} has a single value ({values[0]}); a factor must vary")
    return codes, labels


def discrete_mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """I(x; y) in nats of two label arrays (0-based ints), from their joint histogram."""
    joint = np.bincount(x * (y.max() + 1) + y, minlength=(x.max() + 1) * (y.max() + 1))
    joint = joint.reshape(x.max() + 1, y.max() + 1) / len(x)
    px, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log(joint[nonzero] / (px @ py)[nonzero])).sum())


def discrete_entropy(y: np.ndarray) -> float:
    """H(y) in nats of a label array."""
    p = np.bincount(y) / len(y)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def histogram_bins(codes: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """Each code dimension cut into ``bins`` equal-width bins between its min and max (0-based)."""
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, i], bins)
        out[:, i] = np.digitize(codes[:, i], edges[1:-1])
    return out


def mig(codes, factors, bins: int = MIG_BINS) -> float:
    """Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs").

    For each factor v_k, the gap between the two code dimensions with the largest mutual information
    with it, divided by its entropy: MIG = 1/K Σ_k (I(z_(1); v_k) − I(z_(2); v_k)) / H(v_k).
    The paper estimates I(z; v) from q(z|x); as disentanglement_lib does, we use the posterior means
    cut into ``bins`` = 20 equal-width bins per dimension, on all the codes given (10,000 there).

    Returns:
        A number in [0, 1]; 1 when each factor is captured by exactly one dimension.
    """
    codes, labels = check_inputs(codes, factors)
    if codes.shape[1] < 2:
        raise ValueError("codes: MIG needs at least 2 dimensions (it is a gap between the best two)")
    binned = histogram_bins(codes, bins)
    gaps = []
    for k in range(labels.shape[1]):
        information = sorted((discrete_mutual_information(binned[:, i], labels[:, k])
                              for i in range(codes.shape[1])), reverse=True)
        gaps.append((information[0] - information[1]) / discrete_entropy(labels[:, k]))
    return float(np.mean(gaps))


def train_test_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded 2:1 split of item indices (disentanglement_lib's 10,000 train / 5,000 test)."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * TRAIN_FRACTION))
    return order[:cut], order[cut:]


def _gbt():
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier()  # disentanglement_lib: sklearn defaults (100 depth-3 trees)


def _forest():
    from sklearn.ensemble import RandomForestClassifier

    # Every split chooses among all dimensions, as GBT's do (with sklearn's default √d, noise dimensions
    # drew a quarter of the importance of codes equal to the factors). The depth sets how much
    # importance noise dimensions draw on noisy codes: DCI disentanglement 0.445 at depth 8, 0.619 at
    # depth 6, 0.879 at depth 4, where GBT gives 0.622 (benchmarks/disentanglement_crosscheck.py).
    # 10 trees: ~1 s per factor on 10,000 codes, where GBT takes 260 s for a 40-valued factor.
    return RandomForestClassifier(n_estimators=10, max_depth=6, max_features=None, random_state=0)


# Classifiers whose impurity-based feature_importances_ give the DCI importance matrix.
DCI_ESTIMATORS: dict[str, Callable] = {"forest": _forest, "gbt": _gbt}


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    p = p / p.sum(axis=1, keepdims=True)
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1) / np.log(base)


def dci(codes, factors, estimator: str = "forest", seed: int = 0) -> dict[str, float]:
    """DCI (Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of Disentangled
    Representations").

    One classifier per factor predicts it from all codes; their feature importances form R (d × K).
    Disentanglement: 1 − H_K(row i of R, normalised) per dimension, weighted by the dimension's
    share of all importance. Completeness: 1 − H_d(column k) per factor, weighted likewise.
    Informativeness: the classifiers' mean accuracy on held-out items (disentanglement_lib's
    ``informativeness_test``; the paper states it as a prediction error, 1 − accuracy here).

    Estimator: disentanglement_lib uses gradient-boosted trees (``estimator="gbt"``, sklearn
    defaults) trained on 10,000 and tested on 5,000 points; we split the codes given 2:1 likewise.
    GBT fits one tree per class and stage, which takes minutes for dSprites' 32- and 40-valued
    factors on one core, so the default is a random forest (the paper's own nonlinear choice) that
    takes seconds (bagged trees over all dimensions); docs/disentanglement.md compares them.

    Returns:
        {"disentanglement", "completeness", "informativeness"}, each in [0, 1].
    """
    codes, labels = check_inputs(codes, factors)
    if estimator not in DCI_ESTIMATORS:
        raise ValueError(f"estimator '{estimator}': expected one of {', '.join(DCI_ESTIMATORS)}")
    train, test = train_test_split(len(codes), seed)
    d, num_factors = codes.shape[1], labels.shape[1]
    importance = np.zeros((d, num_factors))
    accuracy = []
    with _quiet_classifiers():
        for k in range(num_factors):
            model = DCI_ESTIMATORS[estimator]().fit(codes[train], labels[train, k])
            importance[:, k] = np.abs(model.feature_importances_)
            accuracy.append(float((model.predict(codes[test]) == labels[test, k]).mean()))
    if importance.sum() == 0:
        importance = np.ones_like(importance)
    share = importance.sum(axis=1) / importance.sum()
    disentanglement = (1 - _entropy_rows(importance + 1e-11, num_factors)) @ share
    factor_share = importance.sum(axis=0) / importance.sum()
    completeness = (1 - _entropy_rows(importance.T + 1e-11, d)) @ factor_share if d > 1 else 1.0
    return {"disentanglement": float(disentanglement), "completeness": float(completeness),
            "informativeness": float(np.mean(accuracy))}


def sap(codes, factors, seed: int = 0) -> float:
    """SAP score (Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts from
    Unlabeled Observations", Section 3).

    S[i, k]: how well code dimension i alone predicts factor k; SAP is the mean over factors of the
    gap between the two best dimensions. For discrete factors, as disentanglement_lib
    (``continuous_factors=False``): S is the held-out accuracy of a linear SVM (C = 0.01, balanced
    class weights) on the one dimension, trained on 2/3 of the codes and tested on the rest.
    One difference: each dimension is standardised first, so that the SVM's fixed C does not make
    the score depend on the codes' scale (disentanglement_lib feeds raw means).

    Returns:
        A number in [0, 1]; near 0 for codes that carry nothing or spread each factor over dimensions.
    """
    from sklearn.svm import LinearSVC

    codes, labels = check_inputs(codes, factors)
    if codes.shape[1] < 2:
        raise ValueError("codes: SAP needs at least 2 dimensions (it is a gap between the best two)")
    spread = codes.std(axis=0)
    codes = (codes - codes.mean(axis=0)) / np.where(spread > 0, spread, 1)
    train, test = train_test_split(len(codes), seed)
    scores = np.zeros((codes.shape[1], labels.shape[1]))
    with _quiet_classifiers():
        for i in range(codes.shape[1]):
            for k in range(labels.shape[1]):
                if spread[i] == 0:
                    continue  # a constant dimension predicts nothing
                svm = LinearSVC(C=SAP_SVM_C, class_weight="balanced").fit(codes[train, i:i + 1], labels[train, k])
                scores[i, k] = (svm.predict(codes[test, i:i + 1]) == labels[test, k]).mean()
    top_two = np.sort(scores, axis=0)[::-1][:2]
    return float(np.mean(top_two[0] - top_two[1]))


class FactorSource(Protocol):
    """A domain that can make items for chosen factor values (sprites, ternary)."""

    factor_sizes: tuple[int, ...]

    def items_for_factors(self, factors: np.ndarray) -> np.ndarray:
        """Items (stored format) for rows of 0-based factor indices, shape (n, K)."""


def factor_vae_score(encode: Callable[[np.ndarray], np.ndarray], source: FactorSource, seed: int = 0,
                     batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000,
                     num_variance: int = 10_000, threshold: float = FACTOR_VAE_THRESHOLD) -> dict:
    """FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising", Section 4).

    Each vote: choose a factor k, draw ``batch_size`` items that share its value and vary in all
    others, encode them, divide each dimension by its standard deviation over the whole data, and
    vote (k, the dimension of least variance). A majority-vote classifier maps each dimension to the
    factor it received most votes for (from ``num_train`` votes); the score is its accuracy on
    ``num_eval`` fresh votes. Dimensions whose global standard deviation is below ``threshold`` are
    left out (collapsed to the prior). Sizes and threshold are disentanglement_lib's
    (64, 10,000, 5,000, 10,000 items for the variances, 0.05); each vote encodes a batch, so a
    CPU budget calls for fewer votes (``vaekit eval --disentanglement`` states what it used).

    Args:
        encode: items -> codes (n, d), the posterior means.
        source: makes items for factor values.

    Returns:
        {"factor_vae_score": eval accuracy, "factor_vae_train_accuracy", "factor_vae_active_dims",
        "factor_vae_votes": num_eval}.
    """
    rng = np.random.default_rng(seed)
    sizes = np.asarray(source.factor_sizes)

    def random_factors(n: int) -> np.ndarray:
        return (rng.random((n, len(sizes))) * sizes).astype(np.int64)

    scale = encode(source.items_for_factors(random_factors(num_variance))).std(axis=0, ddof=1)
    active = np.flatnonzero(scale >= threshold)
    if len(active) == 0:
        return {"factor_vae_score": 0.0, "factor_vae_train_accuracy": 0.0, "factor_vae_active_dims": 0,
                "factor_vae_votes": num_eval}

    def votes(n: int) -> np.ndarray:
        counts = np.zeros((len(active), len(sizes)), dtype=np.int64)
        for _ in range(n):
            k = rng.integers(len(sizes))
            batch = random_factors(batch_size)
            batch[:, k] = batch[0, k]
            codes = encode(source.items_for_factors(batch))[:, active] / scale[active]
            counts[np.argmin(codes.var(axis=0, ddof=1)), k] += 1
        return counts

    train_votes = votes(num_train)
    classifier = train_votes.argmax(axis=1)  # each active dimension -> its majority factor
    rows = np.arange(len(active))
    eval_votes = votes(num_eval)
    return {"factor_vae_score": float(eval_votes[rows, classifier].sum() / eval_votes.sum()),
            "factor_vae_train_accuracy": float(train_votes[rows, classifier].sum() / train_votes.sum()),
            "factor_vae_active_dims": int(len(active)), "factor_vae_votes": num_eval}


def disentanglement_scores(codes, factors, dci_estimator: str = "forest", seed: int = 0) -> dict[str, float]:
    """MIG, DCI and SAP of one set of codes, as flat metric keys (mig, dci_*, sap)."""
    scores = {"mig": mig(codes, factors)}
    scores.update({f"dci_{key}": value for key, value in dci(codes, factors, dci_estimator, seed).items()})
    scores["sap"] = sap(codes, factors, seed)
    return scores
