"""Corpus files: one ``.npz`` per collected dataset, readable with ``allow_pickle=False``, or for
corpora larger than memory a folder of ``.npy`` shards (``vaekit.shards``, written with ``--shards``).

Every corpus holds the arrays ``train``, ``val`` and ``test`` (the samples of each split), any
per-sample side arrays a domain adds (e.g. ``train_task``), and ``metadata``: a JSON string with the
source, counts, seed and vaekit version.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaekit.errors import VaekitUsageError, first_line
from vaekit.files import atomic_write_bytes, remove_stale_temp_files

SPLITS = ("train", "val", "test")


@dataclass
class Corpus:
    """A loaded corpus: split arrays, side arrays, and metadata."""

    path: Path
    arrays: dict[str, np.ndarray]
    metadata: dict

    @property
    def splits(self) -> dict[str, np.ndarray]:
        return {name: self.arrays[name] for name in SPLITS}


def save_corpus(path: Path, arrays: dict[str, np.ndarray], metadata: dict, compress: bool = True,
                shard_bytes: int | None = None) -> tuple[Path, dict]:
    """Write a corpus atomically (temp file in the same folder, then rename); with ``shard_bytes``,
    a sharded corpus folder instead (``vaekit.shards.folder_for(path)``, shards of that size).

    Temp files of the same corpus that a killed collect left behind are deleted first. The split
    sizes (``counts``) and the vaekit version are added to ``metadata``; returns the path and the
    metadata as written. ``compress=False`` stores the arrays uncompressed (zlib can take longer
    than collecting them; the file reads the same either way).
    """
    from vaekit import __version__

    missing = [s for s in SPLITS if s not in arrays]
    if missing:
        raise ValueError(f"corpus is missing splits {missing}")
    if shard_bytes is not None:
        from vaekit.shards import folder_for, write_sharded

        return write_sharded(folder_for(path), arrays, metadata, shard_bytes)
    path = Path(path)
    metadata = {**metadata, "counts": {s: int(arrays[s].shape[0]) for s in SPLITS}, "vaekit_version": __version__}
    payload = dict(arrays, metadata=np.array(json.dumps(metadata)))
    remove_stale_temp_files(path.parent, path.name)
    write = np.savez_compressed if compress else np.savez
    atomic_write_bytes(path, lambda handle: write(handle, **payload))
    return path, metadata


def load_corpus(path: str | Path, collect_hint: str | None = None) -> Corpus:
    """Load a corpus written by ``vaekit collect``.

    Args:
        path: the ``.npz`` file, or a sharded corpus folder (its arrays are then memory-mapped
            ``vaekit.shards.ShardedArray``s).
        collect_hint: the command that makes this corpus, named in the error when it is missing.
    """
    from vaekit.shards import is_sharded, open_sharded

    path = Path(path)
    if is_sharded(path):
        arrays, metadata = open_sharded(path, collect_hint)
        return Corpus(path=path, arrays=arrays, metadata=metadata)
    if not path.is_file():
        hint = f"; make it with `{collect_hint}`" if collect_hint else ""
        raise VaekitUsageError(f"corpus not found: {path}{hint}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single array, not an .npz archive of named arrays")
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        # a truncated or corrupted download or copy ends here, whatever numpy or zipfile raised
        raise VaekitUsageError(f"{path}: not a readable vaekit corpus ({first_line(err)}); "
                               "collect it again") from None
    missing = [s for s in (*SPLITS, "metadata") if s not in arrays]
    if missing:
        raise VaekitUsageError(f"{path}: not a vaekit corpus (missing arrays: {', '.join(missing)})")
    try:
        metadata = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as err:
        raise VaekitUsageError(f"{path}: its metadata is not valid JSON ({err.msg})") from None
    if not isinstance(metadata, dict):
        raise VaekitUsageError(f"{path}: its metadata is {type(metadata).__name__}, expected a JSON object")
    return Corpus(path=path, arrays=arrays, metadata=metadata)


SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def seeded_split(count: int, seed: int, test_only: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Rows 0..count-1 split 80/10/10 by a seeded permutation (val and test get one row at least).

    Args:
        test_only: a boolean mask of rows that all go to the test split (e.g. a held-out class).
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(count, bool) if test_only is None else test_only
    rest = rng.permutation(np.flatnonzero(~held))
    if len(rest) < 3:
        raise VaekitUsageError(f"{len(rest)} usable item(s){' outside the held-out ones' if held.any() else ''}; "
                               "need at least 3 (one per split)")
    n_val = max(1, round(len(rest) * SPLIT_FRACTIONS[1]))
    n_test = max(1, round(len(rest) * SPLIT_FRACTIONS[2]))
    n_train = len(rest) - n_val - n_test
    return {"train": rest[:n_train], "val": rest[n_train:n_train + n_val],
            "test": np.concatenate([rest[n_train + n_val:], rng.permutation(np.flatnonzero(held))])}


def python_items(data) -> tuple[np.ndarray, bool]:
    """Items given from Python as one array: a numpy array as it is, a tensor, or the items of a
    ``torch.utils.data.Dataset`` stacked (an item that is a tuple gives its first element, as
    ``(image, label)`` datasets do). Returns the array and whether it came from torch."""
    import torch

    if isinstance(data, np.ndarray):
        return data, False
    if isinstance(data, torch.Tensor):
        return data.detach().cpu().numpy(), True
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        first = None
        for row in range(len(data)):
            item = data[row]
            item = np.asarray(item[0] if isinstance(item, (tuple, list)) else item)
            if first is None:
                first = np.empty((len(data), *item.shape), item.dtype)
            if item.shape != first.shape[1:]:
                raise VaekitUsageError(f"dataset item {row} has shape {item.shape}, item 0 has {first.shape[1:]}; "
                                       "expected items of one shape")
            first[row] = item
        if first is None:
            raise VaekitUsageError("the dataset is empty; expected at least 3 items")
        return first, True
    raise VaekitUsageError(f"data of type {type(data).__name__}: expected a corpus path, a numpy array, a tensor "
                           "or a torch.utils.data.Dataset with a length")


def content_name(prefix: str, array: np.ndarray) -> str:
    """``prefix_<12 hex digits>.npz`` from the array's shape, dtype and bytes: the same data always
    gets the same corpus file."""
    import hashlib

    digest = hashlib.sha1(f"{array.shape}{array.dtype}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return f"{prefix}_{digest.hexdigest()[:12]}.npz"
