"""Choosing the torch device."""

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
