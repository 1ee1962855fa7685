"""Sharded corpora: a folder of uncompressed ``.npy`` shards and an ``index.json``, for corpora larger
than memory (docs/training.md#corpora-larger-than-memory says why this layout).

    photos.shards/
      index.json            format, version, the corpus metadata, and per array: dtype, item shape,
                            count, and per shard: file, count, bytes, sample_crc32; "complete" last
      train-00000.npy ...   the items of each array (splits and side arrays), in order

A shard is opened with ``np.load(mmap_mode="r")``: reading a batch copies only its rows, and the
workers of one node (torchrun) share the file's pages in the page cache. The writer writes
``index.json`` with ``"complete": false`` before the first shard and with ``"complete": true`` after
the last, so a collect killed half-way leaves a corpus that is refused as incomplete. Opening checks
every shard against the index (present, its size, its .npy header, a CRC-32 of its first and last
MiB) without reading the rest, and refuses any mismatch naming the shard and what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vaekit.errors import VaekitUsageError
from vaekit.files import atomic_write_bytes, remove_stale_temp_files

FORMAT = "vaekit-sharded-corpus"
VERSION = 1
INDEX = "index.json"
DEFAULT_SHARD_BYTES = 256 * 2**20  # large enough for few files, small enough to copy and check one at a time
SAMPLE_BYTES = 2**20  # the CRC covers the first and the last MiB of a shard


def is_sharded(path: Path) -> bool:
    """True for a sharded corpus folder (or its index.json)."""
    path = Path(path)
    return path.is_dir() or path.name == INDEX


def sample_crc32(file: Path) -> int:
    """CRC-32 of the first and the last ``SAMPLE_BYTES`` of a file: tells a foreign or rewritten shard
    of the same shape apart without reading all of it."""
    size = file.stat().st_size
    with open(file, "rb") as handle:
        crc = zlib.crc32(handle.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            crc = zlib.crc32(handle.read(SAMPLE_BYTES), crc)
    return crc


# ----------------------------------------------------------------------------- writing


class ShardWriter:
    """Writes a sharded corpus array by array, holding at most one shard of each array in memory.

    ``open()`` (or ``with``), ``append(name, items)`` any number of times (each array's items in
    order), then ``finish(metadata)``. Until ``finish`` the index is marked incomplete, so a killed
    collect leaves a corpus that is refused; ``discard()`` removes what was written (on an error).
    """

    def __init__(self, folder: Path, shard_bytes: int = DEFAULT_SHARD_BYTES):
        self.folder, self.shard_bytes = Path(folder), max(1, int(shard_bytes))
        self.arrays: dict[str, dict] = {}
        self.pending: dict[str, list[np.ndarray]] = {}
        self.pending_count: dict[str, int] = {}

    def open(self) -> "ShardWriter":
        """Replace an earlier corpus at the folder (never a folder that is not one) and mark it incomplete."""
        if self.folder.exists() and not self.folder.is_dir():
            raise VaekitUsageError(f"{self.folder} is a file; a sharded corpus is a folder: pass another --out")
        if self.folder.is_dir() and any(self.folder.iterdir()) and not _ours(self.folder):
            raise VaekitUsageError(f"{self.folder} is a folder that holds no {INDEX} of a vaekit sharded corpus; it "
                                   "is left alone: pass another --out")
        if self.folder.is_dir():  # an earlier corpus (or a killed collect's part of one) is replaced
            shutil.rmtree(self.folder)
        self._write_index({}, complete=False)
        return self

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "ShardWriter":
        return self.open()

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None and not isinstance(error, (KeyboardInterrupt, SystemExit)):
            self.discard()  # an error: nothing half-written stays (a signal leaves the incomplete index)

    def append(self, name: str, items: np.ndarray) -> None:
        """Add ``items`` (n, ...) at the end of array ``name``; full shards go to disk at once."""
        items = np.asarray(items)
        spec = self.arrays.setdefault(name, {"dtype": items.dtype.str, "item_shape": list(items.shape[1:]),
                                             "count": 0, "shards": []})
        if items.dtype.str != spec["dtype"] or list(items.shape[1:]) != spec["item_shape"]:
            raise ValueError(f"array {name}: items of {items.dtype} {items.shape[1:]} after {spec['dtype']} "
                             f"{tuple(spec['item_shape'])}")
        buffer = self.pending.setdefault(name, [])
        buffer.append(items)
        self.pending_count[name] = self.pending_count.get(name, 0) + len(items)
        per_shard = self._items_per_shard(items)
        while self.pending_count[name] >= per_shard:
            joined = np.concatenate(buffer)
            self._write_shard(name, joined[:per_shard])
            buffer[:] = [joined[per_shard:]]
            self.pending_count[name] = len(buffer[0])

    def finish(self, metadata: dict) -> tuple[Path, dict]:
        """Write the last shards, then the index marked complete. Returns the folder and the metadata
        (with ``counts`` per split added, as ``save_corpus`` does)."""
        from vaekit import __version__
        from vaekit.corpus import SPLITS

        for name, buffer in self.pending.items():
            rest = np.concatenate(buffer) if buffer else None
            if rest is not None and (len(rest) or not self.arrays[name]["shards"]):
                self._write_shard(name, rest)
        missing = [s for s in SPLITS if s not in self.arrays]
        if missing:
            raise ValueError(f"corpus is missing splits {missing}")
        metadata = {**metadata, "counts": {s: self.arrays[s]["count"] for s in SPLITS}, "vaekit_version": __version__,
                    "sharded": True}
        self._write_index(metadata, complete=True)
        return self.folder, metadata

    def _items_per_shard(self, items: np.ndarray) -> int:
        return max(1, self.shard_bytes // max(1, items[0].nbytes if len(items) else 1))

    def _write_shard(self, name: str, items: np.ndarray) -> None:
        spec = self.arrays[name]
        file = self.folder / f"{name}-{len(spec['shards']):05d}.npy"
        atomic_write_bytes(file, lambda handle: np.save(handle, np.ascontiguousarray(items)))
        spec["shards"].append({"file": file.name, "count": int(len(items)), "bytes": file.stat().st_size,
                               "sample_crc32": sample_crc32(file)})
        spec["count"] += int(len(items))

    def _write_index(self, metadata: dict, complete: bool) -> None:
        index = {"format": FORMAT, "version": VERSION, "metadata": metadata, "arrays": self.arrays,
                 "complete": complete}  # last: a reader that sees it true sees a finished corpus
        remove_stale_temp_files(self.folder, INDEX)
        atomic_write_bytes(self.folder / INDEX, lambda handle: handle.write(json.dumps(index, indent=1).encode()))


def _ours(folder: Path) -> bool:
    """True when ``folder`` holds a vaekit sharded-corpus index (complete or not): safe to replace."""
    try:
        return json.loads((folder / INDEX).read_text()).get("format") == FORMAT
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def write_sharded(folder: Path, arrays: dict[str, np.ndarray], metadata: dict,
                  shard_bytes: int = DEFAULT_SHARD_BYTES) -> tuple[Path, dict]:
    """A sharded corpus of arrays already in memory (``save_corpus``'s arguments)."""
    with ShardWriter(folder, shard_bytes) as writer:
        for name, array in arrays.items():
            writer.append(name, array)
        return writer.finish(metadata)


# ----------------------------------------------------------------------------- reading


class ShardedArray:
    """One array of a sharded corpus, its shards memory-mapped: numpy-style indexing (an int, a slice
    or an array of indices) returns an ndarray holding only the rows asked for."""

    def __init__(self, name: str, shards: list[np.ndarray], dtype: np.dtype, item_shape: tuple[int, ...],
                 files: list[Path]):
        self.name, self.shards, self.dtype, self.files = name, shards, np.dtype(dtype), files
        self.starts = np.cumsum([0] + [len(s) for s in shards])
        self.shape = (int(self.starts[-1]), *item_shape)
        self.ndim = len(self.shape)
        self.stamps = [self._stamp(f) for f in files]

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.take(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.take(np.array([key]))[0]
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take(np.asarray(key))

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The items at ``rows`` (any order), gathered shard by shard."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"index out of range for {self.name} of {len(self):,} items")
        rows = np.where(rows < 0, rows + len(self), rows)
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        which = np.searchsorted(self.starts, rows, side="right") - 1
        for shard in np.unique(which):
            mask = which == shard
            out[mask] = self.shards[shard][rows[mask] - self.starts[shard]]
        return out

    def chunks(self) -> Iterator[np.ndarray]:
        """The items shard by shard (for checks that must see every value with bounded memory)."""
        yield from self.shards

    def changed_shard(self) -> Path | None:
        """The first shard whose size or modification time differs from when it was opened."""
        return next((f for f, stamp in zip(self.files, self.stamps) if self._stamp(f) != stamp), None)

    @staticmethod
    def _stamp(file: Path) -> tuple[int, int] | None:
        try:
            status = file.stat()
        except OSError:
            return None
        return status.st_size, status.st_mtime_ns


def _refuse(folder: Path, what: str) -> VaekitUsageError:
    return VaekitUsageError(f"{folder}: {what}")


def read_index(folder: Path, collect_hint: str | None = None) -> dict:
    """The index of a sharded corpus, refused when missing, unreadable, foreign or incomplete."""
    folder = Path(folder)
    again = f"collect it again{f' (`{collect_hint} --shards`)' if collect_hint else ''}"
    try:
        index = json.loads((folder / INDEX).read_text())
    except FileNotFoundError:
        raise _refuse(folder, f"no {INDEX}: not a sharded corpus (or its collect was stopped before it began); "
                              f"{again}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _refuse(folder, f"{INDEX} is not readable JSON ({err}); {again}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise _refuse(folder, f"{INDEX} is not a vaekit sharded-corpus index (format {FORMAT!r}); {again}")
    if index.get("version") != VERSION:
        raise _refuse(folder, f"{INDEX} has version {index.get('version')}, this vaekit reads {VERSION}; {again} "
                              "with this vaekit")
    if index.get("complete") is not True:
        raise _refuse(folder, f"incomplete: its collect was stopped before it finished ({INDEX} has no "
                              f"complete marker); {again}")
    return index


def _open_shard(folder: Path, name: str, spec: dict, shard: dict, again: str) -> np.ndarray:
    """One shard memory-mapped, after checking it against its index entry."""
    file = folder / shard["file"]
    where = f"shard {shard['file']} of array '{name}'"
    if not file.is_file():
        raise _refuse(folder, f"{where} is missing; {again}")
    size = file.stat().st_size
    if size != shard["bytes"]:
        raise _refuse(folder, f"{where} has {size:,} bytes, {INDEX} says {shard['bytes']:,} (truncated or "
                              f"replaced); {again}")
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise _refuse(folder, f"{where} is not a readable .npy file ({err}); {again}") from None
    expected = (shard["count"], *spec["item_shape"])
    if array.shape != expected or array.dtype.str != spec["dtype"]:
        raise _refuse(folder, f"{where} holds {array.dtype} {array.shape}, {INDEX} says {np.dtype(spec['dtype'])} "
                              f"{expected}: the index disagrees with its shard; {again}")
    if sample_crc32(file) != shard["sample_crc32"]:
        raise _refuse(folder, f"{where} does not match its checksum in {INDEX} (a shard of another corpus, or "
                              f"rewritten); {again}")
    return array


def open_sharded(folder: Path, collect_hint: str | None = None) -> tuple[dict[str, ShardedArray], dict]:
    """The arrays of a sharded corpus (memory-mapped, checked against the index) and its metadata."""
    folder = Path(folder)
    if folder.name == INDEX:
        folder = folder.parent
    index = read_index(folder, collect_hint)
    again = f"collect it again{f' (`{collect_hint} --shards`)' if collect_hint else ''}"
    arrays = {}
    for name, spec in index["arrays"].items():
        shards = [_open_shard(folder, name, spec, shard, again) for shard in spec["shards"]]
        if sum(len(s) for s in shards) != spec["count"]:
            raise _refuse(folder, f"array '{name}': its shards hold {sum(len(s) for s in shards):,} items, {INDEX} "
                                  f"says {spec['count']:,}; {again}")
        arrays[name] = ShardedArray(name, shards, np.dtype(spec["dtype"]), tuple(spec["item_shape"]),
                                    [folder / s["file"] for s in spec["shards"]])
    return arrays, index["metadata"]


def content_digest(folder: Path) -> str:
    """12 hex digits from the arrays of a sharded corpus (names, dtypes, shapes and every shard's
    bytes), read one MiB at a time: the same items always give the same digest."""
    import hashlib

    digest = hashlib.sha1()
    for name, spec in sorted(read_index(folder)["arrays"].items()):
        digest.update(f"{name}{spec['dtype']}{spec['item_shape']}{spec['count']}".encode())
        for shard in spec["shards"]:
            with open(Path(folder) / shard["file"], "rb") as handle:
                while block := handle.read(SAMPLE_BYTES):
                    digest.update(block)
    return digest.hexdigest()[:12]


def shard_bytes_from_mib(mib: float) -> int:
    """``--shard-mib`` as bytes, refused unless positive."""
    if not mib > 0:
        raise VaekitUsageError(f"--shard-mib {mib}: expected a positive size in MiB")
    return int(mib * 2**20)


def folder_for(out: Path) -> Path:
    """Where ``--shards`` writes for an ``--out`` path: ``data/x.npz`` becomes ``data/x.shards``."""
    out = Path(out)
    return out.with_suffix(".shards") if out.suffix == ".npz" else out


def total_bytes(folder: Path) -> int:
    """The bytes of a sharded corpus's files."""
    return sum(os.path.getsize(f) for f in Path(folder).iterdir() if f.is_file())
