"""Collecting an images corpus: read a folder, a glob, an array or a Python Dataset, convert and
resize every image into its row of the corpus (or into shards, for corpora larger than memory), split
80/10/10 and store the background. The domain (``vaekit.domains.images``) trains and scores on it.

The source is a folder (searched recursively, hidden files skipped), a glob, or an .npy/.npz array
shaped (N, H, W) or (N, H, W, C), uint8 or floats in [0, 1]. Files are read in two passes: their
headers first (size and mode; unreadable ones are skipped and named), then each image is decoded,
converted and resized straight into its row of the output array, so memory stays near the size of
the corpus. Splits are a seeded 80/10/10 permutation; with ``--labels folders`` the first-level
sub-folder names become labels, and ``--hold-out LABEL`` puts a whole class into the test split.
"""

from __future__ import annotations

import glob as globbing
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vaekit.collecting import (
    REQUIRED,
    SHARD_OPTIONS,
    Collected,
    CollectOption,
    progress_task,
    shard_bytes,
)
from vaekit.corpus import SPLITS, save_corpus, seeded_split
from vaekit.data_formats import MIN_IMAGE_SIDE
from vaekit.errors import VaekitUsageError
from vaekit.frame_facts import MODE_SAMPLE, TrainingFrameStats, training_facts

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
RESIZE_MODES = ("fit", "crop", "pad")
NAMED_FILES = 3  # unreadable files named in a note or an error; the rest are counted
DECODE_THREADS = min(4, os.cpu_count() or 1)
COMPRESS_CHOICES = ("auto", "always", "never")
COMPRESS_BELOW = 0.7  # --compress auto: deflate only where it saves 30 % or more
DECODE_CHUNK = 512  # images decoded ahead of the copy into the corpus array: bounds the memory in flight
STREAM_DATASETS_FROM = 2 * 2**30  # vaekit.train(data=Dataset): images beyond this many bytes stream into shards
STREAM_SHARD_BYTES = 256 * 2**20
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


@dataclass(frozen=True)
class ImageSettings:
    """How `collect images` turns a source into a corpus.

    Attributes:
        size: (height, width) of every stored image; None keeps the source's size when all share it.
        channels: 1 (grey) or 3 (RGB); None: 1 when every source image is grey, else 3.
        resize: how an image of another size is brought to ``size``: ``fit`` stretches it, ``crop``
            keeps its aspect, scales it to cover and cuts the centre, ``pad`` keeps its aspect, scales
            it to fit inside and pads with black.
        labels: ``folders`` keeps each file's first-level sub-folder name as its label.
        hold_out: labels whose items all go to the test split (with ``labels``).
        count: use a seeded random subset of this many items (None: all).
        seed: seed of the subset and the split.
        strict: refuse unreadable files instead of skipping them.
        compress: ``auto`` zlib-compresses the corpus when a sample of its images shrinks below 70 %
            (flat or dark images: much smaller, and fast to compress), else stores it as it is (on
            photo-like or noisy images zlib saves little and takes longer than decoding them);
            ``always`` or ``never``.
        shard_bytes: write a sharded corpus (``vaekit.shards``) of shards this size instead of an
            .npz, holding one shard in memory instead of every image; None: the .npz.
    """

    size: tuple[int, int] | None = None
    channels: int | None = None
    resize: str = "fit"
    labels: str | None = None
    hold_out: tuple[str, ...] = ()
    count: int | None = None
    seed: int = 0
    strict: bool = False
    compress: str = "auto"
    shard_bytes: int | None = None


def parse_size(text: str) -> tuple[int, int]:
    """``64`` -> (64, 64); ``64x48`` (WIDTHxHEIGHT, as screen sizes are written) -> (48, 64) as (H, W)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except ValueError:
        width = height = -1
    if len(parts) > 2 or min(width, height) < MIN_IMAGE_SIDE:
        raise VaekitUsageError(f"--size {text}: expected a side like 64 or WIDTHxHEIGHT like 64x48, each ≥ {MIN_IMAGE_SIDE}")
    return height, width


@dataclass
class ImageSource:
    """The items of a source, before conversion: what is known without decoding them."""

    description: str
    kind: str  # folder, glob or array
    sizes: list[tuple[int, int]]  # (height, width) per item
    modes: list[str]  # PIL mode per item ("L", "RGB", "P", ...)
    read: Callable[[int], object]  # item i as a PIL image (files) or an (H, W, C) uint8 array
    paths: list[str] | None = None  # per item, relative to a folder source
    labels: list[str] | None = None
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    animated: int = 0

    def __len__(self) -> int:
        return len(self.sizes)


def _image_files(source: str) -> tuple[list[Path], Path | None, str]:
    """The image files of a folder (recursively, sorted) or a glob; their root folder; the kind."""
    path = Path(source)
    if path.is_dir():
        files = []
        for root, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden folders are skipped, as are hidden files
            files += [os.path.join(root, n) for n in names if not n.startswith(".") and n.lower().endswith(IMAGE_SUFFIXES)]
        files = [Path(f) for f in sorted(files)]
        if not files:
            raise VaekitUsageError(f"{source}: no image files in this folder or below it; expected PNG, JPEG, "
                                   "BMP, GIF or WebP files")
        return files, path, "folder"
    if globbing.has_magic(source):
        files = sorted(Path(p) for p in globbing.glob(source, recursive=True)
                       if Path(p).is_file() and p.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise VaekitUsageError(f"{source}: the glob matches no image files (PNG, JPEG, BMP, GIF or WebP)")
        return files, None, "glob"
    raise VaekitUsageError(f"{source}: no such folder, glob or .npy/.npz file")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> Pillow mode at 8 bits per sample (16-bit grey is I;16; other 16-bit types are
# read by Pillow at 8 bits)
PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


def png_header(file: Path) -> tuple[tuple[int, int], str] | None:
    """(height, width) and mode from a PNG's IHDR chunk (33 bytes; ~20x faster than opening it with
    Pillow), or None when the file is not a PNG whose header says so (Pillow then reads it)."""
    with open(file, "rb") as handle:
        head = handle.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    depth, colour = head[24], head[25]
    mode = "I;16" if (colour, depth) == (0, 16) else "1" if (colour, depth) == (0, 1) else PNG_MODES.get(colour)
    return ((height, width), mode) if mode and width and height else None


def _reason(error: Exception) -> str:
    """Why Pillow could not read a file, in a few words (its own message repeats the path)."""
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not an image Pillow can read"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def files_source(source: str, labels: str | None) -> ImageSource:
    """Read the headers of a folder's or a glob's images (size and mode, no decoding)."""
    from PIL import Image

    files, root, kind = _image_files(source)
    if labels and root is None:
        raise VaekitUsageError(f"--labels {labels}: needs a folder with one sub-folder per label, not a {kind}")
    readable, sizes, modes, unreadable, animated = [], [], [], [], 0
    for file in files:
        if header := png_header(file):
            readable.append(file)
            sizes.append(header[0])
            modes.append(header[1])
            continue
        try:
            with Image.open(file) as image:
                width, height = image.size
                modes.append(image.mode)
                animated += getattr(image, "n_frames", 1) > 1
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            unreadable.append((str(file), _reason(error)))
            continue
        readable.append(file)
        sizes.append((height, width))
    relative = [str(f.relative_to(root)) if root else str(f) for f in readable]

    def read(i: int):
        with Image.open(readable[i]) as image:
            image.load()  # decoded now, so that the file is closed before the next one opens
            return image

    names = None
    if labels:
        flat = [r for r in relative if len(Path(r).parts) < 2]
        if flat:
            raise VaekitUsageError(f"--labels folders: {Path(source) / flat[0]} is not in a sub-folder; expected "
                                   f"{source}/<label>/<image> for every image")
        names = [Path(r).parts[0] for r in relative]
    return ImageSource(source, kind, sizes, modes, read, relative, names,
                       unreadable, animated)


def _array_in(path: Path) -> np.ndarray:
    """The array of an .npy file (memory-mapped) or an .npz (its only array, or the one named images)."""
    try:
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if len(names) != 1 and "images" not in names:
                raise VaekitUsageError(f"{path}: holds {', '.join(names) or 'no arrays'}; expected one array, "
                                       "or one named 'images'")
            return archive["images" if "images" in names else names[0]]
    except (OSError, ValueError, EOFError) as error:
        raise VaekitUsageError(f"{path}: not a readable .npy/.npz array ({str(error).splitlines()[0]})") from None


def check_image_array(array: np.ndarray, name: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) with C 1 or 3, uint8 or finite floats in [0, 1]; returns it 4-D."""
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3)):
        raise VaekitUsageError(f"{name}: an array of shape {array.shape}; expected (N, H, W) or (N, H, W, C) "
                               "with C = 1 or 3")
    if array.dtype != np.uint8:
        if array.dtype.kind != "f":
            raise VaekitUsageError(f"{name}: dtype {array.dtype}; expected uint8 or floats in [0, 1]")
        flat = array.reshape(len(array), -1)
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            raise VaekitUsageError(f"{name}: NaN or infinite values in {int(bad.sum()):,} of {len(array):,} items "
                                   f"(the first is item {int(bad.argmax())}); expected finite floats in [0, 1]")
        low, high = float(flat.min()), float(flat.max())
        if low < 0 or high > 1:
            raise VaekitUsageError(f"{name}: values from {low:g} to {high:g}; expected floats in [0, 1] or uint8")
    return array if array.ndim == 4 else array[..., None]


def array_source(array, description: str) -> ImageSource:
    """Items of an in-memory (or memory-mapped) image array; floats become uint8 one item at a time."""
    array = check_image_array(array, description)
    as_uint8 = (lambda item: item) if array.dtype == np.uint8 else (
        lambda item: np.rint(np.asarray(item, dtype=np.float32) * 255).astype(np.uint8))
    n, height, width, channels = array.shape
    return ImageSource(description, "array", [(height, width)] * n, ["L" if channels == 1 else "RGB"] * n,
                       lambda i: as_uint8(array[i]))


def _dataset_image(dataset, i: int) -> np.ndarray:
    """Item ``i`` of a Dataset as (H, W, C): its first element for an (image, label) item, channel-first
    (C, H, W) as torchvision gives them, or (H, W)."""
    item = dataset[i]
    item = item[0] if isinstance(item, (tuple, list)) else item
    array = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    return array[..., None] if array.ndim == 2 else np.moveaxis(array, 0, -1) if array.ndim == 3 else array


def dataset_source(dataset, description: str) -> ImageSource:
    """Items of a ``torch.utils.data.Dataset`` read one at a time when converted (never stacked), each
    checked like an image array's items and of item 0's shape."""
    if len(dataset) == 0:
        raise VaekitUsageError("the dataset is empty; expected at least 3 items")
    first = check_image_array(_dataset_image(dataset, 0)[None], f"{description}, item 0")[0]

    def read(i: int) -> np.ndarray:
        image = _dataset_image(dataset, i)
        if image.shape != first.shape:
            raise VaekitUsageError(f"{description}: item {i} has shape {image.shape}, item 0 has {first.shape}; "
                                   "expected items of one shape")
        image = check_image_array(image[None], f"{description}, item {i}")[0]
        return image if image.dtype == np.uint8 else np.rint(image.astype(np.float32) * 255).astype(np.uint8)

    height, width, channels = first.shape
    return ImageSource(description, "dataset", [(height, width)] * len(dataset),
                       ["L" if channels == 1 else "RGB"] * len(dataset), read)


def open_source(source: str, labels: str | None) -> ImageSource:
    path = Path(source)
    if path.suffix in (".npy", ".npz") and path.is_file():
        if labels:
            raise VaekitUsageError(f"--labels {labels}: needs a folder with one sub-folder per label, not an array")
        return array_source(_array_in(path), source)
    return files_source(source, labels)


def _decoded(source: ImageSource, item: int, size, channels: int, resize: str):
    """(image array, conversions made) of one item, or (None, why it could not be decoded)."""
    try:
        return convert(source.read(item), size, channels, resize)
    except (OSError, ValueError, SyntaxError) as error:
        return None, _reason(error)


def _as_8bit(image, channels: int, counts: list[str]):
    """A PIL image as 8-bit L or RGB: alpha composited over black, palettes expanded, 16-bit scaled."""
    from PIL import Image

    if image.mode in SIXTEEN_BIT_MODES:
        counts.append("16-bit (scaled to 8-bit)")
        image = Image.fromarray(np.rint(np.asarray(image, dtype=np.float32) / 257).clip(0, 255).astype(np.uint8))
    if image.mode in ("P", "PA"):
        counts.append("palette (expanded)")
        transparent = image.mode == "PA" or "transparency" in image.info  # else a palette is opaque
        image = image.convert("RGBA" if transparent else "RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        counts.append("with alpha (composited over black)")
        image = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image.convert("RGBA"))
    wanted = "L" if channels == 1 else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def convert(item, size: tuple[int, int], channels: int, resize: str) -> tuple[np.ndarray, list[str]]:
    """One source item as an (H, W, C) uint8 array of ``size`` and ``channels``, and the
    conversions its mode needed (alpha, palette, 16-bit)."""
    from PIL import Image, ImageOps

    height, width = size
    counts: list[str] = []
    if isinstance(item, np.ndarray):
        if item.shape == (height, width, channels):
            return item, counts
        item = Image.fromarray(item[..., 0] if item.shape[-1] == 1 else item)
    image = _as_8bit(item, channels, counts)
    if image.size != (width, height):
        target, method = (width, height), Image.Resampling.BILINEAR
        if resize == "crop":
            image = ImageOps.fit(image, target, method)
        elif resize == "pad":
            image = ImageOps.pad(image, target, method, color=0)
        else:
            image = image.resize(target, method)
    return np.asarray(image).reshape(height, width, channels), counts


def _target_size(source: ImageSource, settings: ImageSettings) -> tuple[int, int]:
    if settings.size is not None:
        return settings.size
    sizes = Counter(source.sizes)
    if len(sizes) > 1:
        common = ", ".join(f"{w}×{h} ({n:,})" for (h, w), n in sizes.most_common(3))
        raise VaekitUsageError(f"{source.description}: images of {len(sizes)} sizes (W×H: {common}{', ...' if len(sizes) > 3 else ''}); "
                               "pass --size (e.g. --size 64 or --size 64x48) to resize them all")
    (height, width), = sizes
    if min(height, width) < MIN_IMAGE_SIDE:
        raise VaekitUsageError(f"{source.description}: images of {width}×{height}; the models need at least "
                               f"{MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE}: pass --size {MIN_IMAGE_SIDE} or more")
    return height, width


def _chosen(source: ImageSource, settings: ImageSettings) -> np.ndarray:
    """The rows used: all, or a seeded subset of --count of them."""
    if settings.count is None:
        return np.arange(len(source))
    if not 3 <= settings.count <= len(source):
        raise VaekitUsageError(f"--count {settings.count}: the source has {len(source):,} readable images; "
                               "expected 3 up to that")
    return np.sort(np.random.default_rng(settings.seed).choice(len(source), settings.count, replace=False))


def _refuse_or_note_unreadable(source: ImageSource, strict: bool, notes: list[str]) -> None:
    if not source.unreadable:
        return
    named = "; ".join(f"{file} ({reason})" for file, reason in source.unreadable[:NAMED_FILES])
    more = f" and {len(source.unreadable) - NAMED_FILES:,} more" if len(source.unreadable) > NAMED_FILES else ""
    if strict:
        raise VaekitUsageError(f"unreadable image {source.unreadable[0][0]} ({source.unreadable[0][1]}); "
                               "expected a PNG, JPEG, BMP, GIF or WebP image (--strict refuses any)")
    notes.append(f"skipped {len(source.unreadable):,} unreadable file(s): {named}{more}")


def collect_images(source: ImageSource, out: Path, settings: ImageSettings,
                   on_progress: Callable[[int, int], None] | None = None) -> tuple[Path, dict]:
    """Convert every item of ``source`` into one uint8 corpus at ``out``; nothing is written on error."""
    notes: list[str] = []
    _refuse_or_note_unreadable(source, settings.strict, notes)
    if len(source) == 0:
        raise VaekitUsageError(f"{source.description}: no readable image; expected PNG, JPEG, BMP, GIF or WebP files")
    if settings.compress not in COMPRESS_CHOICES:
        raise VaekitUsageError(f"--compress {settings.compress}: expected one of {', '.join(COMPRESS_CHOICES)}")
    if settings.resize not in RESIZE_MODES:
        raise VaekitUsageError(f"--resize {settings.resize}: expected one of {', '.join(RESIZE_MODES)}")
    if settings.channels not in (None, 1, 3):
        raise VaekitUsageError(f"--channels {settings.channels}: expected 1 or 3")
    if settings.hold_out and not source.labels:
        raise VaekitUsageError("--hold-out needs --labels folders")
    unknown = sorted(set(settings.hold_out) - set(source.labels or ()))
    if unknown:
        raise VaekitUsageError(f"--hold-out {unknown[0]}: no such label; the labels are {', '.join(sorted(set(source.labels)))}")
    chosen = _chosen(source, settings)
    size = _target_size(source, settings)
    channels = settings.channels or (1 if all(source.modes[i] in GRAY_MODES for i in chosen) else 3)
    labels = [source.labels[i] for i in chosen] if source.labels else None
    held = np.array([label in settings.hold_out for label in labels], bool) if labels else None
    rows = seeded_split(len(chosen), settings.seed, held)
    store = (_ShardStore(out, settings.shard_bytes) if settings.shard_bytes
             else _MemoryStore(np.empty((len(chosen), *size, channels), np.uint8)))
    try:
        kept, conversions, broken, done = _convert(store, source, chosen, rows, size, channels, settings, on_progress)
        if broken:
            notes.append(f"skipped {len(broken):,} corrupt file(s): "
                         + "; ".join(f"{f} ({r})" for f, r in broken[:NAMED_FILES]))
        if min(len(kept[s]) for s in SPLITS) == 0:
            raise VaekitUsageError(f"{source.description}: {done} readable image(s) left; need at least 3 (one per "
                                   "split)")
        return _save(store, out, source, settings, kept, size, channels, conversions, notes)
    except Exception:
        store.discard()  # nothing of a refused collect stays behind
        raise


def _convert(store, source: ImageSource, chosen: np.ndarray, rows: dict, size, channels: int, settings: ImageSettings,
             on_progress) -> tuple[dict[str, list[int]], Counter, list[tuple[str, str]], int]:
    """Decode the chosen items split by split into ``store``; returns the items kept per split, the
    conversions made, the corrupt files and how many images were stored."""
    kept: dict[str, list[int]] = {}
    conversions: Counter = Counter()
    broken: list[tuple[str, str]] = []
    done = 0
    with ThreadPoolExecutor(DECODE_THREADS) as pool:  # Pillow decodes and resizes without holding the GIL
        for split in SPLITS:
            kept[split] = []
            items = [int(chosen[row]) for row in rows[split]]
            for start in range(0, len(items), DECODE_CHUNK):
                chunk = items[start:start + DECODE_CHUNK]
                decoded = pool.map(lambda i: _decoded(source, i, size, channels, settings.resize), chunk)
                good = []
                for item, (image, outcome) in zip(chunk, decoded):
                    if image is None:  # a header that read but a body that does not
                        broken.append((source.paths[item] if source.paths else str(item), outcome))
                        if settings.strict:
                            raise VaekitUsageError(f"corrupt image {broken[0][0]} ({broken[0][1]}); expected a "
                                                   "decodable image (--strict refuses any)")
                        continue
                    good.append(image)
                    conversions.update(outcome)
                    kept[split].append(item)
                    done += 1
                if good:
                    store.add(split, np.stack(good))
                if on_progress:
                    on_progress(done, len(chosen))
    return kept, conversions, broken, done


class _MemoryStore:
    """The decoded images of every split in one array, written as an .npz at the end."""

    def __init__(self, images: np.ndarray):
        self.images, self.done = images, 0

    def add(self, split: str, images: np.ndarray) -> None:
        self.images[self.done:self.done + len(images)] = images
        self.done += len(images)

    def discard(self) -> None:
        pass

    def save(self, out: Path, arrays: dict, metadata: dict, settings: ImageSettings) -> tuple[Path, dict]:
        start = 0
        for split in SPLITS:
            count = len(arrays[f"{split}_index"])
            arrays[split], start = self.images[start:start + count], start + count
        arrays.update(training_facts(arrays["train"]).arrays())
        compress = _worth_compressing(self.images) if settings.compress == "auto" else settings.compress == "always"
        metadata["compressed"] = compress
        return save_corpus(out, arrays, metadata, compress=compress)


class _ShardStore:
    """The decoded images go to disk shard by shard (``vaekit.shards``): bounded memory."""

    def __init__(self, out: Path, shard_bytes: int):
        from vaekit.shards import ShardWriter, folder_for

        self.writer = ShardWriter(folder_for(out), shard_bytes).open()
        self.training = TrainingFrameStats()  # the background, mean frame and foreground rate, in bounded memory

    def add(self, split: str, images: np.ndarray) -> None:
        self.writer.append(split, images)
        if split == "train":
            self.training.add(images)

    def discard(self) -> None:
        self.writer.discard()

    def save(self, out: Path, arrays: dict, metadata: dict, settings: ImageSettings) -> tuple[Path, dict]:
        if self.training.count:  # bounded memory: the mode of the first training images, not of all
            arrays.update(self.training.facts().arrays())
            metadata["background"] = f"per-pixel mode of the first {MODE_SAMPLE:,} training images at most"
        for name, array in arrays.items():
            self.writer.append(name, array)
        metadata["compressed"] = False
        return self.writer.finish(metadata)


def _save(store, out, source, settings, kept, size, channels, conversions, notes) -> tuple[Path, dict]:
    arrays = {}
    names = sorted(set(source.labels)) if source.labels else []
    for split in SPLITS:
        items = np.array(kept[split], dtype=np.int64)
        arrays[f"{split}_index"] = items
        if source.paths:
            arrays[f"{split}_path"] = np.array([source.paths[i] for i in items], dtype=str)
        if source.labels:
            arrays[f"{split}_label"] = np.array([names.index(source.labels[i]) for i in items], dtype=np.int32)
    resized = sum(1 for i in (j for s in SPLITS for j in kept[s]) if source.sizes[i] != size)
    if resized:
        notes.append(f"resized {resized:,} image(s) to {size[1]}×{size[0]} (--resize {settings.resize})")
    notes += [f"converted {n:,} image(s): {what}" for what, n in sorted(conversions.items())]
    if source.animated:
        notes.append(f"{source.animated:,} animated image(s): the first frame is kept")
    metadata = {
        "domain": "images", "source": source.description, "source_kind": source.kind, "seed": settings.seed,
        "height": size[0], "width": size[1], "channels": channels, "resize": settings.resize,
        "label_names": names, "held_out_labels": list(settings.hold_out), "skipped_files": len(source.unreadable),
        "notes": notes,
    }
    return store.save(out, arrays, metadata, settings)


def _worth_compressing(images: np.ndarray) -> bool:
    """True when up to 256 images spread over the corpus deflate below ``COMPRESS_BELOW`` of their size."""
    sample = np.ascontiguousarray(images[:: max(1, len(images) // 256)][:256]).tobytes()
    return len(zlib.compress(sample, 1)) < COMPRESS_BELOW * len(sample)


def streamed_corpus(domain: str, source: ImageSource, folder: Path) -> Path:
    """Collect ``source`` item by item into a sharded corpus under ``folder`` named by its content
    (``<domain>_<digest>.shards``; the same data, the same folder), holding one shard in memory."""
    import shutil

    from vaekit.shards import INDEX, content_digest

    partial, _ = collect_images(source, folder / f".{domain}_partial_{os.getpid()}.npz",
                                ImageSettings(shard_bytes=STREAM_SHARD_BYTES))
    final = folder / f"{domain}_{content_digest(partial)}.shards"
    if (final / INDEX).is_file():
        shutil.rmtree(partial)  # collected before: the same corpus
    else:
        shutil.rmtree(final, ignore_errors=True)  # an incomplete one of an earlier, killed call
        os.replace(partial, final)
    return final


IMAGES_COLLECT_OPTIONS = (
    CollectOption("from_", str, REQUIRED, "A folder (searched recursively), a glob in quotes, or an .npy/.npz array (N, H, W[, C])."),
    CollectOption("out", Path, Path("data/images.npz"), "Output .npz file."),
    CollectOption("size", str, None, "Stored size: a side (64) or WIDTHxHEIGHT (64x48). Default: the source's, when all share it."),
    CollectOption("channels", int, None, "1 (grey) or 3 (RGB). Default: 1 when every image is grey, else 3.", minimum=1),
    CollectOption("resize", str, "fit", "fit (stretch), crop (keep aspect, cut the centre) or pad (keep aspect, pad black)."),
    CollectOption("labels", str, None, "folders: keep each image's first sub-folder name as its label."),
    CollectOption("hold_out", str, None, "A label whose images all go to the test split (repeatable; with --labels folders).", many=True),
    CollectOption("count", int, None, "Use a seeded random subset of this many images.", minimum=1),
    CollectOption("seed", int, 0, "Seed of the subset and the 80/10/10 split.", minimum=0),
    CollectOption("strict", bool, False, "Refuse unreadable or corrupt files instead of skipping them."),
    CollectOption("compress", str, "auto", "auto (zlib when a sample shrinks below 70 %), always or never."),
    *SHARD_OPTIONS,
)


def collect_images_command(from_, out, size, channels, resize, labels, hold_out, count, seed, strict, compress, shards, shard_mib):
    """Store your own images (a folder, a glob or an array) as an images corpus, split 80/10/10.

    PNG, JPEG, BMP, GIF and WebP are read through Pillow; RGBA, palette and 16-bit images are
    converted (and noted), unreadable files skipped and named (refused with --strict). A folder of
    mixed sizes needs --size.

    Example: vaekit collect images --from photos/ --size 64 --out data/photos.npz
    """
    if labels not in (None, "folders"):
        raise VaekitUsageError(f"--labels {labels}: expected folders")
    settings = ImageSettings(parse_size(size) if size else None, channels, resize, labels, tuple(hold_out or ()),
                             count, seed, strict, compress, shard_bytes(shards, shard_mib))
    started = time.perf_counter()
    with progress_task("reading image headers") as task:
        source = open_source(from_, labels)
        task.update(description="converting images", total=len(source))
        path, metadata = collect_images(source, out, settings, lambda done, total: task.update(completed=done))
    seconds = time.perf_counter() - started
    images = sum(metadata["counts"].values())
    return Collected(path, metadata, {
        "images (W×H×C)": f"{metadata['width']}×{metadata['height']}×{metadata['channels']}",
        "labels": ", ".join(metadata["label_names"]) or "none",
        "images/s": f"{images / max(seconds, 1e-9):,.0f}"}, metadata["notes"])
