"""What a domain's `collect` command gives back, and how it reports progress without knowing the
terminal: the library computes, the command line prints (litgpt's data modules do the same).

A domain's collect command returns a ``Collected`` (the corpus file, its metadata, the facts and
notes worth showing) and reports progress through ``progress_task``; ``vaekit.cli.collect`` wraps
every command, draws the progress with rich and prints the summary. Called from Python, nothing is
drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Protocol

import typer


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


# The options every collect command that can write a sharded corpus takes (one declaration).
ShardsOption = Annotated[bool, typer.Option(
    "--shards", help="Write a sharded corpus folder (--out's .npz becomes .shards): .npy shards and an index, "
                     "memory-mapped by training, for corpora larger than memory.")]
ShardMibOption = Annotated[float, typer.Option(
    "--shard-mib", help="With --shards: the size of one shard in MiB (the memory a collect holds per array).")]
DEFAULT_SHARD_MIB = 256.0


def shard_bytes(shards: bool, shard_mib: float) -> int | None:
    """The shard size of ``--shards --shard-mib``, or None for an .npz corpus."""
    from vaekit.shards import shard_bytes_from_mib

    return shard_bytes_from_mib(shard_mib) if shards else None
