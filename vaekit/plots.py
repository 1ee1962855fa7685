"""PNG figures, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

# The ten colours ARC tasks are shown in (black, blue, red, green, yellow, grey, magenta, orange,
# light blue, maroon).
ARC_PALETTE = ListedColormap(
    ["#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
     "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25"]
)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def training_curves(records: list[dict], path: Path, quality_keys: list[str] | None = None,
                    markers: list[tuple[int, str]] | None = None) -> Path:
    """Loss, KL and β per epoch, plus the domain's quality metrics, from metrics.jsonl records.

    Args:
        quality_keys: validation metrics drawn together in the last panel.
        markers: (epoch, label) vertical lines, e.g. phase boundaries.
    """
    # A model with schedules of its own (the dual ternary VAE) logs them; it does not use `beta`.
    own_schedules = [k for k in ("beta_A", "beta_B", "rho") if records and k in records[-1]]
    panels = [("Loss", ["train_loss", "val_loss"]), ("Reconstruction", ["train_recon", "val_recon"]),
              ("KL (nats)", ["train_kl", "val_kl"]), ("β and active dims", own_schedules or ["beta"])]
    if quality_keys:
        panels.append(("Quality", [f"val_{key}" for key in quality_keys]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            xs, ys = _series(records, key)
            if xs:
                ax.plot(xs, ys, label=key, marker="." if len(xs) < 30 else None)
        if title.startswith("β"):
            xs, ys = _series(records, "active_dims")
            if xs:
                ax.twinx().plot(xs, ys, color="tab:green", linestyle="--", label="active dims")
        last_epoch = records[-1]["epoch"] if records else 0
        for epoch, label in markers or []:
            if epoch <= last_epoch:
                ax.axvline(epoch, color="grey", linestyle=":", linewidth=1)
                ax.annotate(label, (epoch, 1), xycoords=("data", "axes fraction"), fontsize=6,
                            rotation=90, va="top", ha="right", color="grey")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def save_image_table(images, path: Path, title: str, cmap, vmin: float, vmax: float,
                     columns: int = 8, cell_inches: float = 1.1) -> Path:
    """Small images (2D arrays) in a table of ``columns`` columns, one colour map for all."""
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * cell_inches, rows * cell_inches), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    fig.suptitle(title)
    return _save(fig, path)


def save_grids(grids: np.ndarray, path: Path, title: str) -> Path:
    """A table of ARC grids drawn in the ARC palette."""
    return save_image_table(grids, path, title, ARC_PALETTE, 0, 9)


def save_grid_pairs(originals: np.ndarray, reconstructions: np.ndarray, path: Path, columns: int = 8) -> Path:
    """Originals with their reconstructions: rows alternate original / reconstruction."""
    n = len(originals)
    blocks = -(-n // columns)
    fig, axes = plt.subplots(2 * blocks, columns, figsize=(columns * 1.1, blocks * 2.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        row, col = 2 * (i // columns), i % columns
        for offset, grid in enumerate((originals[i], reconstructions[i])):
            ax = axes[row + offset, col]
            ax.imshow(grid, cmap=ARC_PALETTE, vmin=0, vmax=9, interpolation="nearest")
            if col == 0:
                ax.set_title("original" if offset == 0 else "reconstruction", fontsize=7, loc="left")
    fig.suptitle("Test grids (odd rows) and their reconstructions (even rows)")
    return _save(fig, path)


TERNARY_COLORS = ListedColormap(["#2166ac", "#f7f7f7", "#b2182b"])  # -1 blue, 0 white, +1 red


def save_ternary_tables(operations: np.ndarray, path: Path, title: str) -> Path:
    """Ternary operations (rows of 9 values in {-1, 0, 1}) drawn as 3×3 tables."""
    tables = [np.asarray(op).reshape(3, 3) for op in operations]
    return save_image_table(tables, path, title, TERNARY_COLORS, -1, 1, cell_inches=0.9)


Box = tuple[tuple[int, int, int, int], bool]  # (top, left, bottom, right) and whether it is marked kept


def save_frame_rows(rows: list[np.ndarray], labels: list[str], path: Path,
                    boxes: list[list[list[Box]]] | None = None) -> Path:
    """Rows of frames (each (n, H, W, C) uint8), e.g. originals above their reconstructions.

    ``boxes[row][column]`` outlines regions of that frame: green where marked kept, red where not
    (the small objects a reconstruction kept or lost).
    """
    columns = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 1.2, len(rows) * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (frames, label) in enumerate(zip(rows, labels)):
        for c, frame in enumerate(frames):
            axes[r, c].imshow(frame.squeeze(-1) if frame.shape[-1] == 1 else frame, cmap="gray",
                              vmin=0, vmax=255, interpolation="nearest")
            for (top, left, bottom, right), kept in (boxes[r][c] if boxes else []):
                # one pixel outside the object, so that the outline hides none of it
                axes[r, c].add_patch(Rectangle((left - 1.5, top - 1.5), right - left + 2, bottom - top + 2, fill=False,
                                               linewidth=0.7, edgecolor="lime" if kept else "red"))
        axes[r, 0].set_title(label, fontsize=8, loc="left")
    return _save(fig, path)


def save_latent_pca(mus: np.ndarray, time_in_episode: np.ndarray, path: Path) -> Path:
    """Posterior means projected on their first two principal components, coloured by time."""
    centred = mus - mus.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:2].T
    explained = singular[:2] ** 2 / max(float((singular**2).sum()), 1e-12)
    fig, ax = plt.subplots(figsize=(5, 4.2))
    points = ax.scatter(projected[:, 0], projected[:, 1], c=time_in_episode, s=4, cmap="viridis")
    fig.colorbar(points, ax=ax, label="step within episode")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)" if len(explained) > 1 else "PC 2")
    ax.set_title("Latent space of held-out frames (posterior means)")
    return _save(fig, path)


def save_latent_histograms(mus: np.ndarray, path: Path, columns: int = 8) -> Path:
    """One histogram of posterior means per latent dimension, with N(0, 1)'s density for scale."""
    d = mus.shape[1]
    rows = -(-d // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.3), squeeze=False)
    grid = np.linspace(-4, 4, 100)
    for j, ax in enumerate(axes.flat):
        if j >= d:
            ax.axis("off")
            continue
        ax.hist(mus[:, j], bins=40, density=True, color="tab:blue", alpha=0.7)
        ax.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), color="grey", linewidth=0.8)
        ax.set_title(f"z{j}", fontsize=7)
        ax.tick_params(labelsize=5)
    fig.suptitle("Posterior means per latent dimension (grey: N(0, 1))")
    return _save(fig, path)


@dataclass
class ImageStyle:
    """How a domain's item pictures are drawn: a colour map for 2D images (ignored for RGB), its
    value range, and an optional legend of (colour, label) pairs."""

    cmap: object = "gray"
    vmin: float = 0
    vmax: float = 255
    legend: list[tuple[str, str]] = field(default_factory=list)


def save_item_table(cells: list[list[np.ndarray | None]], path: Path, title: str, row_labels: list[str],
                    column_labels: list[str], style: ImageStyle, cell_inches: float = 0.9) -> Path:
    """A table of item pictures with a label per row (left) and per column (top); None is blank.

    Used by traversals and interpolations of every domain (each domain turns its items into
    pictures first, see ``Domain.render_items``).
    """
    rows, columns = len(cells), max(len(row) for row in cells)
    label_inches = 1.6 if any(row_labels) else 0.2
    legend_inches = 0.35 if style.legend else 0.0
    height = 0.7 + legend_inches + rows * cell_inches
    fig, axes = plt.subplots(rows, columns, squeeze=False, figsize=(label_inches + columns * cell_inches, height))
    fig.subplots_adjust(top=1 - 0.6 / height, bottom=0.02 + legend_inches / height, wspace=0.1, hspace=0.25)
    for r, row in enumerate(cells):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            image = row[c] if c < len(row) else None
            if image is None:  # blank, but keeps its axes so that a row label still shows
                for spine in ax.spines.values():
                    spine.set_visible(False)
            else:
                shown = image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image
                ax.imshow(shown, cmap=style.cmap, vmin=style.vmin, vmax=style.vmax, interpolation="nearest")
            if r == 0 and c < len(column_labels):
                ax.set_title(column_labels[c], fontsize=7)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=7, rotation=0, ha="right", va="center")
    if style.legend:
        handles = [Patch(facecolor=colour, edgecolor="black", label=label) for colour, label in style.legend]
        fig.legend(handles=handles, loc="lower center", fontsize=7, ncol=len(handles), frameon=False)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def objective_against(values: list, objective: list[float], path: Path, key: str, metric: str,
                      states: list[str] | None = None) -> Path:
    """A sweep's objective against one varied key, a point per trial (categories in order of first
    appearance; numbers on a log axis when they span more than two decades)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        xs = values
        positive = [v for v in values if v > 0]
        if positive and len(positive) == len(values) and max(positive) / min(positive) > 100:
            ax.set_xscale("log")
    else:
        labels = list(dict.fromkeys(str(v) for v in values))
        xs = [labels.index(str(v)) for v in values]
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    colours = ["tab:orange" if s == "PRUNED" else "tab:blue" for s in states or ["COMPLETE"] * len(values)]
    ax.scatter(xs, objective, c=colours, s=24)
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against {key}" + (" (orange: pruned)" if "PRUNED" in (states or []) else ""))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def pareto_plot(points: list[tuple[float, float, str]], front: list[tuple[float, float, str]], path: Path,
                x_label: str, y_label: str) -> Path:
    """Every trial as (x, y, run id) with the Pareto front drawn as a labelled line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="lightgrey", s=20, label="trials")
    ordered = sorted(front)
    ax.plot([p[0] for p in ordered], [p[1] for p in ordered], color="tab:red", marker="o", label="Pareto front")
    for x, y, name in ordered:
        ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
