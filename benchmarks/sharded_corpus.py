"""Training throughput from a sharded, memory-mapped corpus against the same corpus in memory.

    python benchmarks/sharded_corpus.py                          # 2.25 GiB corpus of 64×64×3 images, 3 rounds
    python benchmarks/sharded_corpus.py --images 100000 --dir /work/data/31/bench --rounds 5
    python benchmarks/sharded_corpus.py --smoke                  # seconds: 512 tiny images, one round

Writes ``--images`` random 64×64×3 uint8 images as a sharded corpus (``vaekit.shards.ShardWriter``,
256 MiB shards), reads every shard once so the corpus is in the page cache, then in interleaved
rounds starts two training processes one after the other: ``memory`` reads the training split
into one tensor (what an .npz corpus gives), ``sharded`` trains from the memory-mapped shards
(``ShardedSplit``, as `vaekit train --data FOLDER` does). Each takes ``--steps`` training steps of
the images domain's default model (conv2d_frames, bf16 where native) on batches drawn by a shuffled
order over the whole corpus (indexing exactly as the training epoch does), and reports its
samples/s and its RssAnon (anonymous memory: what each torchrun worker would hold privately) and
RssFile. Prints the medians and the ratio sharded / in-memory, and the corpus's size as a multiple
of the sharded process's RssAnon.
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

import numpy as np

SMOKE_FIGURE = r"sharded / in-memory: [\d.]+×"  # what tests/test_benchmarks.py reads
SMOKE_OPTIONS = {"channels": [8, 8], "decoder_channels": [8, 8], "hidden": 16}
CHUNK = 4096  # images generated and appended at a time: the writer's memory stays at one shard


def write_corpus(folder: Path, images: int, side: int, shard_bytes: int) -> None:
    from vaekit.shards import ShardWriter

    rng = np.random.default_rng(0)
    with ShardWriter(folder, shard_bytes) as writer:
        for split, count in (("train", images), ("val", 3), ("test", 3)):
            for start in range(0, count, CHUNK):
                writer.append(split, rng.integers(0, 256, (min(CHUNK, count - start), side, side, 3), dtype=np.uint8))
        writer.finish({"domain": "images", "source": "benchmarks/sharded_corpus.py (random pixels)"})


def memory_status() -> dict[str, int]:
    """RssAnon and RssFile of this process, in bytes (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def child(args: argparse.Namespace) -> None:
    """One timed training in this process; prints one JSON line."""
    import torch

    from vaekit.config import Config, LossConfig
    from vaekit.domains import get_domain
    from vaekit.models import create_model
    from vaekit.shards import open_sharded
    from vaekit.training.device import to_device
    from vaekit.training.loop import make_optimizer
    from vaekit.training.precision import resolve_precision
    from vaekit.training.step import TrainStep

    torch.set_num_threads(args.threads or torch.get_num_threads())
    cpu = torch.device("cpu")
    train = open_sharded(Path(args.dir))[0]["train"]
    data = to_device(train if args.child == "sharded" else np.asarray(train), cpu)  # as split_tensors does
    model_config = get_domain("images").default_config()["model"]
    options = {**model_config["options"], "in_channels": 3, "frame_size": [data.shape[1], data.shape[2]],
               **(SMOKE_OPTIONS if args.smoke else {})}
    torch.manual_seed(0)
    model = create_model(model_config["name"], model_config["latent_dim"], options)
    step = TrainStep(model, make_optimizer(model, Config().train), resolve_precision("auto", cpu), cpu, LossConfig())
    order = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(0))
    batch_size = args.batch_size

    def run(first: int, steps: int) -> None:
        for index in range(first, first + steps):
            start = index * batch_size % (data.shape[0] - 2 * batch_size)
            batch = data[order[start:start + batch_size]]  # the epoch's indexing: a batch of shuffled rows
            if hasattr(data, "prefetch"):  # and its read-ahead of the next batch
                data.prefetch(order[start + batch_size:start + 2 * batch_size])
            step(batch, 1.0)

    run(0, 3)  # warm-up
    started = time.perf_counter()
    run(3, args.steps)
    rate = args.steps * batch_size / (time.perf_counter() - started)
    print(json.dumps({"rate": rate, "precision": step.precision, **memory_status()}), flush=True)


def timed(kind: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--dir", str(args.dir), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads)] + (["--smoke"] if args.smoke else [])
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])})
    if result.returncode:
        raise SystemExit(f"the {kind} training process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192_000, help="training images of 64×64×3 (12 KiB each)")
    parser.add_argument("--dir", type=Path, help="where the corpus is written (default: a temporary folder)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per process")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 512 images of 16×16×3, one round of 3 steps")
    parser.add_argument("--child", choices=("memory", "sharded"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    side, shard_bytes = 64, 256 * 2**20
    if args.smoke:
        args.images, args.rounds, args.steps, side, shard_bytes = 512, 1, 3, 16, 2**17
    with tempfile.TemporaryDirectory() as scratch:
        args.dir = args.dir or Path(scratch) / "corpus.shards"
        started = time.perf_counter()
        write_corpus(args.dir, args.images, side, shard_bytes)
        from vaekit.shards import total_bytes

        size = total_bytes(args.dir)
        print(f"wrote {args.images:,} images of {side}×{side}×3 ({size / 2**30:.2f} GiB) in "
              f"{time.perf_counter() - started:.1f} s to {args.dir}", flush=True)
        for shard in sorted(args.dir.glob("*.npy")):  # into the page cache: the case this measures
            shard.read_bytes()
        runs: dict[str, list[dict]] = {"memory": [], "sharded": []}
        for r in range(args.rounds):
            for kind in (("memory", "sharded") if r % 2 == 0 else ("sharded", "memory")):
                runs[kind].append(timed(kind, args))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]['rate']:,.0f} samples/s" for k, v in
                                                               runs.items()), flush=True)
    rates = {kind: [run["rate"] for run in done] for kind, done in runs.items()}
    anon = {kind: statistics.median(run["RssAnon"] for run in done) for kind, done in runs.items()}
    files = {kind: statistics.median(run["RssFile"] for run in done) for kind, done in runs.items()}
    ratios = [s / m for s, m in zip(rates["sharded"], rates["memory"])]
    print(f"{runs['sharded'][0]['precision']}, batch {args.batch_size}, {args.steps} steps a process, "
          f"{args.rounds} interleaved round(s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for kind in runs:
        print(f"  {kind:<8} {statistics.median(rates[kind]):8,.0f} samples/s (min {min(rates[kind]):,.0f}, max "
              f"{max(rates[kind]):,.0f})  RssAnon {anon[kind] / 2**20:6,.0f} MiB  RssFile {files[kind] / 2**20:6,.0f} MiB")
    print(f"sharded / in-memory: {statistics.median(ratios):.3f}× (rounds {', '.join(f'{r:.3f}' for r in ratios)}); "
          f"the corpus is {size / anon['sharded']:.1f}× the sharded process's RssAnon")


if __name__ == "__main__":
    main()
