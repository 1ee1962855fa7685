"""`vaekit collect arrays` from .npy, .npz and .csv, its refusals, standardisation and R²."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import collect as collect_domain
from conftest import collect_refused

from vaekit import load_corpus
from vaekit.domains import get_domain, picture_items
from vaekit.models import create_model


def collect(*args):
    return collect_domain("arrays", *args)


def refused(out, *args) -> str:
    return collect_refused("arrays", out, *args)


def test_a_csv_with_a_header_is_split_and_standardised(arrays_corpus):
    corpus = load_corpus(arrays_corpus)
    domain = get_domain("arrays")
    assert corpus.metadata["counts"] == {"train": 455, "val": 57, "test": 57}
    assert corpus.metadata["features"] == 30 and corpus.metadata["feature_names"][0] == "mean radius"
    model_arrays = domain.training_arrays(corpus)
    assert np.allclose(model_arrays["train"].mean(axis=0), 0, atol=1e-4)
    assert np.allclose(model_arrays["train"].std(axis=0), 1, atol=1e-3)
    back = domain.denormalise(model_arrays["test"], corpus.arrays)  # the one normalise/denormalise pair
    assert np.allclose(back, corpus.arrays["test"], rtol=1e-5, atol=1e-4)
    assert domain.infer_model_options(corpus) == {"features": 30}


def test_npy_and_npz_sources(tmp_path):
    values = np.random.default_rng(0).normal(5, 2, (40, 3))
    np.save(tmp_path / "v.npy", values)
    np.savez(tmp_path / "v.npz", arrays=values, other=np.zeros(2))
    for name in ("v.npy", "v.npz"):
        result = collect("--from", tmp_path / name, "--out", tmp_path / f"{name}.corpus.npz", "--seed", 3)
        assert result.exit_code == 0, result.output
        corpus = load_corpus(tmp_path / f"{name}.corpus.npz")
        rows = corpus.arrays["train_index"]
        assert np.allclose(corpus.arrays["train"], values[rows].astype(np.float32))
        assert np.allclose(corpus.arrays["norm_mean"], values[rows].mean(axis=0), atol=1e-5)


def test_bad_inputs_are_one_line_exit_2_and_nothing_written(tmp_path):
    out = tmp_path / "out" / "never.npz"
    (tmp_path / "words.csv").write_text("width,colour,height\n1,red,2\n3,blue,4\n")
    assert "column 'colour' is not numeric (line 2 holds 'red')" in refused(out, "--from", tmp_path / "words.csv")
    (tmp_path / "nan.csv").write_text("1,2\n3,nan\n5,6\n7,8\n")
    assert "NaN or infinite values in 1 of 4 rows (the first at row 1, column 1)" in refused(
        out, "--from", tmp_path / "nan.csv")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    assert "line 3 has 1 fields; expected 2" in refused(out, "--from", tmp_path / "ragged.csv")
    np.save(tmp_path / "inf.npy", np.array([[1.0, np.inf]] * 5))
    assert "inf.npy: NaN or infinite values" in refused(out, "--from", tmp_path / "inf.npy")
    np.save(tmp_path / "rank.npy", np.zeros((5, 2, 2)))
    assert "an array of shape (5, 2, 2); expected vectors (N, D)" in refused(out, "--from", tmp_path / "rank.npy")
    np.save(tmp_path / "two.npy", np.zeros((2, 4)))
    assert "2 usable item(s); need at least 3" in refused(out, "--from", tmp_path / "two.npy")
    np.savez(tmp_path / "many.npz", a=np.zeros((5, 2)), b=np.zeros((5, 2)))
    assert "holds a, b; expected one array, or one named 'arrays'" in refused(out, "--from", tmp_path / "many.npz")
    (tmp_path / "v.txt").write_text("1,2\n")
    assert "a '.txt' file; expected .npy, .npz or .csv" in refused(out, "--from", tmp_path / "v.txt")
    assert "no such file" in refused(out, "--from", tmp_path / "missing.csv")
    (tmp_path / "huge.csv").write_text("1,2\n3,1e39\n5,6\n7,8\n")  # finite in float64, inf in float32
    assert "values beyond ±3.403e+38, the largest float32 the corpus stores in 1 of 4 rows (the first at row 1, " \
           "column 1)" in refused(out, "--from", tmp_path / "huge.csv")
    np.save(tmp_path / "e300.npy", np.array([[1.0, 1e300]] * 5))
    assert "values beyond" in refused(out, "--from", tmp_path / "e300.npy")
    np.save(tmp_path / "none.npy", np.zeros((6, 0)))
    assert "an array of shape (6, 0); expected at least one row and one feature" in refused(
        out, "--from", tmp_path / "none.npy")


def test_r2_per_feature_matches_its_definition(arrays_corpus):
    domain = get_domain("arrays")
    model = create_model("mlp_vectors", 2, {"features": 30, "hidden": [8]})
    target = torch.as_tensor(domain.training_arrays(load_corpus(arrays_corpus))["test"])
    target[:, 0] = 0.0  # a feature that is constant in the split has no R²
    predicted = target * 0.5 + 0.1 * torch.randn_like(target)
    metrics = {}
    for key, (num, den) in domain.quality_sums(model, target, predicted).items():
        metrics[key] = float(num) / den
    metrics.update(domain.derived_metrics(metrics))
    x, y = target.numpy().astype(np.float64), predicted.numpy().astype(np.float64)
    x, y = x[:, 1:], y[:, 1:]
    expected = 1 - ((x - y) ** 2).sum(0) / ((x - x.mean(0)) ** 2).sum(0)
    assert metrics["r2_per_feature"][0] is None
    assert np.allclose(metrics["r2_per_feature"][1:], expected, atol=1e-4)  # the constant one left out of the mean
    assert metrics["r2"] == pytest.approx(expected.mean(), abs=1e-4) and metrics["r2_min"] == pytest.approx(expected.min(), abs=1e-4)
    assert not any(key.startswith("_") for key in metrics)


def test_samples_are_written_in_the_data_units(arrays_corpus, tmp_path):
    domain = get_domain("arrays")
    corpus = load_corpus(arrays_corpus)
    torch.manual_seed(0)
    model = create_model("mlp_vectors", 2, {"features": 30, "hidden": [8]}).eval()
    files = domain.save_pictures(model, picture_items(corpus.arrays, "test"), tmp_path, 6, torch.Generator().manual_seed(1))
    assert (tmp_path / "reconstructions.png").read_bytes()[:4] == b"\x89PNG" and tmp_path / "samples.npz" in files
    expected = domain.denormalise(model.sample_prior(6, torch.Generator().manual_seed(1)).numpy(), corpus.arrays)
    with np.load(tmp_path / "samples.npz") as saved:
        assert np.allclose(saved["samples"], expected, atol=1e-4)


def test_a_csv_saved_with_a_byte_order_mark_keeps_its_first_column_name(tmp_path):
    from vaekit.domains.arrays import read_csv

    (tmp_path / "bom.csv").write_bytes("a,b\n1,2\n3,4\n".encode("utf-8-sig"))
    values, names = read_csv(tmp_path / "bom.csv")
    assert names == ["a", "b"] and values.shape == (2, 2)
