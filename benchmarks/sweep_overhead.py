"""What `vaekit sweep` costs beyond its runs, and what --workers 2 buys.

1. Scheduler overhead per trial: a grid sweep in this process, its wall time minus the time spent in
   ``train_run`` (the same call `vaekit train` makes), divided by the trials. It covers the study's
   creation and grid queue, taking each trial, the trial's bookkeeping, reading the objective and
   telling the study. Target: < 1 s per trial.
2. A 4-trial grid sweep as a command, `--workers 2` against `--workers 1`, in interleaved rounds
   (fresh runs directory each time; the medians' ratio). On a machine with C cores, --workers 1 gives
   one trial C threads and --workers 2 gives each of two trials C // 2.

    PYTHONPATH=$PWD python benchmarks/sweep_overhead.py [--trials 6] [--rounds 1] [--epochs 2]
    PYTHONPATH=$PWD python benchmarks/sweep_overhead.py --smoke   # seconds: 1 trial, 2-trial sweeps, 1 epoch

Tiny ARC runs (300 grids, a small conv2d): the runs are short, so the overhead is a large share.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_OPTIONS = {"channels": [8, 8, 8], "hidden": 16, "decoder_channels": [8, 8]}
SMOKE_FIGURE = r"speed-up [\d.]+x"  # what tests/test_benchmarks.py reads


def tiny_sets(epochs: int) -> list[str]:
    return [f"model.options={json.dumps(TINY_OPTIONS)}", "train.batch_size=64", f"train.epochs={epochs}",
            "train.log_every_steps=0"]


def overhead_per_trial(corpus: Path, trials: int, epochs: int) -> tuple[float, float, float, float]:
    """(wall seconds, seconds of the check and the study's creation, seconds inside train_run,
    overhead per trial beyond both) of an in-process grid sweep."""
    import vaekit.sweeps.trial as trial_module
    from vaekit.sweeps import make_plan, run_sweep
    from vaekit.sweeps.study import join_study

    inside = []
    original = trial_module.train_run

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            inside.append(time.perf_counter() - started)

    trial_module.train_run = timed
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder) / "overhead.yaml"
        space.write_text(f"seed: {list(range(trials))}\n")
        started = time.perf_counter()
        plan = make_plan("arc", space, Path(folder) / "runs", data=corpus,
                         set_options=[*tiny_sets(epochs), "threads=1"])
        join_study(plan)  # what run_sweep does first: create the study, queue the grid
        setup = time.perf_counter() - started
        run_sweep(plan, console=None)
        wall = time.perf_counter() - started
    trial_module.train_run = original
    return wall, setup, sum(inside), (wall - setup - sum(inside)) / trials


def command_seconds(corpus: Path, workers: int, epochs: int, latent_dims: list[int]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder) / "grid.yaml"
        space.write_text(f"model.latent_dim: {latent_dims}\n")
        command = [sys.executable, "-m", "vaekit", "sweep", "run", "arc", "--space", str(space), "--data", str(corpus),
                   "--runs-dir", str(Path(folder) / "runs"), "--workers", str(workers)]
        for item in tiny_sets(epochs):
            command += ["--set", item]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials of the overhead sweep")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of --workers 1 and 2")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each trial")
    parser.add_argument("--smoke", action="store_true", help="seconds: 1 trial, 2-trial sweeps of 1 epoch")
    args = parser.parse_args()
    latent_dims = [2, 3, 4, 5]
    if args.smoke:
        args.trials, args.rounds, args.epochs, latent_dims = 1, 1, 1, [2, 3]

    from vaekit.domains.arc import collect_arc
    from vaekit.sweeps.plan import available_cores

    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "arc300.npz"
        collect_arc(corpus, count=300, seed=0, version="arcagi1")
        wall, setup, inside, overhead = overhead_per_trial(corpus, args.trials, args.epochs)
        print(f"overhead: {args.trials} trials in {wall:.1f} s: checking the space and creating the study "
              f"{setup:.2f} s once, {inside:.1f} s inside train_run, {overhead:.2f} s per trial beyond the run "
              f"(target < 1 s; {(wall - inside) / args.trials:.2f} s per trial with the set-up spread over them)")
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for workers in (1, 2):
                times[workers].append(command_seconds(corpus, workers, args.epochs, latent_dims))
        one, two = statistics.median(times[1]), statistics.median(times[2])
        print(f"{len(latent_dims)}-trial sweep on {available_cores()} cores, {args.rounds} round(s), medians: --workers 1 {one:.1f} s, "
              f"--workers 2 {two:.1f} s; speed-up {one / two:.2f}x "
              f"(rounds: {[round(t, 1) for t in times[1]]} / {[round(t, 1) for t in times[2]]})")


if __name__ == "__main__":
    main()
