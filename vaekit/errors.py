"""Errors that the CLI turns into one clear line on stderr and exit code 2."""

import difflib
from collections.abc import Iterable


class VaekitUsageError(Exception):
    """Bad input from the user: a wrong key, value, name or missing file."""


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name_error(kind: str, name: str, valid: Iterable[str]) -> VaekitUsageError:
    """Build the standard 'unknown X' error that names the nearest valid choice."""
    valid = sorted(valid)
    hint = nearest(name, valid)
    suggestion = f" Did you mean '{hint}'?" if hint else ""
    return VaekitUsageError(
        f"unknown {kind} '{name}'.{suggestion} Valid {kind}s: {', '.join(valid)}."
    )
