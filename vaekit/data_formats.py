"""Stored data formats: what a corpus split holds, and what a model reads.

A domain and the models that train on it meet here, so that neither imports the other: a domain
declares the format of its corpus splits (every split is checked against it when the corpus is
loaded, before anything is written), and a model declares the format it reads (a model is paired
only with domains of the same format). A new kind of data starts with a new ``DataFormat``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ARC_GRID_SIZE = 16
ARC_COLORS = 10

SPLAT_PARAMS = 8
# Channels of a stored splat: x, y | log sx, log sy | θ | r, g, b (vaekit.domains.splats has the maths).
SPLAT_GROUPS = {"xy": [0, 1], "scale": [2, 3], "rot": [4], "feat": [5, 6, 7]}


@dataclass(frozen=True)
class DataFormat:
    """The schema of one stored format: dtype, the shape of one item, the values allowed.

    Attributes:
        name: short identifier, e.g. ``arc_grid``.
        description: what a valid split holds, in words (quoted in error messages).
        dtype_kinds: numpy dtype kinds accepted: ``u`` unsigned, ``i`` signed integer, ``f`` float.
        item_shape: the shape of one item (the array without its leading sample axis); ``None``
            matches any size, but the size must be the same in every split.
        value_range: inclusive (low, high) bounds of every value, or None.
        finite: refuse NaN and ±inf.
        shape_rule: a further condition on the item shape; returns the problem, or None.
    """

    name: str
    description: str
    dtype_kinds: str
    item_shape: tuple[int | None, ...]
    value_range: tuple[float, float] | None = None
    finite: bool = False
    shape_rule: Callable[[tuple[int, ...]], str | None] | None = None

    def problem(self, array: np.ndarray) -> str | None:
        """What is wrong with ``array`` as a split in this format, or None when nothing is."""
        if array.dtype.kind not in self.dtype_kinds:
            return f"has dtype {array.dtype}"
        items = array.shape[1:]
        if array.ndim != 1 + len(self.item_shape) or any(
                want is not None and want != got for want, got in zip(self.item_shape, items)):
            return f"has items of shape {items}"
        if self.shape_rule is not None and (problem := self.shape_rule(items)):
            return problem
        if array.shape[0] == 0:
            return "is empty"
        parts = list(array.chunks()) if hasattr(array, "chunks") else [array]  # a sharded array: shard by shard
        if self.finite and array.dtype.kind == "f":
            bad = np.concatenate([~np.isfinite(np.asarray(p).reshape(p.shape[0], -1)).all(axis=1) for p in parts])
            if bad.any():
                return (f"has NaN or infinite values (in {int(bad.sum()):,} of {len(bad):,} items; "
                        f"the first is item {int(bad.argmax())})")
        if self.value_range is not None and not self._dtype_within_range(array.dtype):
            low, high = min(p.min() for p in parts), max(p.max() for p in parts)
            if low < self.value_range[0] or high > self.value_range[1]:
                return f"has values from {low} to {high}"
        return None

    def _dtype_within_range(self, dtype: np.dtype) -> bool:
        """True when no value of ``dtype`` can leave the range (uint8 frames: no scan needed)."""
        if dtype.kind not in "ui":
            return False
        info = np.iinfo(dtype)
        return self.value_range[0] <= info.min and info.max <= self.value_range[1]


MIN_IMAGE_SIDE = 8  # the conv families halve each side at least once


def _images_of_at_least_8_pixels_with_1_or_3_channels(item_shape: tuple[int, ...]) -> str | None:
    height, width, channels = item_shape
    if min(height, width) < MIN_IMAGE_SIDE or channels not in (1, 3):
        return f"has images of shape {item_shape}"
    return None


ARC_GRID = DataFormat(
    "arc_grid", f"{ARC_GRID_SIZE}×{ARC_GRID_SIZE} integer grids of colours 0–{ARC_COLORS - 1}", "ui",
    (ARC_GRID_SIZE, ARC_GRID_SIZE), value_range=(0, ARC_COLORS - 1))
TERNARY_TABLE = DataFormat(
    "ternary_table", "rows of 9 signed integers in {-1, 0, 1} (3×3 operation tables)", "i", (9,),
    value_range=(-1, 1))
FRAMES = DataFormat(
    "frames", f"uint8 images of shape (H, W, C), H and W ≥ {MIN_IMAGE_SIDE}, with 1 or 3 channels", "u",
    (None, None, None), value_range=(0, 255), shape_rule=_images_of_at_least_8_pixels_with_1_or_3_channels)
VECTORS = DataFormat("vectors", "finite float vectors of shape (D,)", "f", (None,), finite=True)
SPLAT_SEQUENCE = DataFormat(
    "splat_sequence", f"finite float splat parameters of shape ({SPLAT_PARAMS}, K splats)", "f",
    (SPLAT_PARAMS, None), finite=True)
