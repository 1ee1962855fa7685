"""The run directory: everything one training run produced, enough to rebuild it.

    runs/<run_id>/
      config.yaml              resolved configuration
      metrics.jsonl            one JSON object per epoch (the source of truth for curves)
      steps.jsonl              one JSON object every train.log_every_steps steps (per-dimension KL)
      provenance.json          versions, git commit, device, command line of each training session
                               (and 'sweep': the study and trial number of a sweep's run)
      checkpoints/vae_best.pth model state dict at the best validation loss
      checkpoints/encoder.pth  encoder state dict (same epoch)
      checkpoints/decoder.pth  decoder state dict (same epoch)
      checkpoints/last.pt      model, optimizer, scheduler, epoch, RNG: what --resume reads
      checkpoints/epoch_NNN.pt model state dict after epoch NNN (train.checkpoint_every)
      results/metrics.json     evaluation metrics (written by training's final eval and by `eval`)
      results/*.png            curves, samples, reconstructions
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from vaekit.checkpoint_files import EPOCH_CHECKPOINT, read_checkpoint, weights_mismatch
from vaekit.errors import VaekitUsageError
from vaekit.files import REFUSED_WRITES, atomic_write_bytes, disk_error, remove_stale_temp_files
from vaekit.jsonl import append_record, json_safe, read_records, truncate_records

RUN_ID_PATTERN = re.compile(r"^run_(\d+)$")


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
    def steps_path(self) -> Path:
        return self.path / "steps.jsonl"

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
            return run  # it is written only once everything is checked (experiment.py)
        if exists and not overwrite:
            raise VaekitUsageError(
                f"run '{run_id}' already exists in {runs_dir}; pass --resume to continue it or "
                "--overwrite to replace it"
            )
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            if exists:
                shutil.rmtree(run.path)
            run.checkpoints.mkdir(parents=True, exist_ok=True)
            run.results.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            if error.errno in REFUSED_WRITES:
                raise disk_error(Path(error.filename or run.path), error) from None
            raise
        return run

    def reopen(self) -> list[Path]:
        """Make a resumed run ready for writing: its folders exist, and the temp files that a killed
        process left behind (an interrupted atomic write) are deleted; returns those.

        Called by --resume once every check has passed (a refused resume changes nothing); no other
        command writes the same run's checkpoints at the same time.
        """
        self.results.mkdir(parents=True, exist_ok=True)
        return [p for folder in (self.path, self.checkpoints, self.results) for p in remove_stale_temp_files(folder)]

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

    def append_metrics(self, record: dict, path: Path | None = None) -> None:
        """Append one line to metrics.jsonl (or to ``path``, another JSON-lines log of the run such as
        steps.jsonl); a write the disk refuses is undone, so no half line is left behind."""
        append_record(path or self.metrics_path, record)

    def read_metrics(self, quiet: bool = False, path: Path | None = None) -> list[dict]:
        """The epoch records (or the records of ``path``, e.g. steps.jsonl); see ``read_records``."""
        return read_records(path or self.metrics_path, quiet)

    def truncate_metrics(self, last_epoch: int, path: Path | None = None, key: str = "epoch") -> list[dict]:
        """Drop records after ``last_epoch`` (written before an interruption, not in last.pt), and
        a torn last line, from metrics.jsonl (or ``path``); returns the dropped records. With
        ``key='step'``, ``last_epoch`` is the last step kept (steps.jsonl after a mid-epoch last.pt)."""
        return truncate_records(path or self.metrics_path, last_epoch, key)

    def read_provenance(self) -> list[dict]:
        """The training sessions recorded in provenance.json, oldest first (empty for a run made
        before vaekit wrote it); see vaekit.training.callbacks.provenance."""
        path = self.path / "provenance.json"
        return json.loads(path.read_text()).get("sessions", []) if path.is_file() else []

    def write_provenance(self, key: str, value: Any) -> None:
        """Set one top-level entry of provenance.json ('sessions', or e.g. 'sweep': the study and trial
        that made the run), keeping the others."""
        path = self.path / "provenance.json"
        document = json.loads(path.read_text()) if path.is_file() else {}
        text = json.dumps({**document, key: json_safe(value)}, indent=2)
        atomic_write_bytes(path, lambda h: h.write(text.encode()))

    def write_results(self, metrics: dict, name: str = "metrics.json") -> Path:
        path = self.results / name
        text = json.dumps(json_safe(metrics), indent=2, allow_nan=False)
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

    def epoch_checkpoints(self) -> dict[int, Path]:
        """The kept checkpoints/epoch_NNN.pt files by epoch, oldest first."""
        found = {int(m.group(1)): p for p in self.checkpoints.glob("epoch_*.pt")
                 if (m := EPOCH_CHECKPOINT.match(p.stem))}
        return dict(sorted(found.items()))

    def checkpoint_choices(self) -> list[str]:
        """The names ``--checkpoint`` accepts for this run: best, last and each kept epoch_NNN."""
        names = [name for name, file in (("best", "vae_best.pth"), ("last", "last.pt"))
                 if (self.checkpoints / file).is_file()]
        return names + [p.stem for p in self.epoch_checkpoints().values()]

    def resolve_checkpoint(self, choice: str) -> tuple[str, str | None, int]:
        """Where the weights of ``--checkpoint choice`` are: (file under checkpoints/, key in it or
        None for a bare state dict, epoch). ``choice`` is best, last or epoch_NNN (epoch_4 works too);
        anything else is one error listing the run's checkpoints."""
        state = self.train_state() if (self.checkpoints / "last.pt").is_file() else {}
        match = EPOCH_CHECKPOINT.match(choice)
        if choice == "best" and (self.checkpoints / "vae_best.pth").is_file():
            return "vae_best.pth", None, state.get("best_epoch", 0)
        if choice == "last" and state:
            return "last.pt", "model", state.get("epoch", 0)
        if match and int(match.group(1)) in self.epoch_checkpoints():
            epoch = int(match.group(1))
            return self.epoch_checkpoints()[epoch].name, None, epoch
        raise VaekitUsageError(f"run '{self.run_id}' has no checkpoint '{choice}'; available: "
                               f"{', '.join(self.checkpoint_choices()) or 'none'}")

    def train_state(self) -> dict:
        """The trainer's state saved in last.pt (epoch, best epochs, ...); empty if none was saved."""
        if not (self.checkpoints / "last.pt").is_file():
            return {}
        return self.load_checkpoint("last.pt")["state"]

    def load_checkpoint(self, name: str, device: torch.device | str = "cpu") -> Any:
        """Load checkpoints/``name``; a missing, damaged or foreign file is one error naming it
        (``vaekit.checkpoint_files.read_checkpoint``)."""
        return read_checkpoint(self.checkpoints / name, device, ": has this run finished an epoch?")

    def load_weights(self, model: torch.nn.Module, name: str, device: torch.device | str = "cpu",
                     key: str | None = None) -> dict:
        """Load the state dict in checkpoint ``name`` (or under ``key`` of it) into ``model``;
        weights that do not fit the model are one error naming the file and the first mismatch.
        Returns the loaded checkpoint."""
        loaded = self.load_checkpoint(name, device)
        weights = loaded[key] if key else loaded
        mismatch = weights_mismatch(model, weights)
        if mismatch:
            raise VaekitUsageError(f"{self.checkpoints / name} does not fit the model in {self.config_path} "
                                   f"({mismatch})")
        model.load_state_dict(weights)
        return loaded
