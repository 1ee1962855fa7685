"""`vaekit interpolate RUN`: decoded paths between pairs of items."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vaekit.cli.common import CheckpointOption, DeviceOption, RunsDirOption, cli_errors, console, integer


@cli_errors
def interpolate(
    run: Annotated[str, typer.Argument(help="Run id under --runs-dir, or a path to a run directory.")],
    split: Annotated[str, typer.Option(help="train, val or test: where the items come from.")] = "test",
    pairs: Annotated[int, typer.Option(parser=integer(), help="Pairs of items, spread evenly over the split.")] = 3,
    item: Annotated[Optional[list[int]], typer.Option(parser=integer(), help="Rows of the split, taken in pairs (repeatable).")] = None,
    steps: Annotated[int, typer.Option(parser=integer(), help="Codes from μ_a to μ_b, both ends included.")] = 9,
    method: Annotated[Optional[list[str]], typer.Option(help="linear or spherical (repeatable; default both).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(help="Folder for the PNG (default: RUN/results/latent).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    device: DeviceOption = "auto",
    checkpoint: CheckpointOption = "best",
):
    """Interpolate between the posterior means of pairs of items, linearly and along the sphere
    (slerp), and decode every step; the two originals stand at the ends of each row.

    Example: vaekit interpolate run_001 --pairs 3 --steps 9 --item 10 --item 250
    """
    from vaekit.trained_runs import load_run
    from vaekit.latent import INTERPOLATIONS
    from vaekit.latent_studies import interpolate_run

    loaded = load_run(run, runs_dir, device, checkpoint)
    path = interpolate_run(loaded, split, pairs, item, steps, tuple(method or INTERPOLATIONS), out_dir)
    console.print(f"wrote {path}")
