"""Checkpoint files: read one with its damage named (an empty, truncated, corrupted or foreign file is
one error naming it), and tell whether a state dict fits a model. The run directory
(``vaekit.runs.RunDir``) says where the files are."""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vaekit.errors import VaekitUsageError, first_line

EPOCH_CHECKPOINT = re.compile(r"^epoch_(\d+)$")
# What each training checkpoint holds; a *.pth file is a state dict (name -> tensor).
CHECKPOINT_KEYS = {"last.pt": ("model", "optimizer", "scheduler", "state", "rng")}
# What torch.load raises on an empty, truncated or garbled file.
UNREADABLE_CHECKPOINT = (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, AttributeError,
                         pickle.UnpicklingError, zipfile.BadZipFile)


def read_checkpoint(path: Path, device: torch.device | str = "cpu", missing_hint: str = "") -> Any:
    """Load a checkpoint file; an empty, truncated, corrupted or foreign file is one error naming it.

    Files written by torch.save are zip archives with a CRC per member, checked here first:
    torch itself would load flipped bytes inside a tensor without noticing.
    """
    if not path.is_file():
        raise VaekitUsageError(f"{path} not found{missing_hint}")
    damage = _archive_damage(path)
    if damage is None:
        try:
            loaded = torch.load(path, map_location=device, weights_only=True)
        except UNREADABLE_CHECKPOINT as error:
            damage = f"{type(error).__name__}: {first_line(error, 100)}"
    if damage is not None:
        raise VaekitUsageError(f"{path}: not a readable checkpoint ({damage})")
    problem = _checkpoint_problem(path.name, loaded)
    if problem:
        raise VaekitUsageError(f"{path}: not a vaekit checkpoint ({problem})")
    return loaded


def _archive_damage(path: Path) -> str | None:
    """What is wrong with a checkpoint file as the zip archive torch.save writes, or None."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if not zipfile.is_zipfile(path):
        return "the file is truncated, or was not written by torch.save"
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        return f"the archive is damaged: {first_line(error, 100)}"
    return f"the file is damaged: {damaged} fails its CRC check" if damaged else None


def _checkpoint_problem(name: str, loaded: Any) -> str | None:
    """What is missing from a loaded checkpoint, or None."""
    if name in CHECKPOINT_KEYS:
        if not isinstance(loaded, Mapping):
            return f"holds a {type(loaded).__name__}, expected a dict"
        missing = [k for k in CHECKPOINT_KEYS[name] if k not in loaded]
        return f"missing {', '.join(missing)}" if missing else None
    if name.endswith(".pth") or EPOCH_CHECKPOINT.match(name.removesuffix(".pt")):
        if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            return f"holds a {type(loaded).__name__}, expected a state dict of tensors"
    return None


def weights_mismatch(model: torch.nn.Module, weights: Mapping) -> str | None:
    """The first difference between a state dict and ``model``'s: a missing, unexpected or
    differently shaped tensor; None when the weights fit."""
    if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return f"it holds a {type(weights).__name__}, not a state dict of tensors"
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    for name, tensor in expected.items():
        if name in weights and tuple(weights[name].shape) != tuple(tensor.shape):
            return f"{name} has shape {tuple(weights[name].shape)} in the file, the model needs {tuple(tensor.shape)}"
    if missing:
        return f"{len(missing)} tensors missing, e.g. {missing[0]}"
    if unexpected:
        return f"{len(unexpected)} unexpected tensors, e.g. {unexpected[0]}"
    return None
