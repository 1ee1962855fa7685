"""`vaekit encode RUN`: the posterior of every item of a corpus, as one .npz."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vaekit.cli.common import CheckpointOption, DeviceOption, RunsDirOption, cli_errors, console, integer
from vaekit.cli.progress import item_progress


@cli_errors
def encode(
    run: Annotated[str, typer.Argument(help="Run id under --runs-dir, or a path to a run directory.")],
    data: Annotated[Optional[Path], typer.Option(help="Corpus .npz of the run's domain (default: the one it trained on).")] = None,
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "all",
    out: Annotated[Optional[Path], typer.Option(help="Output .npz (default: RUN/results/latents_<split>.npz).")] = None,
    batch_size: Annotated[int, typer.Option(parser=integer(), help="Items per forward pass.")] = 1024,
    runs_dir: RunsDirOption = Path("runs"),
    device: DeviceOption = "auto",
    checkpoint: CheckpointOption = "best",
):
    """Write the posterior (μ, log σ²) of every item of a corpus to one .npz.

    One row per item, encoded by the run's best checkpoint, with the item's split and row and the
    corpus's identifiers (ARC task, height, width; Atari episode, step; ternary index; splat
    source_index), so the codes join with other data.

    Example: vaekit encode run_001 --split all --out latents.npz
    """
    from vaekit.trained_runs import load_run
    from vaekit.latent_studies import encode_corpus

    loaded = load_run(run, runs_dir, device, checkpoint)
    with item_progress("encoding") as advance:
        path, summary = encode_corpus(loaded, out, data, split, batch_size, advance)
    console.print(f"wrote {path}: {summary['items']:,} items × {summary['latent_dim']} dimensions "
                  f"(mu, logvar, split, row{''.join(', ' + name for name in summary['identifiers'])}), "
                  f"{summary['bytes'] / 1e6:.1f} MB in {summary['seconds']:.1f} s", soft_wrap=True)
