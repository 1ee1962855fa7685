"""`vaekit collect <domain>`: build a corpus .npz.

Each domain declares its own command (``Domain.collect_cli``, in the domain's module); this module
only registers one subcommand per domain that has one, so a new domain needs no edit here.
"""

from __future__ import annotations

import typer

from vaekit.cli.common import cli_errors
from vaekit.domains import DOMAINS

app = typer.Typer(help="Collect a corpus for a domain into one .npz file (see `vaekit collect DOMAIN --help`).",
                  no_args_is_help=True)

for _name in DOMAINS.names():
    _command = DOMAINS.get(_name).collect_cli
    if _command is not None:
        app.command(_name)(cli_errors(_command))
