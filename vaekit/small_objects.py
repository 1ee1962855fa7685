"""Small objects of a frame (the ball) and whether a reconstruction kept them.

A small object is a connected component of a frame's foreground (8-connected; ``vaekit.background``)
of at most ``SMALL_OBJECT_PIXELS`` pixels, every pixel of which lies where the foreground is rare
(``vaekit.background.RARE_FOREGROUND``: a moving object's path, not a changing glyph such as the
score, whose fragments are as small but cover pixels that are foreground in a quarter or more of the
frames). The reconstruction kept it when, in the object's box grown
by ``WINDOW_MARGIN`` pixels, the reconstruction's foreground overlaps it at IoU ≥ ``KEPT_IOU``. Other
foreground objects of the frame inside that box are left out of the comparison, so a ball next to a
brick is judged on its own. An object erased by the reconstruction, or drawn more than the margin away,
scores IoU 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# At most 4 pixels: the ball. On 64×64 frames the ball of Breakout and Pong (2×4 of 160×210 screen
# pixels) covers 1–4 pixels; the next sizes are a knocked-out Breakout brick (6–10), Pong's paddles
# (10) and Breakout's (12–14), which a VAE keeps long before the ball (on 2,000 Breakout test frames:
# 4,209 components of 1–4 pixels, 1,644 of 6–10, 2,094 of 12–14). Those count in the foreground
# PSNR and recall.
SMALL_OBJECT_PIXELS = 4
KEPT_IOU = 0.5
WINDOW_MARGIN = 2  # pixels around an object's box where the reconstruction's foreground is compared
_WITHIN_A_FRAME = np.zeros((3, 3, 3), bool)
_WITHIN_A_FRAME[1] = True  # 8-connected inside a frame, never across frames of a batch


@dataclass(frozen=True)
class SmallObject:
    """One small object of a frame and how the reconstruction drew it.

    Attributes:
        frame: index of the frame in the batch.
        box: (top, left, bottom, right) of the object, bottom and right exclusive.
        pixels: its size.
        iou: IoU of the object with the reconstruction's foreground in its grown box.
    """

    frame: int
    box: tuple[int, int, int, int]
    pixels: int
    iou: float

    @property
    def kept(self) -> bool:
        return self.iou >= KEPT_IOU


def small_objects(target: np.ndarray, reconstruction: np.ndarray, rare: np.ndarray | None = None,
                  max_pixels: int = SMALL_OBJECT_PIXELS) -> list[SmallObject]:
    """The small objects of (N, H, W) boolean foreground masks ``target``, each scored against the
    foreground ``reconstruction`` of the same frames. ``rare``: (H, W) bool, the pixels where the
    foreground is rare; an object must lie within them (None: anywhere)."""
    labels, _ = ndimage.label(target, structure=_WITHIN_A_FRAME)
    sizes = np.bincount(labels.ravel())
    if rare is not None:  # components touching a pixel where the foreground is common are not small objects
        sizes = sizes.copy()
        sizes[np.unique(labels[:, ~rare])] = max_pixels + 1
    height, width = target.shape[1:]
    found = []
    for index, where in enumerate(ndimage.find_objects(labels), start=1):
        if where is None or sizes[index] > max_pixels:
            continue
        frame, rows, columns = where[0].start, where[1], where[2]
        top, bottom = max(rows.start - WINDOW_MARGIN, 0), min(rows.stop + WINDOW_MARGIN, height)
        left, right = max(columns.start - WINDOW_MARGIN, 0), min(columns.stop + WINDOW_MARGIN, width)
        window = labels[frame, top:bottom, left:right]
        obj = window == index
        drawn = reconstruction[frame, top:bottom, left:right] & ((window == 0) | obj)
        iou = float((obj & drawn).sum()) / float((obj | drawn).sum())
        found.append(SmallObject(int(frame), (rows.start, columns.start, rows.stop, columns.stop),
                                 int(obj.sum()), iou))
    return found


def kept_and_total(target: np.ndarray, reconstruction: np.ndarray, rare: np.ndarray | None = None) -> tuple[int, int]:
    """(small objects kept, small objects) of a batch: the sums of the small-object recall."""
    found = small_objects(target, reconstruction, rare)
    return sum(obj.kept for obj in found), len(found)
