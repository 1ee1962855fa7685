"""The `vaekit` command line: each command parses options, calls one library function, renders."""

from __future__ import annotations

import typer

from vaekit.cli import collect, evaluate, report, runs, sample, train

app = typer.Typer(
    help="vaekit: collect data, train VAEs, and study them (eval, sample, report).\n\n"
    "Quick start: vaekit collect arc && vaekit train arc --latent 10 && vaekit report run_001",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(collect.app, name="collect")
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("sample")(sample.sample)
app.command("report")(report.report)
app.command("runs")(runs.runs)
app.command("models")(runs.models)


def main() -> None:
    app()
