"""What a frames corpus (atari, images) stores about its training split, computed once when it is
collected:

    background       (H, W, C) uint8    the per-pixel mode (``vaekit.background.pixel_mode``)
    mean_frame       (H, W, C) float32  the mean training frame, on the stored 0–255 scale
    foreground_rate  (H, W) float32     the share of training frames in which each pixel is foreground

The frames domains read them on load: the foreground is what differs from the background, small
objects lie where the foreground is rare (``vaekit.small_objects``), and the mean frame and the
background are the baseline answers beside the model's figures. A corpus collected before one of them
was stored gets it computed from its training split on load, once per process, with one warning line
naming what was computed.

An array in memory is read whole for the mode; a split read chunk by chunk (a sharded collect, a
sharded corpus) keeps memory bounded: its background is the mode of its first ``MODE_SAMPLE`` frames,
and the mean and the foreground rate are sums over every frame.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vaekit.background import (
    as_model_frame,
    as_model_frames,
    foreground,
    in_slices,
    pixel_mode,
)
from vaekit.errors import VaekitUsageError, warn

MODE_SAMPLE = 4096  # frames a chunked pass keeps in memory for the background's mode
CHUNK = 4096  # frames converted to floats at once


@dataclass(frozen=True)
class Fact:
    """How one fact is stored, and what a warning calls it."""

    description: str
    dtype: type
    per_channel: bool  # (H, W, C) like a frame; else (H, W)

    def shape(self, frame_shape: tuple[int, ...]) -> tuple[int, ...]:
        return frame_shape if self.per_channel else frame_shape[:2]


FACTS = {  # by array name, in the order FrameFacts lists them
    "background": Fact("the background (per-pixel mode)", np.uint8, per_channel=True),
    "mean_frame": Fact("the mean training frame", np.float32, per_channel=True),
    "foreground_rate": Fact("the foreground rate", np.float32, per_channel=False),
}


@dataclass(frozen=True)
class FrameFacts:
    """The stored facts of a frames corpus's training split (the module docstring says what each is)."""

    background: np.ndarray
    mean_frame: np.ndarray
    foreground_rate: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The facts as the corpus stores them, by array name."""
        return asdict(self)


class TrainingFrameStats:
    """The facts of a training split seen chunk by chunk, in memory bounded by ``MODE_SAMPLE`` frames.

    Args:
        background: the background when it is known already; otherwise the mode of the first
            ``MODE_SAMPLE`` frames added.
    """

    def __init__(self, background: np.ndarray | None = None):
        self.background = background
        self.waiting: list[np.ndarray] = []  # frames added before the background is known
        self.total: np.ndarray | None = None  # float64 sum of the frames
        self.foreground_counts: np.ndarray | None = None  # per pixel, the frames where it is foreground
        self.count = 0

    def add(self, frames: np.ndarray) -> None:
        """Count (N, H, W, C) uint8 ``frames`` in."""
        frames = np.asarray(frames)
        if not len(frames):
            return
        total = frames.sum(axis=0, dtype=np.float64)
        self.total = total if self.total is None else self.total + total
        self.count += len(frames)
        if self.background is not None:
            self._count_foreground(frames)
            return
        self.waiting.append(frames.copy())  # a collect may reuse its buffer
        if sum(map(len, self.waiting)) >= MODE_SAMPLE:
            self._settle_background()

    def facts(self) -> FrameFacts:
        """The facts of every frame added."""
        if not self.count:
            raise ValueError("no training frames to compute the facts of")
        if self.background is None:
            self._settle_background()
        return FrameFacts(self.background, (self.total / self.count).astype(np.float32),
                          (self.foreground_counts / self.count).astype(np.float32))

    def _settle_background(self) -> None:
        seen = np.concatenate(self.waiting)
        self.waiting = []
        self.background = pixel_mode(seen[:MODE_SAMPLE])
        self._count_foreground(seen)

    def _count_foreground(self, frames: np.ndarray) -> None:
        reference = as_model_frame(self.background)
        for chunk in in_slices(frames, CHUNK):
            counts = foreground(as_model_frames(chunk), reference).sum(dim=0).numpy()
            self.foreground_counts = counts if self.foreground_counts is None else self.foreground_counts + counts


def training_facts(frames, background: np.ndarray | None = None) -> FrameFacts:
    """The facts of a whole training split of (N, H, W, C) uint8 frames, in one chunked pass.

    Args:
        frames: an array in memory (the background is then the mode of every frame) or a sharded
            corpus's split (read in chunks; the mode of its first ``MODE_SAMPLE`` frames).
        background: the background when the corpus stores it already.
    """
    if background is None and isinstance(frames, np.ndarray):
        background = pixel_mode(frames)
    stats = TrainingFrameStats(background)
    for chunk in in_slices(frames, CHUNK):
        stats.add(chunk)
    return stats.facts()


_computed: dict[tuple[str, int, int], FrameFacts] = {}  # facts computed on load, by file and version


def _version(path: Path) -> tuple[str, int, int] | None:
    """The corpus file (a sharded corpus: its index) with its mtime and size, or None."""
    path = Path(path)
    file = path / "index.json" if path.is_dir() else path
    if not file.is_file():
        return None
    stat = os.stat(file)
    return str(file.resolve()), stat.st_mtime_ns, stat.st_size


def corpus_frame_facts(path: Path, arrays: dict) -> FrameFacts:
    """The stored facts of a frames corpus, checked against its frames; those a corpus collected before
    they were stored are computed from its training split (once per process, with one warning).

    Raises:
        VaekitUsageError: a stored fact's shape or dtype does not fit the frames (names the file).
    """
    frame_shape = tuple(arrays["train"].shape[1:])
    stored = {}
    for name, fact in FACTS.items():
        if name not in arrays:
            continue
        value, shape = np.asarray(arrays[name]), fact.shape(frame_shape)
        if value.shape != shape or value.dtype != fact.dtype:
            raise VaekitUsageError(f"{path}: its {name} is {'×'.join(map(str, value.shape))} {value.dtype} but its "
                                   f"frames ({'×'.join(map(str, frame_shape))}) need {'×'.join(map(str, shape))} "
                                   f"{np.dtype(fact.dtype)}; collect it again")
        stored[name] = value
    missing = [name for name in FACTS if name not in stored]
    if not missing:
        return FrameFacts(**stored)
    key = _version(path)
    computed = _computed.get(key) if key is not None else None
    if computed is None:
        one = len(missing) == 1
        names = [FACTS[name].description for name in missing]
        listed = names[0] if one else f"{', '.join(names[:-1])} and {names[-1]}"
        warn(f"{path}: collected before {listed} {'was' if one else 'were'} stored; computed "
             f"{'it' if one else 'them'} from the training split ({len(arrays['train']):,} frames). "
             f"Collect again to store {'it' if one else 'them'}")
        computed = training_facts(arrays["train"], stored.get("background"))
        if key is not None:
            _computed[key] = computed
    return FrameFacts(**{**computed.arrays(), **stored})
