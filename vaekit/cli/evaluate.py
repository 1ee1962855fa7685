"""`vaekit eval RUN`: metrics of a run's best checkpoint on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vaekit.cli.common import DeviceOption, RunsDirOption, cli_errors, console


@cli_errors
def evaluate(
    run: Annotated[str, typer.Argument(help="Run id under --runs-dir, or a path to a run directory.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    runs_dir: RunsDirOption = Path("runs"),
    device: DeviceOption = "auto",
):
    """Evaluate a run's best checkpoint; prints the metric report and writes results/metrics.json.

    Example: vaekit eval run_001 --split test
    """
    from vaekit.experiment import evaluate_run
    from vaekit.report import metrics_table

    loaded, metrics = evaluate_run(run, runs_dir, split, device)
    title = f"{loaded.run.run_id}: {loaded.config.model.name} on {loaded.config.domain} ({split}, {metrics['samples']:,} samples)"
    console.print(metrics_table(metrics, loaded.domain, title))
    console.print(f"Written to {loaded.run.results / 'metrics.json'}")
