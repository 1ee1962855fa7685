"""`vaekit report RUN [RUN ...]`: one run's summary, or several side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vaekit.cli.common import RunsDirOption, cli_errors, console
from vaekit.cli.output import JsonOption, print_json


@cli_errors
def report(
    runs: Annotated[list[str], typer.Argument(help="Run ids under --runs-dir, or paths to run directories.")],
    runs_dir: RunsDirOption = Path("runs"),
    json_output: Annotated[bool, JsonOption] = False,
):
    """Print a table of config, training facts and metrics; several runs go side by side.

    Metrics come from results/metrics.json (test split, written by training and `vaekit eval`), or
    the last epoch's validation metrics when no evaluation exists yet.

    Examples:
      vaekit report run_007
      vaekit report run_001 run_002 runs/other/run_003
      vaekit report run_001 --json
    """
    from vaekit.report import find_runs, report_table, summarize_run, summary_document

    summaries = [summarize_run(run) for run in find_runs(runs, runs_dir)]
    if json_output:
        print_json({"runs": [summary_document(s) for s in summaries]})
        return
    console.print(report_table(summaries))
