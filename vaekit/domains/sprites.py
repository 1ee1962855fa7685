"""Sprites domain: a procedural equivalent of dSprites, drawn at collect time (nothing downloaded).

64×64 binary images of one white shape on black, over dSprites' factor grid: shape (square,
ellipse, heart), scale (6 values in [0.5, 1]), orientation (40 values over [0, 2π)), x and y
position (32 values each in [0, 1]): 3·6·40·32·32 = 737,280 combinations. Every image is stored
with its factor indices, so the disentanglement metrics (vaekit.disentanglement) can be computed.

Drawing: each (shape, scale, orientation) is rasterised once into a 32×32 template by testing
every pixel centre against the shape's implicit inequality (720 templates); a position is an
integer shift of the template (x, y ∈ [0, 1] map to centres 16..47 px, one pixel per step).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from vaekit.collecting import Collected, CollectOption
from vaekit.corpus import save_corpus
from vaekit.data_formats import FRAMES
from vaekit.domains import Domain, register_domain
from vaekit.errors import VaekitUsageError
from vaekit.metrics import Metric
from vaekit.models.protocols import FrameModel

IMAGE_SIZE = 64
PATCH = 32  # a template's side; every shape at every angle fits within 15 px of its centre
SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.arange(40) * (2 * np.pi / 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
FACTOR_SIZES = (len(SHAPES), len(SCALES), len(ORIENTATIONS), len(POSITIONS), len(POSITIONS))
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# Half-extent in pixels at scale 1: the square's half side, the ellipse's semi-axes, the heart's unit.
SQUARE_HALF, ELLIPSE_AXES, HEART_UNIT = 9.0, (12.0, 6.0), 10.5


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Which points (u right, v up, in pixels at scale 1, shape-aligned) lie inside ``shape``."""
    if shape == "square":
        return (np.abs(u) <= SQUARE_HALF) & (np.abs(v) <= SQUARE_HALF)
    if shape == "ellipse":
        return (u / ELLIPSE_AXES[0]) ** 2 + (v / ELLIPSE_AXES[1]) ** 2 <= 1
    # the heart curve (x² + y² − 1)³ ≤ x² y³, centred on its bounding box (y from −1 to 1.23)
    x, y = u / HEART_UNIT, v / HEART_UNIT + 0.12
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


@functools.cache
def templates() -> np.ndarray:
    """(3, 6, 40, 32, 32) uint8 0/255: every shape at every scale and orientation, centred at pixel 16
    (drawn once per process: the FactorVAE score draws a batch per vote)."""
    offsets = np.arange(PATCH) - PATCH // 2
    col, row = np.meshgrid(offsets, offsets)  # image rows grow downwards: v = −row
    out = np.zeros((*FACTOR_SIZES[:3], PATCH, PATCH), dtype=np.uint8)
    angle = ORIENTATIONS[:, None, None]
    for s, shape in enumerate(SHAPES):
        for k, scale in enumerate(SCALES):
            # rotate the pixel grid by −θ into the shape's frame (the shape turns counter-clockwise by θ)
            u = (np.cos(angle) * col - np.sin(angle) * row) / scale
            v = (-np.sin(angle) * col - np.cos(angle) * row) / scale
            out[s, k] = _inside(shape, u, v) * np.uint8(255)
    out.flags.writeable = False  # shared by every caller
    return out


def factor_grid(index: np.ndarray) -> np.ndarray:
    """(n, 5) factor indices of grid indices (dSprites' order: shape, scale, orientation, x, y; y fastest)."""
    return np.stack(np.unravel_index(index, FACTOR_SIZES), axis=1).astype(np.int16)


def factor_values(factors: np.ndarray) -> np.ndarray:
    """(n, 5) float32 values of factor indices: shape id, scale, orientation (rad), x, y."""
    return np.stack([factors[:, 0].astype(np.float64), SCALES[factors[:, 1]], ORIENTATIONS[factors[:, 2]],
                     POSITIONS[factors[:, 3]], POSITIONS[factors[:, 4]]], axis=1).astype(np.float32)


def draw(factors: np.ndarray, shapes: np.ndarray | None = None) -> np.ndarray:
    """(n, 64, 64, 1) uint8 0/255 images of rows of factor indices (n, 5)."""
    shapes = templates() if shapes is None else shapes
    factors = np.asarray(factors)
    images = np.zeros((len(factors), IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8)
    patches = shapes[factors[:, 0], factors[:, 1], factors[:, 2]]
    position = factors[:, 3] * len(POSITIONS) + factors[:, 4]
    order = np.argsort(position, kind="stable")
    starts = np.searchsorted(position[order], np.arange(len(POSITIONS) ** 2 + 1))
    for cell in range(len(POSITIONS) ** 2):  # one slice assignment per (x, y): the template's offset
        chosen = order[starts[cell]:starts[cell + 1]]
        if len(chosen):
            x, y = divmod(cell, len(POSITIONS))
            images[chosen, y:y + PATCH, x:x + PATCH, 0] = patches[chosen]
    return images


def split_indices(count: int, seed: int) -> dict[str, np.ndarray]:
    """Grid indices of a seeded sample of ``count`` images (all when count = 737,280), split 80/10/10."""
    if not 3 <= count <= NUM_IMAGES:
        raise VaekitUsageError(f"--count {count:,}: expected 3 to {NUM_IMAGES:,} (all combinations)")
    chosen = np.random.default_rng(seed).permutation(NUM_IMAGES)[:count]
    n_val, n_test = max(1, round(count * SPLIT_FRACTIONS[1])), max(1, round(count * SPLIT_FRACTIONS[2]))
    n_train = count - n_val - n_test
    return {"train": chosen[:n_train], "val": chosen[n_train:n_train + n_val], "test": chosen[n_train + n_val:]}


def collect_sprites(out: Path, count: int = NUM_IMAGES, seed: int = 0) -> tuple[Path, dict]:
    """Draw ``count`` sprites (all combinations, or a seeded sample) and save them with their factors."""
    shapes = templates()
    arrays: dict[str, np.ndarray] = {}
    for split, index in split_indices(count, seed).items():
        factors = factor_grid(index)
        arrays[split] = draw(factors, shapes)
        arrays[f"{split}_index"] = index.astype(np.int32)
        arrays[f"{split}_factors"] = factors
        arrays[f"{split}_factor_values"] = factor_values(factors)
    metadata = {
        "domain": "sprites",
        "source": "procedural dSprites-style shapes drawn by vaekit (docs/domains/sprites.md)",
        "seed": seed,
        "factors": dict(zip(FACTOR_NAMES, FACTOR_SIZES)),
        "images": count,
    }
    return save_corpus(out, arrays, metadata)


SPRITES_COLLECT_OPTIONS = (
    CollectOption("count", int, NUM_IMAGES, f"Images: all {NUM_IMAGES:,} combinations or a seeded sample.", minimum=1),
    CollectOption("seed", int, 0, "Seed of the sample and of the 80/10/10 split.", minimum=0),
    CollectOption("out", Path, Path("data/sprites.npz"), "Output .npz file."),
)


def collect_sprites_command(count, seed, out):
    """Draw 64×64 binary sprites (square, ellipse, heart) over dSprites' factor grid, with their factors.

    Shape 3 × scale 6 × orientation 40 × x 32 × y 32 = 737,280 combinations, all of them or a seeded
    sample of --count, split 80/10/10. Each split stores the images and, beside them, each image's
    grid index and factor indices and values (for `vaekit eval RUN --disentanglement`).

    Example: vaekit collect sprites --count 20000 --seed 0 --out data/sprites_20k.npz
    """
    path, metadata = collect_sprites(out, count, seed)
    return Collected(path, metadata, {"factors": ", ".join(f"{k} {v}" for k, v in metadata["factors"].items())})


@register_domain("sprites")
class SpritesDomain(Domain):
    name = "sprites"
    default_corpus = "data/sprites.npz"
    collect_command = "vaekit collect sprites"
    collect_options = SPRITES_COLLECT_OPTIONS
    collector = staticmethod(collect_sprites_command)
    data_format = FRAMES
    model_protocol = FrameModel
    metrics = (
        Metric("pixel_accuracy", "Pixel accuracy (binarised at 0.5)", "{:.2%}", curve=True),
        Metric("mse", "MSE", "{:.6f}", higher_is_better=False, selectable=False),
    )
    item_noun = "sprites"
    item_identifiers = ("index",)
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def default_config(self) -> dict:
        # dSprites' usual setting (β-VAE, Higgins et al. 2017): a Bernoulli decoder and d = 10
        return {"data": {"path": self.default_corpus, "augment": False},
                "model": {"name": "conv2d_frames", "latent_dim": 10, "options": {"likelihood": "bernoulli"}},
                "beta": {"schedule": "constant", "max_beta": 1.0}}

    def validate(self, corpus) -> None:
        super().validate(corpus)
        for split in ("train", "val", "test"):
            factors = corpus.arrays.get(f"{split}_factors")
            if factors is None or factors.shape != (len(corpus.arrays[split]), len(FACTOR_NAMES)):
                raise VaekitUsageError(f"{corpus.path}: split '{split}' has no {split}_factors array of shape "
                                       f"(n, {len(FACTOR_NAMES)}); collect it with `{self.collect_command}`")

    def infer_model_options(self, corpus) -> dict:
        return {"in_channels": 1, "frame_size": IMAGE_SIZE}

    def item_factors(self, arrays: dict[str, np.ndarray], split: str) -> np.ndarray:
        return arrays[f"{split}_factors"].astype(np.int64)

    def items_for_factors(self, factors: np.ndarray) -> np.ndarray:
        return draw(factors)

    def quality_sums(self, model, batch, output):
        target = model.prepare(batch)
        predicted = model.frame_means(output)
        error = predicted - target
        correct = (predicted >= 0.5) == (target >= 0.5)
        return {"mse": (error.pow(2).sum(), error.numel()), "pixel_accuracy": (correct.sum(), correct.numel())}

    def item_images(self, items, arrays):
        from vaekit.plots import ImageStyle

        return np.asarray(items)[..., 0], ImageStyle("gray", 0, 255)

    def save_pictures(self, model, shown, results, n, generator):
        from vaekit.plots import save_frame_rows

        samples, items, recon = self.samples_and_reconstructions(model, shown, results, n, generator, count=16)
        return [save_frame_rows([items, recon], ["original", "reconstruction"], results / "reconstructions.png"),
                save_frame_rows([samples], ["z ~ N(0, I)"], results / "samples.png"),
                results / "samples.npz"]
