"""Corpus files: one ``.npz`` per collected dataset, readable with ``allow_pickle=False``.

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


def save_corpus(path: Path, arrays: dict[str, np.ndarray], metadata: dict) -> tuple[Path, dict]:
    """Write a corpus atomically (temp file in the same folder, then rename).

    Temp files of the same corpus that a killed collect left behind are deleted first. The split
    sizes (``counts``) and the vaekit version are added to ``metadata``; returns the path and the
    metadata as written.
    """
    from vaekit import __version__

    missing = [s for s in SPLITS if s not in arrays]
    if missing:
        raise ValueError(f"corpus is missing splits {missing}")
    path = Path(path)
    metadata = {**metadata, "counts": {s: int(arrays[s].shape[0]) for s in SPLITS}, "vaekit_version": __version__}
    payload = dict(arrays, metadata=np.array(json.dumps(metadata)))
    remove_stale_temp_files(path.parent, path.name)
    atomic_write_bytes(path, lambda handle: np.savez_compressed(handle, **payload))
    return path, metadata


def load_corpus(path: str | Path, collect_hint: str | None = None) -> Corpus:
    """Load a corpus written by ``vaekit collect``.

    Args:
        path: the ``.npz`` file.
        collect_hint: the command that makes this corpus, named in the error when it is missing.
    """
    path = Path(path)
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
