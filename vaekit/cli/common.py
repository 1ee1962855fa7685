"""What every command shares: consoles, the usage-error handler, and common option types."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vaekit.errors import VaekitUsageError

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Folder holding run directories.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]


def usage_errors_exit_2(command):
    """Turn a VaekitUsageError into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except VaekitUsageError as err:
            err_console.print(f"Error: {err}", markup=False)
            raise typer.Exit(code=2) from None

    return wrapper
