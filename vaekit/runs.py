"""The run directory: everything one training run produced, enough to rebuild it.

    runs/<run_id>/
      config.yaml              resolved configuration
      metrics.jsonl            one JSON object per epoch (the source of truth for curves)
      checkpoints/vae_best.pth model state dict at the best validation loss
      checkpoints/encoder.pth  encoder state dict (same epoch)
      checkpoints/decoder.pth  decoder state dict (same epoch)
      checkpoints/last.pt      model, optimizer, scheduler, epoch, RNG: what --resume reads
      results/metrics.json     evaluation metrics (written by training's final eval and by `eval`)
      results/*.png            curves, samples, reconstructions
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from vaekit.errors import VaekitUsageError
from vaekit.files import atomic_write_bytes

RUN_ID_PATTERN = re.compile(r"^run_(\d+)$")


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf by None so that every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def next_run_id(runs_dir: Path) -> str:
    numbers = [int(m.group(1)) for p in runs_dir.glob("run_*") if (m := RUN_ID_PATTERN.match(p.name))]
    return f"run_{max(numbers, default=0) + 1:03d}"


class RunDir:
    """Paths and I/O of one run directory."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def results(self) -> Path:
        return self.path / "results"

    # ---------------------------------------------------------------- creation and lookup

    @classmethod
    def create(cls, runs_dir: Path, run_id: str | None, resume: bool, overwrite: bool) -> "RunDir":
        """Make (or, with resume, reopen) a run directory; an existing one is never clobbered silently."""
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        if run_id is None:
            if resume:
                raise VaekitUsageError("--resume needs --run-id naming the run to continue")
            run_id = next_run_id(runs_dir)
        if "/" in run_id or run_id in ("", ".", ".."):
            raise VaekitUsageError(f"--run-id '{run_id}': use a plain name such as run_007")
        run = cls(runs_dir / run_id)
        exists = run.path.exists()
        if resume:
            if not (run.checkpoints / "last.pt").is_file():
                raise VaekitUsageError(f"cannot resume {run.path}: no checkpoints/last.pt there")
        elif exists and overwrite:
            shutil.rmtree(run.path)
        elif exists:
            raise VaekitUsageError(
                f"run '{run_id}' already exists in {runs_dir}; pass --resume to continue it or "
                "--overwrite to replace it"
            )
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        run.results.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def find(cls, ref: str | Path, runs_dir: Path) -> "RunDir":
        """A run given as a path to its directory or as an id under ``runs_dir``."""
        candidates = [Path(ref), Path(runs_dir) / str(ref)]
        for candidate in candidates:
            if (candidate / "config.yaml").is_file():
                return cls(candidate)
        raise VaekitUsageError(
            f"no run '{ref}': expected a run directory with config.yaml (looked in "
            f"{' and '.join(str(c) for c in candidates)})"
        )

    # ---------------------------------------------------------------- metrics

    def append_metrics(self, record: dict) -> None:
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(_json_safe(record), allow_nan=False) + "\n")

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop records after ``last_epoch`` (written before an interruption, not in last.pt)."""
        kept = [r for r in self.read_metrics() if r.get("epoch", 0) <= last_epoch]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write_bytes(self.metrics_path, lambda h: h.write(text.encode()))

    def write_results(self, metrics: dict, name: str = "metrics.json") -> Path:
        path = self.results / name
        text = json.dumps(_json_safe(metrics), indent=2, allow_nan=False)
        atomic_write_bytes(path, lambda h: h.write(text.encode()))
        return path

    def read_results(self, name: str = "metrics.json") -> dict:
        path = self.results / name
        return json.loads(path.read_text()) if path.is_file() else {}

    # ---------------------------------------------------------------- checkpoints

    def save_checkpoint(self, obj: Any, name: str) -> Path:
        path = self.checkpoints / name
        atomic_write_bytes(path, lambda h: torch.save(obj, h))
        return path

    def train_state(self) -> dict:
        """The trainer's state saved in last.pt (epoch, best epochs, ...); empty if none was saved."""
        if not (self.checkpoints / "last.pt").is_file():
            return {}
        return self.load_checkpoint("last.pt")["state"]

    def load_checkpoint(self, name: str, device: torch.device | str = "cpu") -> Any:
        path = self.checkpoints / name
        if not path.is_file():
            raise VaekitUsageError(f"{path} not found: has this run finished an epoch?")
        return torch.load(path, map_location=device, weights_only=True)
