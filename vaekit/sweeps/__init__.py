"""`vaekit sweep`: the specification documents' experiment tables as Optuna studies, one trial = one ordinary run.

    space.py      SPACE.yaml: categorical lists, number ranges, one_of bundles of several keys
    plan.py       the whole request checked before anything is written
    objective.py  what a sweep optimises, and a trial's value from its run
    storage.py    where the study lives (SQLite by default, any Optuna URL, journal:PATH)
    study.py      create or join a study; the grid queued once; trials handed out
    trial.py      one trial: train_run with the trial's values, pruning, failures, retries
    workers.py    one worker loop, or K worker processes
    report.py     the table, plots, Pareto front, and the list of studies
"""

from __future__ import annotations

import importlib

from rich.console import Console

__all__ = ["SweepOutcome", "SweepPlan", "list_studies", "make_plan", "run_sweep", "sweep", "sweep_report"]
_HOMES = {"SweepPlan": "plan", "make_plan": "plan", "list_studies": "report", "sweep_report": "report",
          "SweepOutcome": "workers", "run_sweep": "workers"}


def __getattr__(name: str):
    """The public names, imported on first use: a worker process that only takes trials
    (``vaekit.sweeps.study``) does not import torch through the plan's domains."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"vaekit.sweeps.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'vaekit.sweeps' has no attribute '{name}'")


def sweep(domain: str, space_file, runs_dir, console: Console | None = None, **request) -> "SweepOutcome":
    """Check a sweep request whole (``make_plan``), then run its study to the end (``run_sweep``).

    Raises:
        VaekitUsageError: a bad space, objective, sampler or study (nothing is written).
        Interrupted: SIGTERM or Ctrl-C; the same call again continues the study.
    """
    from vaekit.sweeps.plan import make_plan
    from vaekit.sweeps.workers import run_sweep

    return run_sweep(make_plan(domain, space_file, runs_dir, **request), console)
