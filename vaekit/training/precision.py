"""Numeric precision of training and inference: which one a device runs, and its autocast context.

Every precision keeps the weights, the optimizer state and the checkpoints in fp32: autocast only
runs the matmul-like layers (linear, convolutions) in the lower precision, and the models return
fp32 from ``encode``/``decode`` so that losses, KL sums and metrics are accumulated in fp32.

- ``fp32``: no autocast.
- ``bf16``: autocast to bfloat16 on CPU or CUDA. Same exponent range as fp32, so no loss scaling.
- ``fp16``: autocast to float16 with a gradient scaler; CUDA only.
- ``auto``: bf16 where the hardware runs it natively (a CPU with AVX512-BF16 or AMX, a CUDA GPU of
  compute capability 8.0 or newer), fp32 elsewhere. A run records what ``auto`` resolved to.
"""

from __future__ import annotations

import contextlib

import torch

from vaekit.config import PRECISIONS
from vaekit.errors import VaekitUsageError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Which precisions each device type can train in (fp16 needs CUDA's loss-scaling kernels).
SUPPORTED = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "bf16", "fp16"), "mps": ("fp32",)}


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls run in hardware rather than emulated (so bf16 is faster, not slower)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(_cpu_flag(name) for name in checks)
    return False


def _cpu_flag(name: str) -> bool:
    check = getattr(torch.cpu, name, None)  # private helpers; absent in some torch versions
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    """The concrete precision ('fp32', 'bf16' or 'fp16') to train in on ``device``.

    Raises:
        VaekitUsageError: for an unknown name, or a precision the device cannot train in.
    """
    if name not in PRECISIONS:
        raise VaekitUsageError(f"train.precision '{name}': expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    allowed = SUPPORTED.get(device.type, ("fp32",))
    if name not in allowed:
        raise VaekitUsageError(f"train.precision '{name}' is not supported on {device.type}: "
                               f"use {' or '.join(allowed)}")
    return name


def inference_precision(name: str, device: torch.device) -> str:
    """The precision to evaluate or sample a run in: its training precision where ``device`` runs it,
    otherwise fp32 (e.g. a run trained in fp16 on a GPU and evaluated on a CPU)."""
    try:
        return resolve_precision(name, device)
    except VaekitUsageError:
        return "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of a resolved precision (a no-op context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype the convolutions and matmuls run in here and now: autocast's on ``device`` where it is
    on, else fp32. A model's input that is exact in it (a one-hot, 8-bit intensities) is built in it
    directly, sparing a full-size fp32 tensor and autocast's cast of it."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return torch.float32


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (elsewhere its calls pass straight through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@contextlib.contextmanager
def inference(precision: str, device: torch.device):
    """No autograd (``torch.inference_mode``) and the autocast of ``precision``: evaluation, sampling."""
    with torch.inference_mode(), autocast(precision, device):
        yield
