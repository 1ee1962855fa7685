"""Choosing the torch device, moving data onto it, and the process-wide torch settings a library call
must give back (the thread count, the global random state)."""

import contextlib

import numpy as np
import torch

from vaekit.errors import VaekitUsageError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VaekitUsageError(f"--device {name}: CUDA is not available in this torch build")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise VaekitUsageError("--device mps: MPS is not available on this machine")
    return torch.device(name)


def apply_threads(threads: int) -> None:
    """Set torch's intra-op CPU threads; 0 leaves torch's default."""
    if threads > 0:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def caller_settings(threads: int = 0):
    """Run with ``threads`` intra-op threads (0: as they are), and give the caller's thread count and
    global random states (CPU and CUDA) back on the way out: what every library call that sets
    either does, so that ``vaekit.load_run(...).evaluate()`` in a notebook leaves its process alone."""
    previous = torch.get_num_threads()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            apply_threads(threads)
            yield
    finally:
        torch.set_num_threads(previous)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """An array as a tensor on ``device``; to a GPU through pinned memory with a non-blocking copy
    (the host waits only when the tensor is first used), elsewhere a plain conversion. An array of a
    sharded corpus stays on disk: a ``ShardedSplit`` reads each batch's rows when indexed."""
    from vaekit.shards import ShardedArray

    if isinstance(array, ShardedArray):
        from vaekit.training.sharded_split import ShardedSplit

        return ShardedSplit(array, device)
    tensor = torch.as_tensor(array)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
