"""A progress bar on stderr for commands that work through items (stdout stays for results)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vaekit.cli.common import err_console


@contextmanager
def item_progress(description: str, show: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield a callback ``(items just done, items in all)`` that advances a transient bar."""
    if not show:
        yield lambda done, total: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, advance=done, total=total)

        yield advance
