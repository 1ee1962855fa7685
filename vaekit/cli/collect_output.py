"""What every `vaekit collect DOMAIN` command shows: a progress bar and the corpus summary table.

The commands themselves live in their domain's module (``Domain.collect_cli``) and return a
``vaekit.collecting.Collected``; ``vaekit.cli.collect`` wraps each one with these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vaekit.cli.common import console


class RichProgress:
    """A ``vaekit.collecting.ProgressReporter`` drawing transient rich progress bars."""

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator["_RichTask"]:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            yield _RichTask(progress, progress.add_task(description, total=total, detail=""))


class _RichTask:
    def __init__(self, progress: Progress, task_id):
        self.progress, self.task_id = progress, task_id

    def advance(self, amount: int = 1) -> None:
        self.progress.advance(self.task_id, amount)

    def update(self, **changes) -> None:
        self.progress.update(self.task_id, **{k: v for k, v in changes.items() if v is not None})


def print_corpus_summary(path: Path, metadata: dict, seconds: float, extra: dict | None = None) -> None:
    """The table every collect command ends with: items per split, the command's own facts, the
    source and seed, and the time taken."""
    table = Table(title=f"Corpus written: {path}", show_header=False)
    for split, n in metadata["counts"].items():
        table.add_row(f"{split} samples", f"{n:,}")
    for key, value in (extra or {}).items():
        table.add_row(key, str(value))
    for key in ("source", "seed"):  # a deterministic collection (gaussians) has no seed
        if key in metadata:
            table.add_row(key, str(metadata[key]))
    table.add_row("seconds", f"{seconds:.1f}")
    console.print(table)
