"""Rendering shared by every `vaekit collect` command: a progress bar and the corpus summary table."""

from __future__ import annotations

from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vaekit.cli.common import console


def collect_progress() -> Progress:
    """A transient bar: description, bar, done/total, elapsed time."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def print_corpus_summary(path: Path, metadata: dict, seconds: float, extra: dict | None = None) -> None:
    """The table every collect prints: samples per split, the domain's extra rows, source, seed, time."""
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
