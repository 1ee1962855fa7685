"""Seconds each disentanglement metric takes on N codes of dSprites-shaped factors (one thread).

Factors have dSprites' sizes (3, 6, 40, 32, 32); the codes are d = 10 dimensions, five of them a
noisy copy of the factors and five noise, so that the classifiers see both signal and noise. Each
metric runs ``--rounds`` times interleaved with the others; the median is printed.

    python benchmarks/disentanglement_speed.py [--n 10000] [--rounds 3] [--gbt]
    python benchmarks/disentanglement_speed.py --smoke     # seconds: 500 codes, one round
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from vaekit.disentanglement import dci, mig, sap  # noqa: E402

SIZES = (3, 6, 40, 32, 32)
SMOKE_FIGURE = r"mig\s+median\s+[\d.]+ s over 1 round"  # what tests/test_benchmarks.py reads


def dsprites_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    signal = factors / np.array(SIZES) + rng.normal(0, 0.05, factors.shape)
    return np.concatenate([signal, rng.normal(size=(n, 5))], axis=1), factors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gbt", action="store_true", help="also time DCI with disentanglement_lib's GBT (minutes)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 500 codes, one round")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.rounds = 500, 1
    codes, factors = dsprites_like(args.n)
    metrics = {"mig": lambda: mig(codes, factors), "dci (forest)": lambda: dci(codes, factors),
               "sap": lambda: sap(codes, factors)}
    if args.gbt:
        metrics["dci (gbt)"] = lambda: dci(codes, factors, estimator="gbt")
    seconds: dict[str, list[float]] = {name: [] for name in metrics}
    values = {}
    for _ in range(args.rounds if not args.gbt else 1):
        for name, run in metrics.items():
            started = time.perf_counter()
            values[name] = run()
            seconds[name].append(time.perf_counter() - started)
    print(f"{args.n:,} codes (d = {codes.shape[1]}), factors of sizes {SIZES}, one thread")
    for name, times in seconds.items():
        print(f"  {name:<14} median {statistics.median(times):7.2f} s over {len(times)} round(s)   value {values[name]}")


if __name__ == "__main__":
    main()
