"""A domain's `collect`: its options declared as data, what it gives back, and how it reports
progress without knowing the terminal: the library computes, the command line prints (litgpt's data
modules do the same).

A domain declares its collect options once (``CollectOption``: keyword, type, default, help, least
value) and a collector function taking them; ``vaekit.cli.collect`` generates the flags from the
declarations, and ``Domain.collect(**options)`` calls the collector from Python with the same
defaults and checks. The collector returns a ``Collected`` (the corpus file, its metadata, the facts
and notes worth showing) and reports progress through ``progress_task``; the command line draws the
progress with rich and prints the summary. Called from Python, nothing is drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vaekit.errors import VaekitUsageError

REQUIRED: Any = object()  # the default of an option the user must give


@dataclass(frozen=True)
class CollectOption:
    """One option of a domain's collect.

    Attributes:
        name: the collector's keyword (``from_`` for a Python keyword); the flag is ``--`` and the
            name without a trailing ``_``, with ``-`` for ``_`` (``--from``, ``--frame-size``).
        kind: the value's type: int, float, str, Path or bool (a ``--x/--no-x`` flag).
        default: the value when the option is not given; ``REQUIRED`` where it must be, None where
            the collector decides.
        help: its line in `vaekit collect DOMAIN --help`.
        minimum: the least value of a number.
        many: the option may be repeated; the collector gets a list.
    """

    name: str
    kind: type
    default: Any = REQUIRED
    help: str = ""
    minimum: int | None = None
    many: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.rstrip("_").replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any) -> None:
        """Refuse a number below ``minimum`` (VaekitUsageError naming the flag)."""
        if self.minimum is not None and value is not None and value < self.minimum:
            raise VaekitUsageError(f"{self.flag} {value}: expected at least {self.minimum}")


@dataclass
class Collected:
    """A corpus a collect command wrote.

    Attributes:
        path: the .npz file.
        metadata: what the corpus records of itself (``counts`` per split, source, seed, ...).
        facts: further rows of the summary (name -> value), in order.
        notes: remarks for the user (e.g. what was converted on the way).
    """

    path: Path
    metadata: dict
    facts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def collect_with(options: tuple[CollectOption, ...], collector, given: dict[str, Any]) -> Collected:
    """Call ``collector`` with ``given`` completed by the declared defaults, after checking that every
    name is declared, every required option given and every number in range."""
    declared = {option.name: option for option in options}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise VaekitUsageError(f"unknown collect option {unknown[0]!r}; expected one of {', '.join(declared)}")
    missing = [o.flag for o in options if o.required and o.name not in given]
    if missing:
        raise VaekitUsageError(f"collect needs {', '.join(missing)}")
    values = {name: given.get(name, option.default) for name, option in declared.items()}
    for name, value in values.items():
        declared[name].check(value)
    return collector(**values)


class ProgressTask(Protocol):
    def advance(self, amount: int = 1) -> None: ...
    def update(self, *, completed: int | None = None, total: int | None = None, description: str | None = None,
               detail: str | None = None) -> None: ...


class ProgressReporter(Protocol):
    """Draws tasks; the command line installs one (``reporting_to``), the library only calls it."""

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[ProgressTask]: ...


class _Silent:
    """The reporter of library calls: progress goes nowhere."""

    def advance(self, amount: int = 1) -> None:
        pass

    def update(self, **changes) -> None:
        pass

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[ProgressTask]:
        yield self


_REPORTER: ContextVar[ProgressReporter] = ContextVar("vaekit_progress_reporter", default=_Silent())


@contextmanager
def progress_task(description: str, total: int | None = None) -> Iterator[ProgressTask]:
    """A task of the current reporter: ``advance(k)``, ``update(completed=..., detail=...)``."""
    with _REPORTER.get().task(description, total) as task:
        yield task


@contextmanager
def reporting_to(reporter: ProgressReporter) -> Iterator[None]:
    """Send the progress of everything inside to ``reporter``."""
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)
