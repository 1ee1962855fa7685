"""Arrays domain: your own vectors (N, D) from an .npy, .npz or .csv file, or from Python.

The corpus stores the vectors as float32, split 80/10/10 by a seeded permutation, with each
feature's training-split mean and standard deviation (``norm_mean``, ``norm_std``). Models train on
standardised features (``normalise``); whatever leaves the domain in the data's own units
(samples.npz) goes back through ``denormalise``. MSE is in standardised units; R² per feature
(1 − residual variance / variance) is the same in either.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from vaekit.collecting import REQUIRED, Collected, CollectOption
from vaekit.corpus import (
    SPLITS,
    Corpus,
    content_name,
    python_items,
    save_corpus,
    seeded_split,
)
from vaekit.data_formats import VECTORS
from vaekit.domains import Domain, register_domain
from vaekit.errors import VaekitUsageError
from vaekit.metrics import Metric
from vaekit.targets import Target


def read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """A numeric CSV as (N, D) float64 and its column names (from a header row, else column_1...)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:  # a byte-order mark is not part of the header
        rows = list(csv.reader(handle))
    rows = [row for row in rows if row]
    if not rows:
        raise VaekitUsageError(f"{path}: an empty CSV; expected rows of numbers")

    def numeric(cell: str) -> bool:
        try:
            float(cell)
            return True
        except ValueError:
            return False

    header = not all(numeric(cell) for cell in rows[0])
    names = [c.strip() for c in rows[0]] if header else [f"column_{j + 1}" for j in range(len(rows[0]))]
    body = rows[1:] if header else rows
    values = np.empty((len(body), len(names)))
    for i, row in enumerate(body):
        line = i + 1 + header
        if len(row) != len(names):
            raise VaekitUsageError(f"{path}: line {line} has {len(row)} fields; expected {len(names)} like the first line")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise VaekitUsageError(f"{path}: column '{names[j]}' is not numeric (line {line} holds {cell!r}); "
                                       "expected numbers in every column") from None
    return values, names


def read_vectors(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """The (N, D) array of an .npy, .npz (its only array, or the one named arrays) or .csv file."""
    if not path.is_file():
        raise VaekitUsageError(f"{path}: no such file; expected an .npy, .npz or .csv file")
    if path.suffix == ".csv":
        return read_csv(path)
    if path.suffix not in (".npy", ".npz"):
        raise VaekitUsageError(f"{path}: a '{path.suffix}' file; expected .npy, .npz or .csv")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded, None
        with loaded:
            names = list(loaded.files)
            if len(names) != 1 and "arrays" not in names:
                raise VaekitUsageError(f"{path}: holds {', '.join(names) or 'no arrays'}; expected one array, "
                                       "or one named 'arrays'")
            return loaded["arrays" if "arrays" in names else names[0]], None
    except (OSError, ValueError, EOFError) as error:
        raise VaekitUsageError(f"{path}: not a readable .npy/.npz array ({str(error).splitlines()[0]})") from None


FLOAT32_MAX = float(np.finfo(np.float32).max)  # the stored dtype's largest finite value, about 3.4e38


def check_vectors(values: np.ndarray, name: str) -> np.ndarray:
    """(N, D) finite numbers as float32; refuses another rank, no rows or no features, non-numbers,
    NaN and ±inf, and values that are finite as read but overflow the stored float32."""
    if values.ndim != 2:
        raise VaekitUsageError(f"{name}: an array of shape {values.shape}; expected vectors (N, D)")
    if 0 in values.shape:
        raise VaekitUsageError(f"{name}: an array of shape {values.shape}; expected at least one row and one feature")
    if values.dtype.kind not in "uif":
        raise VaekitUsageError(f"{name}: dtype {values.dtype}; expected numbers")
    for bad, what in ((~np.isfinite(values), "NaN or infinite values"),
                      (np.abs(values.astype(np.float64)) > FLOAT32_MAX,
                       f"values beyond ±{FLOAT32_MAX:.4g}, the largest float32 the corpus stores")):
        if bad.any():
            row, column = (int(k) for k in np.argwhere(bad)[0])
            raise VaekitUsageError(f"{name}: {what} in {int(bad.any(axis=1).sum()):,} of {len(values):,} rows "
                                   f"(the first at row {row}, column {column}); expected finite numbers")
    return values.astype(np.float32)


def collect_arrays(values: np.ndarray, out: Path, source: str, seed: int = 0,
                   feature_names: list[str] | None = None) -> tuple[Path, dict]:
    """Split ``values`` (N, D) 80/10/10 and store them with the training split's mean and std."""
    values = check_vectors(values, source)
    rows = seeded_split(len(values), seed)
    arrays = {}
    for split in SPLITS:
        arrays[split] = values[rows[split]]
        arrays[f"{split}_index"] = rows[split].astype(np.int64)
    std = arrays["train"].std(axis=0, dtype=np.float64)
    constant = np.flatnonzero(std == 0)
    std[constant] = 1.0  # a constant feature is centred, not scaled
    arrays["norm_mean"] = arrays["train"].mean(axis=0, dtype=np.float64).astype(np.float32)
    arrays["norm_std"] = std.astype(np.float32)
    names = feature_names or [f"feature_{j}" for j in range(values.shape[1])]
    notes = [f"{len(constant)} constant feature(s) in the training split, centred only: "
             f"{', '.join(names[j] for j in constant[:5])}"] if len(constant) else []
    metadata = {"domain": "arrays", "source": source, "seed": seed, "features": int(values.shape[1]),
                "feature_names": names, "notes": notes}
    return save_corpus(out, arrays, metadata)


ARRAYS_COLLECT_OPTIONS = (
    CollectOption("from_", Path, REQUIRED, "An .npy or .npz array (N, D), or a .csv of numbers (a header row is optional)."),
    CollectOption("out", Path, Path("data/arrays.npz"), "Output .npz file."),
    CollectOption("seed", int, 0, "Seed of the 80/10/10 split.", minimum=0),
)


def collect_arrays_command(from_, out, seed):
    """Store vectors (N, D) as an arrays corpus: split 80/10/10, with each feature's mean and std.

    Models train on standardised features; samples are written back in the data's own units.

    Example: vaekit collect arrays --from measurements.csv --out data/measurements.npz
    """
    values, names = read_vectors(from_)
    path, metadata = collect_arrays(values, out, str(from_), seed, names)
    return Collected(path, metadata, {"features": metadata["features"]}, metadata["notes"])


def _feature_sums(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, tuple]:
    """Per feature j: the squared error, Σx and Σx² as quality sums (R² is derived from them)."""
    n = target.shape[0]
    sums = {}
    for j, (error2, s1, s2) in enumerate(zip((predicted - target).pow(2).sum(0), target.sum(0), target.pow(2).sum(0))):
        sums.update({f"_sse_{j}": (error2, n), f"_s1_{j}": (s1, n), f"_s2_{j}": (s2, n)})
    return sums


@register_domain("arrays")
class ArraysDomain(Domain):
    name = "arrays"
    default_corpus = "data/arrays.npz"
    collect_command = "vaekit collect arrays --from FILE --out data/arrays.npz"
    collect_options = ARRAYS_COLLECT_OPTIONS
    collector = staticmethod(collect_arrays_command)
    data_format = VECTORS
    metrics = (
        Metric("r2", "R² (mean over features)", "{:.4f}", curve=True, target=Target()),
        Metric("r2_min", "R², weakest feature", "{:.4f}", selectable=False),
        Metric("mse", "MSE (standardised)", "{:.4f}", higher_is_better=False, selectable=False),
    )
    item_noun = "vectors"
    item_identifiers = ("index",)

    def default_config(self) -> dict:
        return {"threads": 1, "data": {"path": self.default_corpus, "augment": False},
                "model": {"name": "mlp_vectors", "latent_dim": 8},
                "beta": {"schedule": "linear_warmup", "max_beta": 1.0, "warmup_epochs": 0, "ramp_epochs": 20},
                "train": {"batch_size": 64, "epochs": 100}}

    def validate(self, corpus: Corpus) -> None:
        """The splits, and (D,) finite statistics with positive standard deviations."""
        super().validate(corpus)
        features = corpus.arrays["train"].shape[1]
        for key in ("norm_mean", "norm_std"):
            stats = corpus.arrays.get(key)
            if stats is None or stats.shape != (features,) or not np.isfinite(stats).all():
                raise VaekitUsageError(f"{corpus.path}: '{key}' is missing or not {features} finite numbers; "
                                       f"collect it again with `{self.collect_command}`")
        if (corpus.arrays["norm_std"] <= 0).any():
            raise VaekitUsageError(f"{corpus.path}: 'norm_std' has values ≤ 0; expected positive standard deviations")

    def normalise(self, items: np.ndarray, arrays: dict) -> np.ndarray:
        """Vectors in the data's units -> standardised features."""
        return ((items - arrays["norm_mean"]) / arrays["norm_std"]).astype(np.float32)

    def denormalise(self, values: np.ndarray, arrays: dict) -> np.ndarray:
        """Standardised features -> vectors in the data's units."""
        return (np.asarray(values) * arrays["norm_std"] + arrays["norm_mean"]).astype(np.float32)

    def corpus_from_data(self, data, folder: Path) -> Path:
        array, _ = python_items(data)
        path = folder / content_name(self.name, array)
        if not path.is_file():  # the same data was collected before: the same corpus
            collect_arrays(array, path, f"Python data {tuple(array.shape)} {array.dtype}")
        return path

    def infer_model_options(self, corpus: Corpus) -> dict:
        return {"features": int(corpus.arrays["train"].shape[1])}

    def quality_sums(self, model, batch, output):
        predicted, target = model.reconstruct(output).float(), model.prepare(batch)
        squared = (predicted - target).pow(2)
        return {"mse": (squared.sum(), squared.numel()), **_feature_sums(predicted, target)}

    def derived_metrics(self, metrics: dict) -> dict:
        r2 = []
        for j in range(len([k for k in metrics if k.startswith("_sse_")])):
            sse, s1, s2 = (metrics.pop(f"_{name}_{j}") for name in ("sse", "s1", "s2"))
            variance = s2 - s1 * s1
            r2.append(1 - sse / variance if variance > 1e-12 else None)  # None: constant in this split
        if not r2:
            return {}
        defined = [v for v in r2 if v is not None]
        return {"r2": float(np.mean(defined)) if defined else float("nan"),
                "r2_min": float(min(defined)) if defined else float("nan"),
                "r2_per_feature": [None if v is None else round(v, 6) for v in r2]}

    def item_images(self, items, arrays):
        """Each vector as a near-square grid of its standardised features (blue below the mean, red above)."""
        from vaekit.plots import ImageStyle

        items = np.asarray(items, dtype=np.float32)
        side = int(np.ceil(np.sqrt(items.shape[1])))
        grid = np.full((len(items), side * side), np.nan, np.float32)
        grid[:, : items.shape[1]] = items
        return grid.reshape(-1, side, side), ImageStyle("coolwarm", -3, 3)

    def save_pictures(self, model, shown, results, n, generator):
        samples, items, recon = self.samples_and_reconstructions(model, shown, results, n, generator, count=8)
        standardised = [self.normalise(values, shown.corpus) for values in (items, recon, samples[:8])]
        cells = [[original, decoded] for original, decoded in zip(*standardised[:2])] + [list(standardised[2])]
        labels = [f"{shown.split} item {i}" for i in range(len(items))] + ["z ~ N(0, I)"]
        path = self.render_items(cells, shown.corpus, results / "reconstructions.png",
                                 "Standardised features: original and reconstruction; prior samples",
                                 labels, ["original", "reconstruction"])
        return [path, results / "samples.npz"]
