"""The CLI's error handler: one line, the documented exit code, tracebacks only on request."""

from __future__ import annotations

import errno

import pytest
import typer

from vaekit.cli.common import cli_errors, settings
from vaekit.errors import (EXIT_DISK, EXIT_INTERRUPTED, EXIT_NON_FINITE, EXIT_TERMINATED, EXIT_USAGE, DiskError,
                           Interrupted, NonFiniteError, VaekitUsageError)


@pytest.mark.parametrize("error, code, message", [
    (VaekitUsageError("train.lr must be positive, got -0.1"), EXIT_USAGE, "Error: train.lr must be positive, got -0.1"),
    (NonFiniteError("loss is NaN at epoch 3, step 7 (reconstruction)"), EXIT_NON_FINITE, "epoch 3, step 7"),
    (DiskError("cannot write runs/r/checkpoints/last.pt: No space left on device"), EXIT_DISK, "last.pt"),
    (Interrupted("stopped by SIGTERM", EXIT_TERMINATED), EXIT_TERMINATED, "SIGTERM"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "Interrupted."),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.png"), EXIT_DISK,
     "Error: cannot write /data/out.png: No space left on device"),
    (OSError(errno.ENOTCONN, "Transport endpoint is not connected"), 1, "internal error: OSError"),
    (ZeroDivisionError("division by zero"), 1,
     "internal error: ZeroDivisionError: division by zero; rerun with VAEKIT_DEBUG=1"),
])
def test_each_failure_class_has_its_exit_code(error, code, message, capsys, monkeypatch):
    monkeypatch.delenv("VAEKIT_DEBUG", raising=False)

    @cli_errors
    def command():
        raise error

    with pytest.raises(typer.Exit) as exit_:
        command()
    assert exit_.value.exit_code == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_debug_shows_the_traceback_and_keeps_the_code(capsys, monkeypatch):
    monkeypatch.setattr(settings, "debug", True)

    @cli_errors
    def command():
        raise DiskError("cannot write x: No space left on device")

    with pytest.raises(typer.Exit) as exit_:
        command()
    assert exit_.value.exit_code == EXIT_DISK
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("Error: cannot write x: No space left on device")
