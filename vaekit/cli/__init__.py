"""The `vaekit` command line: each command parses options, calls one library function, renders."""

from __future__ import annotations

from typing import Annotated

import typer

from vaekit.cli import collect, encode, evaluate, interpolate, report, runs, sample, sweep, train, traverse
from vaekit.cli.common import settings
from vaekit.cli.help_text import WorkflowGroup, reflow_commands, show_no_placeholder_for_flags

show_no_placeholder_for_flags()
app = typer.Typer(
    help="vaekit: collect data, train VAEs, and study them (eval, sample, encode, traverse, report).\n\n"
    "Quick start: vaekit collect arc && vaekit train arc --latent 10 && vaekit report run_001\n\n"
    "Errors are one line on stderr with a documented exit code (docs/errors.md).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    cls=WorkflowGroup,
)


def _print_version(value: bool) -> None:
    if value:
        from vaekit import __version__

        typer.echo(f"vaekit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Print the traceback of an error (also: VAEKIT_DEBUG=1).")] = False,
):
    """Options that go before the command, e.g. vaekit --debug eval run_001."""
    settings.debug = debug


app.add_typer(collect.app, name="collect")
app.add_typer(sweep.app, name="sweep")
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("sample")(sample.sample)
app.command("encode")(encode.encode)
app.command("traverse")(traverse.traverse)
app.command("interpolate")(interpolate.interpolate)
app.command("report")(report.report)
app.command("runs")(runs.runs)
app.command("models")(runs.models)
reflow_commands(app)


def main() -> None:
    app()
