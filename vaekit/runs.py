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
import math
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vaekit.errors import VaekitUsageError, first_line, warn
from vaekit.files import REFUSED_WRITES, atomic_write_bytes, disk_error, remove_stale_temp_files

RUN_ID_PATTERN = re.compile(r"^run_(\d+)$")
EPOCH_CHECKPOINT = re.compile(r"^epoch_(\d+)$")
# What each training checkpoint holds; a *.pth file is a state dict (name -> tensor).
CHECKPOINT_KEYS = {"last.pt": ("model", "optimizer", "scheduler", "state", "rng")}
# What torch.load raises on an empty, truncated or garbled file.
UNREADABLE_CHECKPOINT = (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, AttributeError,
                         pickle.UnpicklingError, zipfile.BadZipFile)


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
        path = path or self.metrics_path
        line = (json.dumps(_json_safe(record), allow_nan=False) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(line):
                    written += os.write(fd, line[written:])
            except OSError as error:
                os.ftruncate(fd, start)
                if error.errno in REFUSED_WRITES:
                    raise disk_error(path, error) from None
                raise
        finally:
            os.close(fd)

    def read_metrics(self, quiet: bool = False, path: Path | None = None) -> list[dict]:
        """The epoch records (or the records of ``path``, e.g. steps.jsonl). A torn last line (a crash
        while it was written) is skipped with a warning (none when ``quiet``); a bad line anywhere else
        is an error naming the file and the line."""
        path = path or self.metrics_path
        if not path.is_file():
            return []
        lines = path.read_text(errors="replace").splitlines()
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        records = []
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                if index == last:
                    if not quiet:
                            warn(f"{path}: ignoring its last line, which was cut short (a crash while "
                             f"writing it?); --resume drops it from the file")
                    continue
                raise VaekitUsageError(f"{path}, line {index + 1}: not a JSON record ({error.msg}); "
                                       "remove or repair that line") from None
            if not isinstance(record, dict):
                raise VaekitUsageError(f"{path}, line {index + 1}: expected a JSON object per line, "
                                       f"got {type(record).__name__}")
            records.append(record)
        return records

    def truncate_metrics(self, last_epoch: int, path: Path | None = None, key: str = "epoch") -> list[dict]:
        """Drop records after ``last_epoch`` (written before an interruption, not in last.pt), and
        a torn last line, from metrics.jsonl (or ``path``); returns the dropped records. With
        ``key='step'``, ``last_epoch`` is the last step kept (steps.jsonl after a mid-epoch last.pt)."""
        path = path or self.metrics_path
        records = self.read_metrics(path=path)
        kept = [r for r in records if r.get(key, 0) <= last_epoch]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write_bytes(path, lambda h: h.write(text.encode()))
        return [r for r in records if r.get(key, 0) > last_epoch]

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
        text = json.dumps({**document, key: _json_safe(value)}, indent=2)
        atomic_write_bytes(path, lambda h: h.write(text.encode()))

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
        """Load a checkpoint; an empty, truncated, corrupted or foreign file is one error naming it.

        Files written by torch.save are zip archives with a CRC per member, checked here first:
        torch itself would load flipped bytes inside a tensor without noticing.
        """
        path = self.checkpoints / name
        if not path.is_file():
            raise VaekitUsageError(f"{path} not found: has this run finished an epoch?")
        damage = _archive_damage(path)
        if damage is None:
            try:
                loaded = torch.load(path, map_location=device, weights_only=True)
            except UNREADABLE_CHECKPOINT as error:
                damage = f"{type(error).__name__}: {first_line(error, 100)}"
        if damage is not None:
            raise VaekitUsageError(f"{path}: not a readable checkpoint ({damage})")
        problem = _checkpoint_problem(name, loaded)
        if problem:
            raise VaekitUsageError(f"{path}: not a vaekit checkpoint ({problem})")
        return loaded

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
