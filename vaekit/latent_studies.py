"""Latent studies of a trained run: encode a corpus, traverse dimensions, interpolate between items.

`vaekit encode`, `vaekit traverse`, `vaekit interpolate` and the Python API (``vaekit.Run``) call
these; the maths is in ``vaekit.latent`` and each domain draws its own items
(``Domain.render_items``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaekit import latent
from vaekit.corpus import SPLITS, Corpus, load_corpus
from vaekit.errors import VaekitUsageError
from vaekit.trained_runs import LoadedRun
from vaekit.files import atomic_write_bytes

ProgressCallback = Callable[[int, int], None]
ALL_SPLITS = "all"


def corpus_items(loaded: LoadedRun, data_path: str | Path | None = None) -> tuple[Corpus, dict[str, np.ndarray]]:
    """The corpus a run trained on (or ``data_path``, of the same domain) and its model-ready items
    per split (``Domain.training_arrays``: e.g. normalised splat parameters).

    Checked as ``Domain.load`` checks, with a corpus of another domain named as such first."""
    corpus = load_corpus(data_path or loaded.config.data.path, collect_hint=loaded.domain.collect_command)
    kind = corpus.metadata.get("domain")
    if kind and kind != loaded.config.domain:
        raise VaekitUsageError(f"{corpus.path}: a '{kind}' corpus, but run '{loaded.run.run_id}' is a "
                               f"'{loaded.config.domain}' model")
    loaded.domain.validate(corpus)
    return corpus, loaded.domain.training_arrays(corpus)


def chosen_splits(split: str) -> list[str]:
    if split == ALL_SPLITS:
        return list(SPLITS)
    if split not in SPLITS:
        raise VaekitUsageError(f"--split '{split}': expected one of {', '.join([*SPLITS, ALL_SPLITS])}")
    return [split]


def _encode_checked(loaded: LoadedRun, items: np.ndarray, source: Path, batch_size: int,
                    on_progress: ProgressCallback | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode, turning a shape mismatch between corpus and model into a usage error."""
    try:
        return latent.encode(loaded.model, torch.as_tensor(items), batch_size, on_progress)
    except RuntimeError as error:
        raise VaekitUsageError(
            f"{source}: items of shape {tuple(items.shape[1:])} do not fit run '{loaded.run.run_id}' "
            f"(trained on {loaded.config.data.path}): {str(error).splitlines()[0]}") from None


# ----------------------------------------------------------------------------- encode


def encode_corpus(loaded: LoadedRun, out: Path | None = None, data_path: str | Path | None = None,
                  split: str = ALL_SPLITS, batch_size: int = 1024,
                  on_progress: ProgressCallback | None = None) -> tuple[Path, dict]:
    """Write the posterior of every item of a corpus's split(s) to one .npz, one row per item.

    Arrays: ``mu`` and ``logvar`` (n, d) float32; ``split`` (the item's split) and ``row`` (its row
    in that split of the corpus); every identifier the domain declares and the corpus holds
    (``Domain.item_identifiers``, e.g. ARC ``task``, ``height``, ``width``); ``metadata``, a JSON
    string (run, checkpoint epoch, corpus, model, latent size).

    Returns:
        The file written and a summary (items, latent_dim, identifiers, seconds, bytes).
    """
    if batch_size < 1:
        raise VaekitUsageError(f"--batch-size {batch_size}: expected a positive count")
    splits = chosen_splits(split)
    out = Path(out) if out else loaded.results_dir / f"latents_{split}.npz"
    _refuse_foreign_file(out)
    started = time.perf_counter()
    corpus, items = corpus_items(loaded, data_path)
    total = sum(len(items[s]) for s in splits)

    def advance(count: int, _: int) -> None:  # progress over all the splits, not one
        if on_progress:
            on_progress(count, total)

    columns: dict[str, list[np.ndarray]] = {"mu": [], "logvar": [], "split": [], "row": []}
    identifiers = [name for name in loaded.domain.item_identifiers
                   if all(f"{s}_{name}" in corpus.arrays for s in splits)]
    for s in splits:
        for name in identifiers:
            rows = len(corpus.arrays[f"{s}_{name}"])
            if rows != len(items[s]):  # a damaged corpus: the codes would join the wrong rows
                raise VaekitUsageError(f"{corpus.path}: '{s}_{name}' has {rows} rows but split '{s}' has "
                                       f"{len(items[s])} items; collect the corpus again")
    for s in splits:
        mu, logvar = _encode_checked(loaded, items[s], corpus.path, batch_size, advance)
        columns["mu"].append(mu.numpy())
        columns["logvar"].append(logvar.numpy())
        columns["split"].append(np.full(len(mu), s))
        columns["row"].append(np.arange(len(mu), dtype=np.int64))
        for name in identifiers:
            columns.setdefault(name, []).append(corpus.arrays[f"{s}_{name}"])
    arrays = {key: np.concatenate(parts) for key, parts in columns.items()}
    metadata = {"run": str(loaded.run.path), "checkpoint": loaded.checkpoint, "epoch": loaded.best_epoch,
                "domain": loaded.config.domain, "model": loaded.config.model.name,
                "latent_dim": int(arrays["mu"].shape[1]), "corpus": str(corpus.path), "splits": splits,
                "identifiers": identifiers}
    atomic_write_bytes(out, lambda handle: np.savez_compressed(handle, metadata=np.array(json.dumps(metadata)),
                                                               **arrays))
    summary = {"path": str(out), "items": int(total), "latent_dim": metadata["latent_dim"],
               "splits": splits, "identifiers": identifiers,
               "seconds": time.perf_counter() - started, "bytes": out.stat().st_size}
    return out, summary


def _refuse_foreign_file(out: Path) -> None:
    """Replace an earlier `vaekit encode` output, never another file (a corpus, say)."""
    if not out.exists():
        return
    try:
        with np.load(out, allow_pickle=False) as existing:
            ours = {"mu", "logvar", "split", "metadata"} <= set(existing.files)
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise VaekitUsageError(f"--out {out}: the file exists and is not a `vaekit encode` output; "
                               "choose another path")


# ----------------------------------------------------------------------------- pictures


def pick_rows(available: int, count: int, explicit: list[int] | None, what: str = "--item") -> list[int]:
    """The given rows (checked), or ``count`` rows spread evenly over the split."""
    if explicit:
        wrong = [r for r in explicit if not 0 <= r < available]
        if wrong:
            raise VaekitUsageError(f"{what} {wrong[0]}: the split has rows 0 to {available - 1}")
        return list(explicit)
    if count < 1:
        raise VaekitUsageError(f"need at least one item, got {count}")
    if available < count:
        raise VaekitUsageError(f"the split has {available} items, fewer than the {count} asked for")
    return np.linspace(0, available - 1, count).round().astype(int).tolist()


def _split_items(loaded: LoadedRun, split: str) -> tuple[Corpus, np.ndarray]:
    if split not in SPLITS:
        raise VaekitUsageError(f"--split '{split}': expected one of {', '.join(SPLITS)}")
    corpus, items = corpus_items(loaded)
    return corpus, items[split]


@dataclass
class Traversal:
    """What `traverse` drew: the pictures, the dimensions shown (by decreasing KL) and the
    statistics of every dimension over the split."""

    paths: list[Path]
    dims: list[int]
    stats: latent.DimensionStats
    values: list[float]


def traverse_run(loaded: LoadedRun, split: str = "test", items: int = 3, rows: list[int] | None = None,
                 span: float = 3.0, steps: int = 7, max_dims: int = 10, out_dir: Path | None = None,
                 on_progress: ProgressCallback | None = None) -> Traversal:
    """One picture per item: each row sweeps one latent dimension over −span…+span (absolute
    values, i.e. prior standard deviations) with the other dimensions at the item's posterior mean.

    Rows go by decreasing mean KL over the split (``max_dims`` of them; 0 = all); dimensions that
    fail the active-unit test are marked inactive. The first row shows the item and its
    reconstruction from μ.
    """
    if steps < 2 or span <= 0 or max_dims < 0:
        raise VaekitUsageError("--steps must be ≥ 2, --span > 0 and --max-dims ≥ 0")
    corpus, data = _split_items(loaded, split)
    mu, logvar = _encode_checked(loaded, data, Path(loaded.config.data.path), 1024, on_progress)
    stats = latent.dimension_stats(mu, logvar)
    dims = stats.order[:max_dims or None].tolist()
    values = latent.sweep_values(span, steps)
    chosen = pick_rows(len(data), items, rows)
    codes = latent.traversal_codes(mu[chosen], dims, values)
    decoded = latent.decode(loaded.model, codes.reshape(-1, mu.shape[1])).numpy()
    decoded = decoded.reshape(len(chosen), len(dims), steps, *decoded.shape[1:])
    reconstructions = latent.decode(loaded.model, mu[chosen]).numpy()
    out_dir = Path(out_dir) if out_dir else loaded.results_dir / "latent"
    out_dir.mkdir(parents=True, exist_ok=True)
    row_labels = ["item"] + [f"z{j}  KL {float(stats.kl[j]):.2f}" + ("" if stats.active[j] else "\n(inactive)")
                             for j in dims]
    column_labels = ["original", "from μ"] + [f"{float(v):+.1f}" for v in values]
    paths = []
    for i, row in enumerate(chosen):
        cells = [[data[row], reconstructions[i]] + [None] * steps]
        cells += [[None, None, *decoded[i, r]] for r in range(len(dims))]
        title = (f"{loaded.run.run_id}: {split} item {row}; row z_j sweeps dimension j from {-span:g} to "
                 f"+{span:g} (prior std), others at μ; by KL ({len(dims)} of {mu.shape[1]} dimensions)")
        paths.append(loaded.domain.render_items(cells, corpus.arrays, out_dir / f"traversal_{split}_{row}.png",
                                                title, row_labels, column_labels))
    return Traversal(paths, dims, stats, values.tolist())


def interpolate_run(loaded: LoadedRun, split: str = "test", pairs: int = 3, rows: list[int] | None = None,
                    steps: int = 9, methods: tuple[str, ...] = latent.INTERPOLATIONS,
                    out_dir: Path | None = None) -> Path:
    """One picture: for each pair of items (rows given in pairs, or spread over the split), the
    codes from μ_a to μ_b by each method, decoded; the originals stand at both ends."""
    if steps < 2:
        raise VaekitUsageError(f"--steps {steps}: need at least the two ends")
    unknown = [m for m in methods if m not in latent.INTERPOLATIONS]
    if unknown or not methods:
        raise VaekitUsageError(f"--method '{unknown[0] if unknown else ''}': expected "
                               f"{' or '.join(latent.INTERPOLATIONS)}")
    if rows and len(rows) % 2:
        raise VaekitUsageError(f"--item was given {len(rows)} times: interpolation takes items in pairs")
    corpus, data = _split_items(loaded, split)
    chosen = pick_rows(len(data), 2 * pairs, rows)
    mu, _ = _encode_checked(loaded, data[chosen], Path(loaded.config.data.path), 1024, None)
    cells, row_labels = [], []
    for p in range(0, len(chosen), 2):
        for method in methods:
            codes = latent.interpolation_codes(mu[p], mu[p + 1], steps, method)
            decoded = latent.decode(loaded.model, codes).numpy()
            cells.append([data[chosen[p]], *decoded, data[chosen[p + 1]]])
            row_labels.append(f"{chosen[p]} → {chosen[p + 1]}\n{method}")
    column_labels = ["x_a"] + [f"t={t:.2f}" for t in np.linspace(0, 1, steps)] + ["x_b"]
    out_dir = Path(out_dir) if out_dir else loaded.results_dir / "latent"
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{loaded.run.run_id}: interpolation between {split} items, from μ_a (t=0) to μ_b (t=1)"
    return loaded.domain.render_items(cells, corpus.arrays, out_dir / f"interpolation_{split}.png",
                                      title, row_labels, column_labels)

