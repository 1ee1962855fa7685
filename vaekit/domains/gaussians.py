"""Gaussian-splat domain: scenes of 512 2D Gaussians fitted to the images of another corpus.

The corpus stores raw splat parameters (n, 8, 512) per split (channels as in vaekit.domains.splats,
the 512 splats in Morton order), the source images, each fit's PSNR, and per-channel normalisation
statistics from the training split. Models train on the normalised parameters; θ stays in radians
(a periodic quantity has no meaningful mean and standard deviation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vaekit.collecting import Collected, CollectOption, progress_task
from vaekit.corpus import Corpus, load_corpus, save_corpus
from vaekit.data_formats import SPLAT_PARAMS, SPLAT_SEQUENCE
from vaekit.domains import DOMAINS, Domain, get_domain, register_domain
from vaekit.domains.splats import GROUPS, fit_splats, psnr, render
from vaekit.errors import VaekitUsageError
from vaekit.metrics import Metric
from vaekit.models.protocols import SplatModel
from vaekit.targets import Target

ROT = GROUPS["rot"][0]
COLLAPSE_KL = 0.05  # nats: a dimension below this carries (almost) nothing, as in train.collapse_threshold


def source_images(corpus: Corpus) -> dict[str, np.ndarray]:
    """The pictures of a source corpus per split, (n, H, W, 3) float32 in [0, 1], as the corpus's
    own domain draws them (``Domain.rgb_images``)."""
    kind = corpus.metadata.get("domain")
    domain = get_domain(kind) if kind in DOMAINS else None
    images = domain.rgb_images(corpus) if domain is not None else None
    if images is None:
        pictures = [name for name in DOMAINS.names() if DOMAINS.get(name).rgb_images is not Domain.rgb_images]
        raise VaekitUsageError(f"{corpus.path}: --from needs a corpus of pictures ({', '.join(pictures)}), "
                               f"this one is '{kind}'")
    return images


def pick_images(images: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """Indices of about ``count`` images in all, spread evenly over each split in the source's
    proportions."""
    total = sum(len(v) for v in images.values())
    picked = {}
    for split, array in images.items():
        n = max(1, min(len(array), round(count * len(array) / total)))
        picked[split] = np.linspace(0, len(array) - 1, n).round().astype(int)
    return picked


def collect_gaussians(source: Path, out: Path, count: int = 2000, splats: int = 512, steps: int = 100,
                      lr: float = 0.01, batch_size: int = 32,
                      progress: Callable[[int], None] | None = None) -> tuple[Path, dict]:
    """Fit splats to ``count`` images of the ``source`` corpus and write the splat corpus."""
    all_images = source_images(load_corpus(source))
    picked = pick_images(all_images, count)
    images = {split: all_images[split][index] for split, index in picked.items()}
    arrays: dict[str, np.ndarray] = {f"{split}_source_index": index for split, index in picked.items()}
    for split, split_images in images.items():
        fitted, quality = [], []
        for start in range(0, len(split_images), batch_size):
            batch = torch.from_numpy(split_images[start:start + batch_size])
            params, fit_psnr = fit_splats(batch, splats, steps, lr)
            fitted.append(params)
            quality.append(fit_psnr)
            if progress:
                progress(len(batch))
        arrays[split] = torch.cat(fitted).transpose(1, 2).contiguous().numpy().astype(np.float32)  # (n, 8, K)
        arrays[f"{split}_fit_psnr"] = torch.cat(quality).numpy().astype(np.float32)
        arrays[f"{split}_image"] = (split_images * 255).round().astype(np.uint8)
    mean = arrays["train"].mean(axis=(0, 2))
    std = arrays["train"].std(axis=(0, 2)) + 1e-6
    mean[ROT], std[ROT] = 0.0, 1.0  # θ is not normalised
    arrays["norm_mean"], arrays["norm_std"] = mean.astype(np.float32), std.astype(np.float32)
    all_psnr = np.concatenate([arrays[f"{s}_fit_psnr"] for s in ("train", "val", "test")])
    metadata = {
        "domain": "gaussians", "source": str(source), "splats": splats, "fit_steps": steps, "fit_lr": lr,
        "image_size": list(images["train"].shape[1:3]), "mean_fit_psnr": float(all_psnr.mean()),
    }
    return save_corpus(out, arrays, metadata)


def _moment_sums(prefix: str, values: torch.Tensor) -> dict[str, tuple]:
    """Σx and Σx² of ``values`` as quality sums, from which ``_split_variance`` derives the variance
    over the whole split afterwards."""
    return {f"{prefix}_s1": (values.sum(), values.numel()), f"{prefix}_s2": (values.pow(2).sum(), values.numel())}


def _split_variance(metrics: dict, prefix: str) -> float | None:
    """The split-level variance from the averaged ``_moment_sums`` (popped from ``metrics``); None
    when they are absent."""
    m1, m2 = metrics.pop(f"{prefix}_s1", None), metrics.pop(f"{prefix}_s2", None)
    return None if m1 is None else max(m2 - m1 * m1, 0.0)


GAUSSIANS_COLLECT_OPTIONS = (
    CollectOption("from_", Path, Path("data/atari_breakout.npz"), "Source corpus of pictures (a domain that draws its items as images, e.g. atari or arc)."),
    CollectOption("count", int, 2000, "Images to fit, spread over the source's splits.", minimum=1),
    CollectOption("splats", int, 512, "Gaussians per image.", minimum=1),
    CollectOption("steps", int, 100, "Adam steps per batch of images.", minimum=1),
    CollectOption("lr", float, 0.01, "Adam learning rate of the fit."),
    CollectOption("batch_size", int, 32, "Images fitted together.", minimum=1),
    CollectOption("out", Path, Path("data/gaussians.npz"), "Output .npz file."),
)


def collect_gaussians_command(from_, count, splats, steps, lr, batch_size, out):
    """Fit 2D Gaussian splats to the images of another corpus (Atari frames or ARC grids).

    Each image gets --splats anisotropic Gaussians (position, scale, rotation, colour), one per cell
    of a fixed grid, coloured from the image and refined by Adam through a differentiable renderer,
    batched over images; each splat stays within one cell of its own. The splats are stored in the
    Morton (Z-order) of their cells, so index k is the same place in every image. Splits follow the
    source corpus. Each fit's PSNR is recorded. Deterministic (no seed needed).

    Example: vaekit collect gaussians --from data/atari_breakout.npz --count 2000
    """
    if count < 3 or splats < 1 or steps < 0:
        raise VaekitUsageError("--count must be ≥ 3, --splats ≥ 1 and --steps ≥ 0")
    started = time.perf_counter()
    with progress_task("fitting splats", total=count) as task:
        path, metadata = collect_gaussians(from_, out, count, splats, steps, lr, batch_size, task.advance)
    seconds = time.perf_counter() - started
    images = sum(metadata["counts"].values())
    return Collected(path, metadata, {
        "mean fit PSNR": f"{metadata['mean_fit_psnr']:.2f} dB",
        "seconds per 1,000 images": f"{seconds / images * 1000:.0f}"})


# The weighted-loss run's goals in the splat VAE experiment notes (specification 004): maxima.
SPLAT_GOALS = {group: Target(goal, fmt="{:.3f}", label=f"Recon loss {group}", source="splat VAE experiment notes (seed 004): the weighted-loss "
                             "run's goal") for group, goal in (("rot", 0.6), ("feat", 0.7))}


@register_domain("gaussians")
class GaussiansDomain(Domain):
    name = "gaussians"
    default_corpus = "data/gaussians.npz"
    collect_command = "vaekit collect gaussians --from data/atari_breakout.npz"
    collect_options = GAUSSIANS_COLLECT_OPTIONS
    collector = staticmethod(collect_gaussians_command)
    data_format = SPLAT_SEQUENCE
    model_protocol = SplatModel
    metrics = (
        *[Metric(f"recon_{g}", f"Recon loss {g} (normalised)", "{:.4f}", higher_is_better=False, curve=True,
                 target=SPLAT_GOALS.get(g)) for g in GROUPS],
        *[Metric(f"std_ratio_{g}", f"Predicted/true std, {g}", "{:.3f}", selectable=False) for g in GROUPS],
        Metric("recon_rot_seed_scale", "Recon loss rot, seed's scale (θ MSE / Var θ)", "{:.3f}",
               higher_is_better=False, selectable=False),
        Metric("informative_dims", "Dimensions with KL ≥ 0.05 nats", "{}"),
        Metric("posterior_collapse", "Posterior collapse (< half informative)", "{}", higher_is_better=False,
               selectable=False),
    )
    sweep_metric = "recon_rot"  # the first of seed 004's goals (rot ≤ 0.6, feat ≤ 0.7)
    item_noun = "scenes"
    item_identifiers = ("source_index",)  # the image's row in its split of the source corpus

    def default_config(self) -> dict:
        # The best measured setting (512D, β 0.01, per-group loss); at β = 1 all but a few dimensions
        # collapse (docs/domains/gaussians.md).
        return {"data": {"path": self.default_corpus, "augment": False},
                "model": {"name": "conv1d_gaussian", "latent_dim": 512},
                "beta": {"schedule": "linear_warmup", "max_beta": 0.01, "warmup_epochs": 0, "ramp_epochs": 50},
                "train": {"batch_size": 32, "epochs": 100, "cosine_t_max": 100}}

    def validate(self, corpus: Corpus) -> None:
        """The splits, and the normalisation statistics training divides by: (8,) finite, std > 0."""
        super().validate(corpus)
        for key in ("norm_mean", "norm_std"):
            stats = corpus.arrays.get(key)
            if stats is None:
                raise VaekitUsageError(f"{corpus.path}: no '{key}' array; collect the corpus again "
                                       f"with `{self.collect_command}`")
            finite = stats.dtype.kind == "f" and bool(np.isfinite(stats).all())
            if stats.shape != (SPLAT_PARAMS,) or not finite:
                found = f"{stats.dtype} of shape {stats.shape}" + ("" if finite else ", not all finite")
                raise VaekitUsageError(f"{corpus.path}: '{key}' holds {found}; expected {SPLAT_PARAMS} finite floats")
        if (corpus.arrays["norm_std"] <= 0).any():
            raise VaekitUsageError(f"{corpus.path}: 'norm_std' has values ≤ 0 ({corpus.arrays['norm_std'].tolist()}); "
                                   "expected positive standard deviations")

    def infer_model_options(self, corpus: Corpus) -> dict:
        """θ's training-split mean and std, which the seed's single-channel ``rotation: angle``
        z-scores by (the corpus leaves θ in radians)."""
        theta = corpus.arrays["train"][:, ROT]
        return {"theta_norm": [round(float(theta.mean()), 6), round(float(theta.std()) + 1e-6, 6)]}

    def normalise(self, items, arrays):
        """Raw splat parameters (n, 8, K) standardised per parameter by the training split's mean and
        std (θ is left in radians)."""
        mean, std = arrays["norm_mean"][None, :, None], arrays["norm_std"][None, :, None]
        return ((np.asarray(items) - mean) / std).astype(np.float32)

    def denormalise(self, values, arrays):
        mean, std = arrays["norm_mean"][None, :, None], arrays["norm_std"][None, :, None]
        return (np.asarray(values, dtype=np.float32) * std + mean).astype(np.float32)

    def quality_sums(self, model, batch, output):
        sums = {}
        per_group = model.group_errors(output, batch)  # group -> (batch,) mean error per element
        for group, error in per_group.items():
            sums[f"recon_{group}"] = (error.sum(), error.numel())
        # The seed's scale for rotation: squared error of θ in radians over the split's variance of θ.
        theta_error = model.predicted_angle(output) - batch[:, ROT]
        sums["_theta_err2"] = (theta_error.pow(2).sum(), theta_error.numel())
        sums.update(_moment_sums("_theta", batch[:, ROT]))
        predicted, target = model.comparable(output), model.comparable_target(batch)
        for group, channels in model.comparable_groups().items():
            for tag, values in (("pred", predicted), ("true", target)):
                sums.update(_moment_sums(f"_{tag}_{group}", values[:, channels]))
        return sums

    def derived_metrics(self, metrics: dict) -> dict:
        out = {}
        for group in GROUPS:
            pred, true = (_split_variance(metrics, f"_{tag}_{group}") for tag in ("pred", "true"))
            if pred is not None and true is not None:
                out[f"std_ratio_{group}"] = (pred / true) ** 0.5 if true > 0 else float("nan")
        err2, theta_variance = metrics.pop("_theta_err2", None), _split_variance(metrics, "_theta")
        if err2 is not None and theta_variance is not None:
            out["recon_rot_seed_scale"] = err2 / theta_variance if theta_variance > 0 else float("nan")
        if "kl_per_dim" in metrics:
            kl = metrics["kl_per_dim"]
            informative = sum(value >= COLLAPSE_KL for value in kl)
            out["informative_dims"] = informative
            out["posterior_collapse"] = informative < len(kl) / 2
        return out

    def item_images(self, items, arrays):
        """Normalised splat parameters (n, 8, K) rendered at the source images' size."""
        from vaekit.plots import ImageStyle

        raw = torch.from_numpy(self.denormalise(items, arrays))
        images = render(raw.transpose(1, 2), *arrays["test_image"].shape[1:3]).clamp(0, 1)
        return (images.numpy() * 255).round().astype(np.uint8), ImageStyle("gray", 0, 255)

    def save_pictures(self, model, shown, results, n, generator):
        from vaekit.plots import save_frame_rows

        device = next(model.parameters()).device
        picked = np.linspace(0, len(shown.items) - 1, min(8, len(shown.items))).round().astype(int)
        raw = shown.items[picked]
        with torch.no_grad():
            codes = model.encode(torch.from_numpy(self.normalise(raw, shown.corpus)).to(device))[0]
            recon = torch.from_numpy(self.denormalise(model.decode_data(codes).cpu().numpy(), shown.corpus))
        raw = torch.from_numpy(raw)
        images = torch.from_numpy(shown.side["image"][picked]).float() / 255
        size = images.shape[1:3]
        fit = render(raw.transpose(1, 2), *size).clamp(0, 1)
        vae = render(recon.transpose(1, 2), *size).clamp(0, 1)
        vae_psnr = psnr(vae, images).mean().item()
        as_uint8 = lambda x: (x.numpy() * 255).round().astype(np.uint8)  # noqa: E731
        path = save_frame_rows([as_uint8(images), as_uint8(fit), as_uint8(vae)],
                               ["original image", f"splat fit ({psnr(fit, images).mean():.1f} dB)",
                                f"VAE reconstruction ({vae_psnr:.1f} dB)"], results / "reconstructions.png")
        (results / "image_psnr.txt").write_text(f"{vae_psnr:.3f}\n")
        return [path, results / "image_psnr.txt"]
