"""What a sweep optimises: a validation metric and its direction, and a trial's value from its run.

A trial's value is the validation metric at the epoch of the run's ``checkpoints/vae_best.pth`` (the
checkpoint that ``train.selection_metric`` picked and that the test metrics in
``results/metrics.json`` describe), read from ``metrics.jsonl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vaekit.domains import Domain
from vaekit.errors import VaekitUsageError, nearest
from vaekit.metrics import SWEEPABLE_COMMON
from vaekit.runs import RunDir

DIRECTIONS = {"max": "maximize", "min": "minimize"}


def metric_direction(domain: Domain, name: str) -> str:
    """'max' or 'min': the direction the metric's declaration gives (vaekit.metrics), the one
    checkpoint selection ranks it by too."""
    declared = domain.metric(name)
    if declared is None:
        raise VaekitUsageError(f"metric '{name}' is not declared by domain '{domain.name}' or vaekit.metrics.COMMON")
    return declared.direction


def objective_metric_names(domain: Domain, model_cls: type) -> list[str]:
    """The validation metrics a sweep may optimise on this domain with this model."""
    names = [*domain.selection_metric_names(model_cls), *(key for key, _, _ in domain.headline_metrics),
             *SWEEPABLE_COMMON]
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Objective:
    """A validation metric and 'max' or 'min'."""

    metric: str
    direction: str

    @property
    def optuna_direction(self) -> str:
        return DIRECTIONS[self.direction]

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "max" else a < b


def default_objective(domain: Domain) -> tuple[str, str]:
    """The domain's declared ``sweep_metric``, else its first headline metric (a total loss mixes in
    β·KL, so it would rank a β sweep by β), else the validation loss; each in its declared direction."""
    name = domain.sweep_metric or (domain.headline_metrics[0][0] if domain.headline_metrics else "loss")
    return name, metric_direction(domain, name)


def resolve_objective(domain: Domain, model_cls: type, metric: str | None, direction: str | None) -> Objective:
    """The domain's ``default_objective`` unless ``metric``/``direction`` override it; an unknown metric
    or direction is refused with the valid names."""
    default_metric, default_direction = default_objective(domain)
    metric = metric or default_metric
    valid = objective_metric_names(domain, model_cls)
    if metric not in valid:
        hint = nearest(metric, valid)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise VaekitUsageError(f"--metric '{metric}' is not a validation metric of domain '{domain.name}'"
                               f"{suggestion}; choose from: {', '.join(valid)}")
    if direction is None:
        direction = default_direction if metric == default_metric else metric_direction(domain, metric)
    if direction not in DIRECTIONS:
        raise VaekitUsageError(f"--direction '{direction}': expected max or min")
    return Objective(metric, direction)


def objective_value(run: RunDir, metric: str) -> float:
    """The validation ``metric`` at the epoch of the run's best checkpoint.

    Raises:
        VaekitUsageError: the run logged no finite value of it at that epoch.
    """
    best_epoch = run.read_results().get("test", {}).get("epoch")
    records = run.read_metrics(quiet=True)
    record = next((r for r in records if r.get("epoch") == best_epoch), records[-1] if records else {})
    value = record.get(f"val_{metric}")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VaekitUsageError(f"run '{run.run_id}' logged no finite val_{metric} at epoch {best_epoch}")
    return float(value)
