"""A sweep request checked whole before anything is written: the space against the config (every grid
point, or every value of every axis), the objective, the sampler, the trial budget and the workers."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vaekit.domains import get_domain
from vaekit.errors import VaekitUsageError
from vaekit.experiment import resolve_config
from vaekit.sweeps.objective import Objective, resolve_objective
from vaekit.sweeps.space import MAX_GRID, Space, load_space
from vaekit.sweeps.storage import storage_url

SAMPLERS = ("grid", "random", "tpe")
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SweepPlan:
    """Everything a worker process needs to run trials of one study (picklable)."""

    domain: str
    space: Space
    study: str
    objective: Objective
    sampler: str
    trials: int
    storage: str
    runs_dir: Path
    config_file: Path | None = None
    layers: tuple = ()  # (source, nested overrides) applied before each trial's values: --data, --set
    workers: int = 1
    prune: bool = False
    grid: tuple = ()  # the parameter sets of a grid sweep, in order (empty for random and tpe)
    set_options: tuple = field(default=(), compare=False)
    threads_set: int | None = None  # a --set threads=N, which wins over the split below

    @property
    def threads(self) -> int:
        """Torch threads of each trial: a --set threads=N, else the cores split between the workers
        (max(1, cores // workers)), never oversubscribed."""
        return self.threads_set or max(1, available_cores() // self.workers)

    def study_attrs(self) -> dict:
        """What the study records about itself; a later command must ask for the same sweep: the same
        space, metric and sampler, and the same fixed settings of every trial (the --config file and
        its content, the --set options, the --data corpus)."""
        data = next((layer["data"]["path"] for source, layer in self.layers if source == "--data"), None)
        content = (hashlib.sha256(self.config_file.read_bytes()).hexdigest()[:16]
                   if self.config_file and self.config_file.is_file() else None)
        return {"domain": self.domain, "space": self.space.to_dict(), "objective": self.objective.metric,
                "direction": self.objective.direction, "sampler": self.sampler,
                "trials": self.trials if self.grid else None,
                "config": str(self.config_file) if self.config_file else None, "config_content": content,
                "set": list(self.set_options), "data": data}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _DryItems:
    """A few training items of the sweep's corpus, loaded once, for the dry step of every point that
    sets model keys (``vaekit.validation.check_fits_data``), with the model options the data implies."""

    def __init__(self, domain: str):
        self.domain, self.loaded = get_domain(domain), {}

    def check(self, config) -> None:
        import torch

        from vaekit.validation import check_fits_data

        if not Path(config.data.path).is_file():  # each trial refuses a missing corpus itself
            return
        if config.data.path not in self.loaded:
            corpus = self.domain.load(config.data.path)
            items = torch.as_tensor(self.domain.training_arrays(corpus)["train"][:8])
            self.loaded[config.data.path] = (items, self.domain.infer_model_options(corpus))
        items, inferred = self.loaded[config.data.path]
        config.model.options = {**inferred, **config.model.options}
        check_fits_data(config, items, torch.device("cpu"))


def _check_point(domain: str, config_file: Path | None, layers: list, space: Space, params: dict,
                 dry: _DryItems) -> None:
    """Resolve the config of one parameter set (and, when the space sets model keys, build its model
    and run one training step on a few items of the corpus); an error names the file and the values."""
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    overrides = space.overrides(params)
    try:
        config = resolve_config(domain, config_file, [*layers, (f"{space.source} ({shown})", overrides)])
        if "model" in overrides:
            dry.check(config)
    except VaekitUsageError as error:
        message = str(error)
        raise VaekitUsageError(message if message.startswith(space.source) else
                               f"{space.source} ({shown}): {message}") from None


def _axis_values(space: Space) -> list[dict]:
    """Each value of each axis (range ends for a range) with the other axes at their first value."""
    first = {a.name: (a.low if a.is_range else a.labels[0]) for a in space.axes}
    points = []
    for axis in space.axes:
        values = [axis.low, axis.high] if axis.is_range else axis.labels
        points += [{**first, axis.name: value} for value in values]
    return points


def make_plan(domain: str, space_file: Path, runs_dir: Path, config_file: Path | None = None,
              set_options: list[str] | None = None, data: Path | None = None, study: str | None = None,
              trials: int | None = None, sampler: str = "grid", objective: str | None = None,
              direction: str | None = None, storage: str | None = None, workers: int = 1,
              prune: bool = False) -> SweepPlan:
    """Check a sweep request whole and return its plan; nothing is written.

    Raises:
        VaekitUsageError: an unknown key or a bad value in the space (with the file and the values), an
            empty list, a range under the grid sampler, more trials than grid points, an unknown
            objective, sampler or study name.
    """
    from vaekit.config import parse_set_option

    dom = get_domain(domain)
    if sampler not in SAMPLERS:
        raise VaekitUsageError(f"--sampler '{sampler}': expected one of {', '.join(SAMPLERS)}")
    if workers < 1:
        raise VaekitUsageError(f"--workers {workers}: expected at least 1")
    if trials is not None and trials < 1:
        raise VaekitUsageError(f"--trials {trials}: expected at least 1")
    space = load_space(space_file)
    study = study or space_file.stem
    if not STUDY_NAME.match(study):
        raise VaekitUsageError(f"--study '{study}': use letters, digits, '_', '-' and '.' (it prefixes run ids)")
    layers = [("--data", {"data": {"path": str(data)}})] if data else []
    layers += [(f"--set {item}", parse_set_option(item)) for item in set_options or []]
    base = resolve_config(domain, config_file, layers)
    goal = resolve_objective(dom, dom.check_model(base.model.name), objective, direction)
    grid: list[dict] = []
    if sampler == "grid":
        size = 1
        for axis in space.axes:
            size *= 1 if axis.is_range else len(axis.labels)
        if size > MAX_GRID:
            raise VaekitUsageError(f"{space.source}: the grid has {size:,} points (at most {MAX_GRID:,}); "
                                   "use --sampler random or tpe with --trials")
        grid = space.grid()
        if trials is not None and trials > len(grid):
            raise VaekitUsageError(f"--trials {trials}: the grid of {space.source} has only {len(grid)} points")
        grid = grid[: trials or len(grid)]
    elif trials is None:
        raise VaekitUsageError(f"--sampler {sampler} needs --trials N (how many trials the study runs)")
    dry = _DryItems(domain)
    for params in grid or _axis_values(space):
        _check_point(domain, config_file, layers, space, params, dry)
    return SweepPlan(domain=domain, space=space, study=study, objective=goal, sampler=sampler,
                     trials=trials or len(grid), storage=storage_url(storage, runs_dir), runs_dir=Path(runs_dir),
                     config_file=config_file, layers=tuple(layers), workers=workers, prune=prune,
                     grid=tuple(grid), set_options=tuple(set_options or []),
                     threads_set=base.threads if any("threads" in layer for _, layer in layers) else None)
