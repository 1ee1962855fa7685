"""What every `vaekit collect DOMAIN` command shows: a progress bar and the corpus summary table.

The commands themselves live in their domain's module (``Domain.collect_cli``); they import these.
"""

from __future__ import annotations

from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vaekit.cli.common import console


def collect_progress(*extra_columns) -> Progress:
    """A transient progress bar (description, bar, done/total, extra columns, elapsed time)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *extra_columns,
                    TimeElapsedColumn(), console=console, transient=True)


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
