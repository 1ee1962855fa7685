"""Targets of a domain's metrics, and the advice when one is missed.

A ``Target`` is declared on the metric it belongs to (``vaekit.metrics.Metric(..., target=Target(...))``);
every metric with a target is a line of the evaluation block, in the order the domain lists them.
``TargetCheck`` is the two together, as the block, ``--json`` and the advice read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

Advice = str | Callable[[dict], str]  # a text, or a function of the split's metrics (e.g. of latent_dim)


@dataclass(frozen=True)
class Target:
    """A metric's line in the evaluation block, with an optional pass mark.

    Attributes:
        threshold: the target; None shows the metric without ✓ or ✗. A minimum where the metric is
            higher-is-better, else a maximum.
        source: where the target comes from (a specification), for docs and --json.
        fallbacks: (bound, advice) bands for a missed target, nearest the target first: the first
            band whose bound the value reaches gives the advice (for a maximum: the first bound the
            value stays under). The last band should catch everything. An advice may be a function of
            the split's metrics, for advice that depends on the run (its latent_dim, say).
        fmt, label: how the block shows the value and names it, where its compact layout differs
            from the tables' (ARC's "92.3%" as the specification writes it; a short name where the
            metric's is a sentence); None takes the metric's.
        beneath: a line beneath the evaluation block rather than in it, so that a block a
            specification laid out stays as it wrote it (``Domain.further_targets``); there the
            baselines' figures (``Domain.baselines``) stand beside the value.
        repeated_beneath: a line in the block that is repeated beneath it (without its ✓ or ✗),
            beside the baselines' figures, rather than followed in the block by a line per baseline
            (ARC's pixel accuracy, whose block the specification laid out).
    """

    threshold: float | None = None
    source: str = ""
    fallbacks: tuple[tuple[float, Advice], ...] = ()
    fmt: str | None = None
    label: str | None = None
    beneath: bool = False
    repeated_beneath: bool = False


@dataclass(frozen=True)
class TargetCheck:
    """A metric with its target: what the evaluation block checks.

    Attributes:
        metric: key in the metrics dict.
        label: shown before the value.
        fmt: format of the value.
        higher_is_better: whether the target is a minimum (True) or a maximum.
        (the rest as ``Target``)
    """

    """A headline metric of a domain's evaluation block, with an optional pass mark.

    Attributes:
        metric: key in the metrics dict.
        label: shown before the value ("Pixel-wise Accuracy").
        fmt: format of the value ("{:.1%}").
        threshold: the target; None shows the metric without ✓ or ✗.
        higher_is_better: whether the target is a minimum (True) or a maximum.
        source: where the target comes from (a seed specification), for docs and --json.
        fallbacks: (bound, advice) bands for a missed target, nearest the target first: the first
            band whose bound the value reaches gives the advice (for a maximum: the first bound the
            value stays under). The last band should catch everything. An advice may be a function of
            the split's metrics, for advice that depends on the run (its latent_dim, say).
        repeated_beneath: shown again beneath the block, beside the baselines' figures (``Target``).
    """

    metric: str
    label: str
    fmt: str
    threshold: float | None = None
    higher_is_better: bool = True
    source: str = ""
    fallbacks: tuple[tuple[float, Advice], ...] = ()
    repeated_beneath: bool = False

    def met(self, value: float | None) -> bool | None:
        """True or False against the threshold; None without a threshold or a finite value."""
        if self.threshold is None or value is None or not math.isfinite(value):
            return None
        return value >= self.threshold if self.higher_is_better else value <= self.threshold

    def advice(self, value: float | None, metrics: dict | None = None) -> str | None:
        """The fallback advice for a missed target's band, or None."""
        if self.met(value) is not False:
            return None
        for bound, text in self.fallbacks:
            if (value >= bound) if self.higher_is_better else (value <= bound):
                return text(metrics or {}) if callable(text) else text
        return None

    def baselines(self, metrics: dict) -> dict[str, float]:
        """What each baseline of the split (``metrics["baselines"]``, by name) scores on this metric."""
        return {name: scores[self.metric] for name, scores in metrics.get("baselines", {}).items()
                if self.metric in scores}

    def outcome(self, metrics: dict) -> dict:
        """The target's result for one metrics dict, as `vaekit eval --json` reports it: ``baselines``
        holds every baseline's figure by name, ``baseline`` the first one's (None without any)."""
        value = metrics.get(self.metric)
        baselines = self.baselines(metrics)
        return {"metric": self.metric, "label": self.label, "value": value, "target": self.threshold,
                "higher_is_better": self.higher_is_better, "met": self.met(value),
                "advice": self.advice(value, metrics), "source": self.source,
                "baseline": next(iter(baselines.values()), None), "baselines": baselines}
