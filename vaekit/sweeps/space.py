"""SPACE.yaml: the axes of a sweep, parsed and checked against the config before anything is written.

Three kinds of axis, told apart by their value:

    model.latent_dim: [10, 16, 32, 64]              # a list: a categorical axis over one config key
    train.lr: {low: 1.0e-4, high: 3.0e-3, log: true}  # low/high (log, step): a number range
    beta:                                           # one_of: a named axis whose choices each set several keys
      one_of:
        ae:          {beta.schedule: constant, beta.max_beta: 0.0}
        three_phase: {beta.schedule: three_phase}

Optuna's categorical choices must be scalars, so a ``one_of`` axis stores the label of its choice
('ae'); the keys it sets are in the space, recorded with the study.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaekit.config import dotted_keys, load_yaml, set_dotted, suggest_key
from vaekit.errors import VaekitUsageError, nearest

RANGE_KEYS = ("low", "high", "log", "step")
SCALARS = (bool, int, float, str, type(None))
MAX_GRID = 10_000  # every grid point is checked up front; more than this is surely a typo


def nested(dotted: str, value: Any) -> dict:
    """``{"a": {"b": value}}`` from ``"a.b"`` (the same nesting as --set a.b=value)."""
    layer: dict = {}
    set_dotted(layer, dotted, value)
    return layer


def merge(into: dict, layer: dict) -> dict:
    """Deep-merge ``layer`` into ``into`` (returned)."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


@dataclass(frozen=True)
class Axis:
    """One varied setting: its name (a dotted config key, or the label of a ``one_of`` axis), and either
    ``choices`` (categorical), ``bundles`` (one_of: label -> {dotted key: value}) or a number range."""

    name: str
    choices: tuple = ()
    bundles: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def labels(self) -> list:
        """The values Optuna stores for this axis (categorical choices or one_of labels)."""
        return [label for label, _ in self.bundles] if self.bundles else list(self.choices)

    def overrides(self, value: Any) -> dict:
        """The nested config layer that the axis value ``value`` stands for."""
        if self.bundles:
            keys = dict(self.bundles)[value]
            layer: dict = {}
            for dotted, setting in keys:
                merge(layer, nested(dotted, setting))
            return layer
        return nested(self.name, value)

    def distribution(self):
        """The Optuna distribution of this axis."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if not self.is_range:
            return CategoricalDistribution(self.labels)
        if all(isinstance(v, int) for v in (self.low, self.high)) and isinstance(self.step or 1, int):
            return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return FloatDistribution(float(self.low), float(self.high), log=self.log,
                                 step=None if self.step is None else float(self.step))

    def to_dict(self) -> Any:
        """The axis as it is written in SPACE.yaml (recorded with the study)."""
        if self.bundles:
            return {"one_of": {label: dict(keys) for label, keys in self.bundles}}
        if self.is_range:
            return {k: v for k, v in (("low", self.low), ("high", self.high), ("log", self.log),
                                      ("step", self.step)) if v is not None}
        return list(self.choices)


@dataclass(frozen=True)
class Space:
    """The axes of a sweep, in the order of the file."""

    axes: tuple[Axis, ...]
    source: str = "space"

    @property
    def names(self) -> list[str]:
        return [axis.name for axis in self.axes]

    def axis(self, name: str) -> Axis:
        return next(a for a in self.axes if a.name == name)

    def grid(self) -> list[dict]:
        """Every combination of the axes' values (labels for one_of axes), in file order, last axis fastest."""
        ranges = [a.name for a in self.axes if a.is_range]
        if ranges:
            raise VaekitUsageError(f"{self.source}: '{ranges[0]}' is a range, which the grid sampler cannot "
                                   "enumerate; give it a list of values, or use --sampler random or tpe")
        return [dict(zip(self.names, values)) for values in itertools.product(*(a.labels for a in self.axes))]

    def overrides(self, params: dict) -> dict:
        """The nested config layer of one parameter set (axis name -> value)."""
        layer: dict = {}
        for axis in self.axes:
            merge(layer, axis.overrides(params[axis.name]))
        return layer

    def to_dict(self) -> dict:
        return {axis.name: axis.to_dict() for axis in self.axes}


def _config_key(dotted: str, where: str) -> str:
    """A dotted config key, or the config file's error naming the nearest one (``model.options.X`` is
    free-form, checked against the model by ``vaekit.sweeps.plan``)."""
    keys = dotted_keys()
    free_form = [k for k in keys if k.endswith(".options")]
    if dotted in keys or any(dotted.startswith(f"{k}.") for k in free_form):
        return dotted
    hint = suggest_key(dotted)
    suggestion = f" (did you mean '{hint}'?)" if hint else ""
    raise VaekitUsageError(f"{where}: unknown config key '{dotted}'{suggestion}")


def _scalar_choices(values: list, where: str) -> tuple:
    if not values:
        raise VaekitUsageError(f"{where}: empty list of values; give at least one")
    for value in values:
        if not isinstance(value, SCALARS):
            raise VaekitUsageError(f"{where}: the value {value!r} is not a number, string or boolean; put a "
                                   "list or mapping value in a one_of choice")
    if len(set(map(repr, values))) != len(values):
        raise VaekitUsageError(f"{where}: a value appears twice in {values!r}")
    return tuple(values)


def _range(name: str, spec: dict, where: str) -> Axis:
    unknown = [k for k in spec if k not in RANGE_KEYS]
    if unknown:
        hint = nearest(str(unknown[0]), RANGE_KEYS)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise VaekitUsageError(f"{where}: unknown range field '{unknown[0]}'{suggestion}; a range takes "
                               "low, high, log and step (or write a list of values)")
    if "low" not in spec or "high" not in spec:
        raise VaekitUsageError(f"{where}: a range needs both low and high")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for field, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise VaekitUsageError(f"{where}: {field} must be a number, got {value!r}")
    if not isinstance(log, bool):
        raise VaekitUsageError(f"{where}: log must be true or false, got {log!r}")
    if low >= high:
        raise VaekitUsageError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise VaekitUsageError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and (step <= 0 or log):
        raise VaekitUsageError(f"{where}: step must be positive and cannot be combined with log")
    return Axis(name, low=low, high=high, log=log, step=step)


def _one_of(name: str, bundles: Any, where: str) -> Axis:
    if not isinstance(bundles, dict) or not bundles:
        raise VaekitUsageError(f"{where}: one_of must map each choice's label to the keys it sets")
    parsed = []
    for label, keys in bundles.items():
        inner = f"{where}: one_of '{label}'"
        if not isinstance(keys, dict) or not keys:
            raise VaekitUsageError(f"{inner}: expected a mapping of dotted config keys to values")
        parsed.append((str(label), tuple((_config_key(str(k), inner), v) for k, v in keys.items())))
    return Axis(name, bundles=tuple(parsed))


def parse_space(raw: Any, source: str) -> Space:
    """Parse the mapping of a SPACE.yaml file into a ``Space`` (key names and value shapes only;
    ``vaekit.sweeps.plan.check_space`` checks the values against the config)."""
    if not isinstance(raw, dict) or not raw:
        raise VaekitUsageError(f"{source}: expected a mapping of dotted config keys to values, e.g. "
                               "model.latent_dim: [10, 16, 32]")
    axes = []
    for name, spec in raw.items():
        name, where = str(name), f"{source}: '{name}'"
        if isinstance(spec, dict) and "one_of" in spec:
            if len(spec) > 1:
                raise VaekitUsageError(f"{where}: a one_of axis takes nothing beside one_of")
            axes.append(_one_of(name, spec["one_of"], where))
            continue
        key = _config_key(name, source)
        if isinstance(spec, list):
            axes.append(Axis(key, choices=_scalar_choices(spec, where)))
        elif isinstance(spec, dict):
            axes.append(_range(key, spec, where))
        else:
            raise VaekitUsageError(f"{where}: expected a list of values, {{low, high}} or one_of, got {spec!r}")
    return Space(tuple(axes), source)


def load_space(path: Path) -> Space:
    """Read and parse a SPACE.yaml file; a key written twice in one mapping is refused with both lines
    (YAML would keep the last silently)."""
    if not path.is_file():
        raise VaekitUsageError(f"space file not found: {path}")
    return parse_space(load_yaml(path), str(path))
