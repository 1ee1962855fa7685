"""Machine-readable output: exactly one JSON document on stdout (`--json`)."""

from __future__ import annotations

import json

import typer

from vaekit.jsonl import json_safe

JsonOption = typer.Option("--json", help="Print one JSON document on stdout and nothing else.")


def print_json(document) -> None:
    """Print ``document`` as strict JSON (NaN and infinity become null) on stdout, without rich."""
    typer.echo(json.dumps(json_safe(document), indent=2, allow_nan=False, default=str))
