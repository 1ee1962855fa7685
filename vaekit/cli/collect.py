"""`vaekit collect <domain>`: build a corpus .npz.

Each domain declares its collect options as data and a collector function (``Domain.collect_options``,
``Domain.collector``, in the domain's module). This module generates one subcommand per domain that
has one, with a flag per declared option, draws its progress and prints its summary, so a new domain
needs no edit here.
"""

from __future__ import annotations

import inspect
import time
from typing import Annotated, Optional

import typer

from vaekit.cli.collect_output import RichProgress, print_corpus_summary
from vaekit.cli.common import cli_errors, err_console
from vaekit.collecting import CollectOption, collect_with, reporting_to
from vaekit.domains import DOMAINS, Domain
from vaekit.option_parsers import integer, number

app = typer.Typer(help="Collect a corpus for a domain into one .npz file (see `vaekit collect DOMAIN --help`).",
                  no_args_is_help=True)


def _parameter(option: CollectOption) -> inspect.Parameter:
    """The Typer option of one declared collect option."""
    parser = integer(option.minimum) if option.kind is int else number if option.kind is float else None
    kind = list[option.kind] if option.many else option.kind
    flag = option.flag if option.kind is not bool else f"{option.flag}/--no-{option.flag[2:]}"
    typer_option = typer.Option(flag, help=option.help, **({"parser": parser} if parser else {}))
    optional = option.default is None or option.many
    annotation = Annotated[Optional[kind] if optional else kind, typer_option]
    default = inspect.Parameter.empty if option.required else option.default
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def command_for(domain: type[Domain]):
    """The `vaekit collect NAME` command of a domain: flags from its declarations, help from its
    collector's docstring; it draws the progress and prints the summary and notes."""

    def command(**options):
        started = time.perf_counter()
        with reporting_to(RichProgress()):
            collected = collect_with(domain.collect_options, domain.collector, options)
        print_corpus_summary(collected.path, collected.metadata, time.perf_counter() - started, collected.facts)
        for note in collected.notes:
            err_console.print(f"note: {note}", markup=False, highlight=False)

    parameters = [_parameter(option) for option in domain.collect_options]
    command.__signature__ = inspect.Signature(parameters)
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = domain.collector.__doc__
    command.__name__ = f"collect_{domain.name}"
    return cli_errors(command)


for _name in DOMAINS.names():
    _domain = DOMAINS.get(_name)
    if _domain.collector is not None:
        app.command(_name)(command_for(_domain))
