"""`vaekit traverse RUN`: what each latent dimension does, one picture per item."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vaekit.cli.common import (
    CheckpointOption,
    DeviceOption,
    RunsDirOption,
    cli_errors,
    console,
    integer,
    number,
)
from vaekit.cli.progress import item_progress


@cli_errors
def traverse(
    run: Annotated[str, typer.Argument(help="Run id under --runs-dir, or a path to a run directory.")],
    split: Annotated[str, typer.Option(help="train, val or test: where the items come from.")] = "test",
    items: Annotated[int, typer.Option(parser=integer(), help="Items, spread evenly over the split.")] = 3,
    item: Annotated[Optional[list[int]], typer.Option(parser=integer(), help="A row of the split to use instead (repeatable).")] = None,
    span: Annotated[float, typer.Option(parser=number, help="Sweep each dimension from −SPAN to +SPAN (prior standard deviations).")] = 3.0,
    steps: Annotated[int, typer.Option(parser=integer(), help="Values per sweep.")] = 7,
    max_dims: Annotated[int, typer.Option(parser=integer(), help="Dimensions shown, highest KL first (0 = all).")] = 10,
    out_dir: Annotated[Optional[Path], typer.Option(help="Folder for the PNGs (default: RUN/results/latent).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    device: DeviceOption = "auto",
    checkpoint: CheckpointOption = "best",
):
    """Latent traversals: for each item, every row sets one dimension z_j to values from −SPAN to
    +SPAN with the others at the item's posterior mean, and decodes. Rows are ordered by the
    dimension's mean KL over the split; inactive dimensions are marked. Drawn the domain's way.

    Example: vaekit traverse run_001 --items 3 --span 3 --steps 7
    """
    from vaekit.trained_runs import load_run
    from vaekit.latent_studies import traverse_run

    loaded = load_run(run, runs_dir, device, checkpoint)
    with item_progress(f"encoding the {split} split") as advance:
        result = traverse_run(loaded, split, items, item, span, steps, max_dims, out_dir, advance)
    table = Table(title=f"Latent dimensions of {loaded.run.run_id} over the {split} split, by KL")
    for column in ("dimension", "mean KL (nats)", "active", "shown"):
        table.add_column(column, justify="right")
    for j in result.stats.order.tolist():
        table.add_row(f"z{j}", f"{float(result.stats.kl[j]):.3f}", "yes" if result.stats.active[j] else "no",
                      "yes" if j in result.dims else "")
    console.print(table)
    for path in result.paths:
        console.print(f"wrote {path}")
