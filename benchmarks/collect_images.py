"""`vaekit collect images` speed: images/s for a folder of 64×64 PNGs (target ≥ 2,000 images/s).

    python benchmarks/collect_images.py                  # 4,000 PNGs of each kind, 3 rounds
    python benchmarks/collect_images.py --images 1000 --rounds 2
    python benchmarks/collect_images.py --smoke          # seconds: 16 PNGs of each kind, one round

Writes two folders of 64×64 RGB PNGs to a temporary directory: ``smooth`` (random 8×8 colour
fields upsampled, the texture of photos and game frames: small files) and ``noise`` (independent
random pixels: PNG cannot compress them, the slowest case to decode). Each round collects both into
a corpus with the library function behind the command (header pass, decoding, the split, the
.npz, with --compress always and never; auto picks never for both kinds, whose pixels deflate
to 80 % or more), all four interleaved, and the median and min–max
images/s over the rounds are printed: per second of wall time, and per second of this process's
CPU time (the decoding threads' included). On a shared machine the wall-time figure says more
about the neighbours than about vaekit; the CPU-time figure is what one idle core would give. The
files are in the page cache after the first round, as they are on a second run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vaekit.domains.images_collect import ImageSettings, collect_images, open_source

SMOKE_FIGURE = r"noise\s+--compress never\s+[\d,]+ \([\d,]+–[\d,]+\)"  # what tests/test_benchmarks.py reads


def write_folder(folder: Path, count: int, kind: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        if kind == "smooth":
            field = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            image = Image.fromarray(field).resize((64, 64), Image.Resampling.BILINEAR)
        else:
            image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        image.save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="seconds: 16 PNGs of each kind, one round")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.rounds = 16, 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kinds = ("smooth", "noise")
        for kind in kinds:
            write_folder(root / kind, args.images, kind)
            size = sum(f.stat().st_size for f in (root / kind).iterdir()) / args.images
            print(f"{kind}: {args.images:,} PNGs of 64×64×3, {size / 1024:.1f} KiB each", flush=True)
        entries = [(kind, compress) for kind in kinds for compress in ("always", "never")]
        wall: dict[tuple, list[float]] = {entry: [] for entry in entries}
        cpu: dict[tuple, list[float]] = {entry: [] for entry in entries}
        for r in range(args.rounds):
            shift = r % len(entries)
            for kind, compress in entries[shift:] + entries[:shift]:
                started, started_cpu = time.perf_counter(), time.process_time()
                collect_images(open_source(str(root / kind), None), root / f"{kind}.npz", ImageSettings(compress=compress))
                wall[kind, compress].append(args.images / (time.perf_counter() - started))
                cpu[kind, compress].append(args.images / (time.process_time() - started_cpu))
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    print(f"{'folder':<8}{'corpus':<15}{'images/s (wall) median (min–max)':>36}{'images per CPU-second':>34}")
    for (kind, compress) in entries:
        cells = [f"{statistics.median(v[kind, compress]):,.0f} ({min(v[kind, compress]):,.0f}–{max(v[kind, compress]):,.0f})"
                 for v in (wall, cpu)]
        print(f"{kind:<8}{'--compress ' + compress:<19}{cells[0]:>32}{cells[1]:>34}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
