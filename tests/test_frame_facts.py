"""What a frames corpus stores about its training split (vaekit.frame_facts): collected once, read on
load, computed once with one warning for a corpus collected before it was stored, in bounded memory for
a split read in chunks; the baselines evaluate the same either way."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vaekit import load_corpus
from vaekit.background import pixel_mode
from vaekit.config import LossConfig
from vaekit.corpus import save_corpus
from vaekit.domains import get_domain
from vaekit.errors import VaekitWarning
from vaekit.evaluation import evaluate
from vaekit.frame_facts import FACTS, FrameFacts, TrainingFrameStats, training_facts
from vaekit.models import create_model
from vaekit.shards import DEFAULT_SHARD_BYTES


def by_hand(train: np.ndarray) -> dict[str, np.ndarray]:
    background = pixel_mode(train)
    foreground = np.abs(train.astype(int) - background.astype(int)).max(-1) > 25.5
    return {"background": background, "mean_frame": train.astype(np.float64).mean(axis=0),
            "foreground_rate": foreground.mean(axis=0)}


def without_facts(corpus_path, path, shard_bytes=None):
    corpus = load_corpus(corpus_path)
    arrays = {k: v for k, v in corpus.arrays.items() if k not in FACTS}
    return save_corpus(path, arrays, corpus.metadata, shard_bytes=shard_bytes)[0]


@pytest.mark.parametrize("fixture", ["atari_corpus", "images_corpus"])
def test_a_collected_corpus_carries_its_background_mean_frame_and_foreground_rate(fixture, request):
    arrays = load_corpus(request.getfixturevalue(fixture)).arrays
    expected = by_hand(arrays["train"])
    assert np.array_equal(arrays["background"], expected["background"])
    assert arrays["mean_frame"].dtype == np.float32 and arrays["foreground_rate"].dtype == np.float32
    assert np.allclose(arrays["mean_frame"], expected["mean_frame"], atol=1e-4)
    assert np.allclose(arrays["foreground_rate"], expected["foreground_rate"])


def baselines_of(path) -> dict:
    domain = get_domain("atari")
    corpus = domain.load(path)
    torch.manual_seed(0)
    model = create_model("conv2d_frames", 4, {"frame_size": 32, "channels": [4, 4], "hidden": 8,
                                              "decoder_channels": [4, 4]})
    test = torch.as_tensor(np.asarray(corpus.arrays["test"]))
    return evaluate(model, test, domain, LossConfig(), beta=1.0, baselines=True)["baselines"]


@pytest.mark.parametrize("shard_bytes", [None, DEFAULT_SHARD_BYTES])
def test_an_older_corpus_gets_them_computed_once_with_one_warning_and_evaluates_the_same(
        atari_corpus, tmp_path, shard_bytes):
    old = without_facts(atari_corpus, tmp_path / "old.npz", shard_bytes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        computed = baselines_of(old)
        again = baselines_of(old)  # the second load reuses what the first computed
    messages = [str(w.message) for w in caught if issubclass(w.category, VaekitWarning)]
    assert len(messages) == 1 and "\n" not in messages[0], messages
    assert ("the background (per-pixel mode), the mean training frame and the foreground rate were stored; "
            "computed them from the training split") in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", VaekitWarning)  # a corpus collected now warns about nothing
        stored = baselines_of(atari_corpus)
    assert set(stored) == {"mean training frame", "background alone"}
    for name, scores in stored.items():
        assert again[name] == pytest.approx(computed[name], nan_ok=True)
        assert computed[name] == pytest.approx(scores, rel=1e-5, nan_ok=True), name


def test_a_corpus_with_its_background_but_not_the_rest_keeps_its_background(atari_corpus, tmp_path):
    corpus = load_corpus(atari_corpus)
    arrays = {k: v for k, v in corpus.arrays.items() if k not in ("mean_frame", "foreground_rate")}
    arrays["background"] = np.full_like(corpus.arrays["background"], 7)  # not the mode: must be kept as stored
    path = save_corpus(tmp_path / "half.npz", arrays, corpus.metadata)[0]
    domain = get_domain("atari")
    with pytest.warns(VaekitWarning, match="before the mean training frame and the foreground rate were stored"):
        domain.load(path)
    assert (domain.background == 7).all()
    rate = training_facts(corpus.arrays["train"], arrays["background"]).foreground_rate
    assert np.array_equal(domain.rare_foreground, rate < 0.1)


def test_a_stored_fact_of_another_size_is_refused_naming_the_file(atari_corpus, tmp_path):
    from vaekit.errors import VaekitUsageError

    corpus = load_corpus(atari_corpus)
    arrays = {**corpus.arrays, "foreground_rate": np.zeros((8, 8), np.float32)}
    path = save_corpus(tmp_path / "odd.npz", arrays, corpus.metadata)[0]
    with pytest.raises(VaekitUsageError, match="odd.npz: its foreground_rate is 8×8 float32"):
        get_domain("atari").load(path)


def test_a_chunked_pass_keeps_the_mode_of_the_first_frames_and_sums_every_frame(monkeypatch):
    from vaekit import frame_facts

    monkeypatch.setattr(frame_facts, "MODE_SAMPLE", 4)
    frames = np.zeros((10, 2, 2, 3), np.uint8)
    frames[4:] = 200  # after the first 4 frames: the mode of those is black, the foreground the rest
    stats = TrainingFrameStats()
    for chunk in (frames[:3], frames[3:6], frames[6:]):
        stats.add(chunk)
        assert sum(map(len, stats.waiting)) < 4  # memory: frames wait only until the sample is complete
    facts = stats.facts()
    assert isinstance(facts, FrameFacts) and list(facts.arrays()) == list(FACTS)  # one declaration of each
    assert (facts.background == 0).all()
    assert np.allclose(facts.mean_frame, 120.0) and np.allclose(facts.foreground_rate, 0.6)
