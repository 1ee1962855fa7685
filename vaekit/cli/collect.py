"""`vaekit collect <domain>`: build a corpus .npz.

Each domain declares its own command (``Domain.collect_cli``, in the domain's module): it computes
and returns a ``vaekit.collecting.Collected``. This module registers one subcommand per domain that
has one, draws its progress and prints its summary, so a new domain needs no edit here.
"""

from __future__ import annotations

import functools
import time

import typer

from vaekit.cli.collect_output import RichProgress, print_corpus_summary
from vaekit.cli.common import cli_errors, err_console
from vaekit.collecting import reporting_to
from vaekit.domains import DOMAINS

app = typer.Typer(help="Collect a corpus for a domain into one .npz file (see `vaekit collect DOMAIN --help`).",
                  no_args_is_help=True)


def shown(collect_command):
    """The domain's collect command with its progress drawn and its summary and notes printed."""

    @functools.wraps(collect_command)
    def command(**options):
        started = time.perf_counter()
        with reporting_to(RichProgress()):
            collected = collect_command(**options)
        print_corpus_summary(collected.path, collected.metadata, time.perf_counter() - started, collected.facts)
        for note in collected.notes:
            err_console.print(f"note: {note}", markup=False, highlight=False)

    return command


for _name in DOMAINS.names():
    _command = DOMAINS.get(_name).collect_cli
    if _command is not None:
        app.command(_name)(cli_errors(shown(_command)))
