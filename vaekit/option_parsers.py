"""Typer ``parser`` functions for numeric options whose errors echo the value given.

The generated flags use them: the config fields' (``vaekit.cli.config_flags``) and the domains'
collect options (``vaekit.cli.collect``).
"""

from __future__ import annotations

from collections.abc import Callable

import typer


def integer(minimum: int | None = None) -> Callable[[str], int]:
    """A Typer ``parser`` for an integer option whose error echoes the value given
    ("Invalid value for '--epochs': expected an integer, got 'ten'"); Typer's own message does not."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise typer.BadParameter(f"expected an integer, got {text!r}") from None
        if minimum is not None and value < minimum:
            raise typer.BadParameter(f"expected an integer ≥ {minimum}, got {value}")
        return value

    return parse


def number(text: str) -> float:
    """A Typer ``parser`` for a float option whose error echoes the value given."""
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"expected a number, got {text!r}") from None
