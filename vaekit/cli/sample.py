"""`vaekit sample RUN`: pictures of prior samples and reconstructions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vaekit.cli.common import CheckpointOption, DeviceOption, RunsDirOption, cli_errors, console, integer


@cli_errors
def sample(
    run: Annotated[str, typer.Argument(help="Run id under --runs-dir, or a path to a run directory.")],
    n: Annotated[int, typer.Option("-n", "--num-samples", parser=integer(), help="Number of prior samples.")] = 64,
    seed: Annotated[Optional[int], typer.Option(parser=integer(0), help="Sampling seed (default: the run's seed).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    device: DeviceOption = "auto",
    checkpoint: CheckpointOption = "best",
):
    """Decode samples z ~ N(0, I) and reconstruct test data; writes PNGs (and the samples) to results/.

    Example: vaekit sample run_001 -n 64
    """
    from vaekit.trained_runs import sample_run

    loaded, files = sample_run(run, runs_dir, n, seed, device, checkpoint)
    for path in files:
        console.print(f"wrote {path}")
