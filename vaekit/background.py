"""The background frames of a corpus share, and their foreground: the pixels that differ from it.

The background is the per-pixel mode of the training split (the most frequent colour of each pixel,
whole colours, not channel by channel), computed when the corpus is collected and stored in it as the
array ``background`` (H, W, C) uint8, beside the mean training frame and the foreground rate
(``vaekit.frame_facts``, which also computes them on load for a corpus collected before they were stored).
"""

from __future__ import annotations

import numpy as np
import torch

BACKGROUND_KEY = "background"
# A pixel is foreground where some channel differs from the background by more than 0.1 on the [0, 1]
# scale (25.5 of 255 levels): the pixel-accuracy tolerance of the atari domain, and well above the
# ±1-level noise of resizing, while a ball blended into one 64×64 pixel still differs by ~80 levels.
FOREGROUND_TOLERANCE = 0.1
MODE_BLOCK = 64  # pixels sorted at once: bounds the memory of the mode to ~frames × 64 × 8 bytes


def _packed(pixels: np.ndarray) -> np.ndarray:
    """(..., C) uint8 colours as one int32 each (grey: the level; RGB: 0xRRGGBB)."""
    values = pixels.astype(np.int32)
    if values.shape[-1] == 1:
        return values[..., 0]
    return (values[..., 0] << 16) | (values[..., 1] << 8) | values[..., 2]


def _unpacked(values: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return values[..., None].astype(np.uint8)
    return np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], axis=-1).astype(np.uint8)


def pixel_mode(frames: np.ndarray) -> np.ndarray:
    """The most frequent colour of each pixel of (N, H, W, C) uint8 frames, as (H, W, C) uint8.

    A tie goes to the smallest packed colour (darkest first for grey), so the result is deterministic.
    """
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"expected (N, H, W, C) frames with N ≥ 1, got shape {frames.shape}")
    count, height, width, channels = frames.shape
    flat = frames.reshape(count, height * width, channels)
    rows = np.arange(count)[:, None]
    modes = np.empty(height * width, np.int32)
    for start in range(0, height * width, MODE_BLOCK):
        ordered = np.sort(_packed(flat[:, start:start + MODE_BLOCK]), axis=0)
        run_starts = np.ones(ordered.shape, bool)
        run_starts[1:] = ordered[1:] != ordered[:-1]
        run_length = rows - np.maximum.accumulate(np.where(run_starts, rows, 0), axis=0)  # 0-based
        longest_end = run_length.argmax(axis=0)  # the first longest run: the smallest tied colour
        modes[start:start + MODE_BLOCK] = ordered[longest_end, np.arange(ordered.shape[1])]
    return _unpacked(modes, channels).reshape(height, width, channels)


# A pixel where the foreground shows in under 10 % of the training frames (the corpus's foreground_rate)
# lies on a moving object's path: a ball passes over pixels that are foreground in under 2 % of
# Breakout's and Pong's training frames, while a changing glyph (the score) covers pixels that are
# foreground in a quarter or more of them.
RARE_FOREGROUND = 0.1


def in_slices(items, size: int = 1024):
    """``items`` (an array, a tensor, or a sharded corpus's split, which reads only the rows asked for)
    in consecutive slices of ``size`` rows."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def as_model_frames(frames: np.ndarray | torch.Tensor, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Stored (N, H, W, C) uint8 frames as (N, C, H, W) floats in [0, 1] of ``dtype``, as the frame
    models read them (channels-last in memory; on ``device``: a tensor stays where it is by default)."""
    frames = frames if isinstance(frames, torch.Tensor) else torch.as_tensor(np.asarray(frames))
    return frames.to(device or frames.device).permute(0, 3, 1, 2).to(dtype) / 255.0


def as_model_frame(frame: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """One stored (H, W, C) uint8 frame as a (C, H, W) float tensor in [0, 1], as models compare them."""
    frame = frame if isinstance(frame, torch.Tensor) else np.asarray(frame)
    return as_model_frames(frame[None], device)[0]


def foreground(frames: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool: the pixels of (N, C, H, W) frames in [0, 1] where some channel differs from the
    (C, H, W) background by more than ``FOREGROUND_TOLERANCE``."""
    return (frames - background).abs().amax(dim=1) > FOREGROUND_TOLERANCE


def foreground_weights(frames: torch.Tensor, background: torch.Tensor, weight: float,
                       drawn: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 1, H, W) per-pixel weights of a training loss: ``weight`` on the foreground of ``frames`` (and
    of ``drawn``, reconstructions of them, when given), 1 elsewhere."""
    mask = foreground(frames, background)
    if drawn is not None:
        mask = mask | foreground(drawn.to(frames.dtype), background)
    return 1.0 + (float(weight) - 1.0) * mask.unsqueeze(1).to(frames.dtype)
