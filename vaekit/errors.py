"""Errors, warnings and exit codes: every failure a user can meet, in one place.

Each error class carries the exit code the command line ends with; the CLI prints the error as one
line on stderr (docs/errors.md lists the codes):

    2    VaekitUsageError   bad input: a wrong key, value, name or path, an unreadable file
    65   NonFiniteError     training produced a non-finite loss or gradient
    74   DiskError          the file system refused a write (full, read-only, no permission)
    130  Interrupted        Ctrl-C (SIGINT); 143 when stopped by SIGTERM
    1    anything else      an internal error (a bug): one line, the traceback with --debug
"""

import difflib
import warnings
from collections.abc import Iterable

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NON_FINITE = 65  # sysexits EX_DATAERR
EXIT_DISK = 74  # sysexits EX_IOERR
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class VaekitError(Exception):
    """A failure the user can act on; ``exit_code`` is what the command line exits with."""

    exit_code = EXIT_INTERNAL


class VaekitUsageError(VaekitError):
    """Bad input from the user: a wrong key, value, name, a missing or unreadable file."""

    exit_code = EXIT_USAGE


class NonFiniteError(VaekitError):
    """Training produced a non-finite loss or gradient (raised by the training loop's guard)."""

    exit_code = EXIT_NON_FINITE


class DiskError(VaekitError):
    """The file system refused a write: the disk is full, the folder read-only or not ours."""

    exit_code = EXIT_DISK


class Interrupted(VaekitError):
    """The run was stopped by a signal: exit 130 for SIGINT (Ctrl-C), 143 for SIGTERM."""

    def __init__(self, message: str, exit_code: int = EXIT_INTERRUPTED):
        super().__init__(message)
        self.exit_code = exit_code


class VaekitWarning(UserWarning):
    """Something the user should know that does not stop the command (e.g. a repaired log line)."""


def warn(message: str) -> None:
    """Issue a VaekitWarning; the CLI prints it as one 'warning: ...' line on stderr."""
    warnings.warn(message, VaekitWarning, stacklevel=2)


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, shortened: for errors quoted inside our own."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name_error(kind: str, name: str, valid: Iterable[str]) -> VaekitUsageError:
    """Build the standard 'unknown X' error that names the nearest valid choice."""
    valid = sorted(valid)
    hint = nearest(name, valid)
    suggestion = f" Did you mean '{hint}'?" if hint else ""
    kinds = kind[:-1] + "ies" if kind.endswith("y") and kind[-2:-1] not in "aeiou" else kind + "s"  # studies
    return VaekitUsageError(
        f"unknown {kind} '{name}'.{suggestion} Valid {kinds}: {', '.join(valid)}."
    )
