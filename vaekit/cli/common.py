"""What every command shares: consoles, the error handler, and common option types."""

from __future__ import annotations

import functools
import os
import traceback
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vaekit.errors import (EXIT_DISK, EXIT_INTERNAL, EXIT_INTERRUPTED, VaekitError, VaekitWarning,
                           first_line)
from vaekit.files import REFUSED_WRITES
from vaekit.option_parsers import integer, number  # noqa: F401 - the commands' option parsers

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Folder holding run directories.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
CheckpointOption = Annotated[str, typer.Option(
    "--checkpoint", help="Which weights: best (checkpoints/vae_best.pth), last (the last finished epoch) or "
                         "epoch_NNN (kept by train.checkpoint_every).")]

DEBUG_VARIABLE = "VAEKIT_DEBUG"


def domain_help() -> str:
    """The help of a DOMAIN argument, naming the registered domains."""
    from vaekit.domains import list_domains

    return f"Data domain: {', '.join(list_domains())}."


class _Settings:
    debug = False  # set by the global --debug option (vaekit.cli.main_options)


settings = _Settings()


def debugging() -> bool:
    """Show tracebacks: the --debug option or VAEKIT_DEBUG=1 in the environment."""
    return settings.debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _fail(message: str, code: int) -> typer.Exit:
    if debugging():
        traceback.print_exc()
    err_console.print(message, markup=False)
    return typer.Exit(code=code)


def _show_vaekit_warnings_as_lines() -> None:
    """Inside warnings.catch_warnings(): print VaekitWarnings as one 'warning: ...' line each."""
    original = warnings.showwarning
    warnings.simplefilter("always", VaekitWarning)

    def show(message, category, *args, **kwargs):
        if issubclass(category, VaekitWarning):
            err_console.print(f"warning: {message}", markup=False)
        else:
            original(message, category, *args, **kwargs)

    warnings.showwarning = show


def cli_errors(command):
    """Run a command so that a failure is one line on stderr and a documented exit code.

    VaekitError subclasses carry their code (2 bad input, 65 non-finite, 74 disk, 130/143
    interrupted); an OSError the file system raised for a write is a disk error naming the file;
    Ctrl-C exits 130; anything else is an internal error, exit 1. Tracebacks only with --debug or
    VAEKIT_DEBUG=1. VaekitWarnings print as 'warning: ...' lines.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            _show_vaekit_warnings_as_lines()
            try:
                return command(*args, **kwargs)
            except (typer.Exit, typer.Abort, SystemExit):
                raise
            except VaekitError as error:
                raise _fail(f"Error: {error}", error.exit_code) from None
            except KeyboardInterrupt:
                raise _fail("Interrupted.", EXIT_INTERRUPTED) from None
            except OSError as error:
                if error.errno in REFUSED_WRITES:
                    where = error.filename or "a file"
                    raise _fail(f"Error: cannot write {where}: {error.strerror}", EXIT_DISK) from None
                raise _fail(_internal(error), EXIT_INTERNAL) from None
            except Exception as error:  # noqa: BLE001 - the last resort: one line instead of a traceback
                raise _fail(_internal(error), EXIT_INTERNAL) from None

    return wrapper


def _internal(error: BaseException) -> str:
    return (f"internal error: {type(error).__name__}: {first_line(error)}; rerun with {DEBUG_VARIABLE}=1 "
            "(or vaekit --debug ...) for the traceback")

