"""Atari domain: frames of ALE games (gymnasium + ale-py, which ships the ROMs)."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vaekit.corpus import save_corpus
from vaekit.data_formats import FRAMES
from vaekit.domains import Domain, register_domain
from vaekit.domains.atari_collect import CollectSettings, camel, collect_episodes
from vaekit.errors import VaekitUsageError
from vaekit.models.protocols import FrameModel
from vaekit.targets import Target

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
PIXEL_TOLERANCE = 0.1  # a pixel is "correct" when |x̂ − x| ≤ 0.1 on the [0, 1] scale


def split_episodes(num_episodes: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded 80/10/10 partition of episode ids; val and test get at least one episode each."""
    if num_episodes < 3:
        raise VaekitUsageError(f"--episodes {num_episodes}: need at least 3 (one per split)")
    order = np.random.default_rng(seed).permutation(num_episodes)
    n_val = max(1, round(num_episodes * SPLIT_FRACTIONS[1]))
    n_test = max(1, round(num_episodes * SPLIT_FRACTIONS[2]))
    n_train = num_episodes - n_val - n_test
    return {"train": np.sort(order[:n_train]), "val": np.sort(order[n_train:n_train + n_val]),
            "test": np.sort(order[n_train + n_val:])}


def collect_atari(settings: CollectSettings, out: Path, on_step=None) -> tuple[Path, dict]:
    import ale_py

    data = collect_episodes(settings, on_step)
    arrays: dict[str, np.ndarray] = {}
    for split, episodes in split_episodes(len(data["returns"]), settings.seed).items():
        mask = np.isin(data["episode"], episodes)
        arrays[split] = data["frames"][mask]
        for key in ("actions", "rewards", "terminated", "truncated", "episode", "step"):
            arrays[f"{split}_{key}"] = data[key][mask]
    lengths = np.bincount(data["episode"])
    metadata = {
        "domain": "atari",
        "env_id": f"ALE/{camel(settings.game)}-v5",
        "source": f"ale-py {ale_py.__version__}",
        "ale_py_version": ale_py.__version__,
        "settings": asdict(settings),
        "seed": settings.seed,
        "episodes": int(len(lengths)),
        "frames": int(lengths.sum()),
        "mean_episode_length": float(lengths.mean()),
        "mean_return": float(data["returns"].mean()),
    }
    return save_corpus(out, arrays, metadata)


@register_domain("atari")
class AtariDomain(Domain):
    name = "atari"
    default_corpus = "data/atari_breakout.npz"
    collect_command = "vaekit collect atari --env Breakout --episodes 100"
    data_format = FRAMES
    model_protocol = FrameModel
    selection_metrics = ("psnr", "pixel_accuracy")
    headline_metrics = [
        ("psnr", "PSNR (dB)", "{:.2f}"),
        ("mse", "MSE", "{:.6f}"),
        ("pixel_accuracy", "Pixel accuracy (|x̂−x| ≤ 0.1)", "{:.2%}"),
    ]
    curve_metrics = ["psnr"]
    sweep_objective = ("psnr", "max")
    targets = [Target("psnr", "PSNR", "{:.2f} dB", threshold=33.0,
                      source="Atari progress report (seed 002): 33–35 dB expected from full-scale training")]
    item_noun = "frames"
    item_identifiers = ("episode", "step")

    def default_config(self) -> dict:
        return {"data": {"path": self.default_corpus, "augment": False},
                "model": {"name": "conv2d_frames", "latent_dim": 32},
                "beta": {"schedule": "linear_warmup", "max_beta": 1.0, "warmup_epochs": 0, "ramp_epochs": 10}}

    def infer_model_options(self, corpus) -> dict:
        _, height, _, channels = corpus.arrays["train"].shape
        return {"in_channels": int(channels), "frame_size": int(height)}

    def quality_sums(self, model, batch, output):
        predicted = model.frame_means(output)
        target = model.prepare(batch)
        error = predicted - target
        return {"mse": (error.pow(2).sum(), error.numel()),
                "pixel_accuracy": ((error.abs() <= PIXEL_TOLERANCE).sum(), error.numel())}

    def derived_metrics(self, metrics: dict) -> dict:
        mse = metrics.get("mse")
        return {"psnr": 10 * math.log10(1.0 / mse) if mse else float("inf")} if mse is not None else {}

    def item_images(self, items, arrays):
        from vaekit.plots import ImageStyle

        return items, ImageStyle("gray", 0, 255)

    def save_pictures(self, model, arrays, results, n, generator):
        from vaekit.plots import save_frame_rows, save_latent_histograms, save_latent_pca

        device = next(model.parameters()).device
        test = torch.as_tensor(arrays["test"], device=device)
        shown = test[torch.linspace(0, len(test) - 1, min(16, len(test))).long()]
        with torch.no_grad():
            recon = model.frame_means(model.decode(model.encode(shown)[0]))
            samples = model.frame_means(model.decode(torch.randn(n, model.latent_dim, generator=generator).to(device)))
            mus = torch.cat([model.encode(test[i:i + 1024])[0] for i in range(0, len(test), 1024)]).cpu().numpy()
        to_images = lambda x: (x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).astype(np.uint8)  # noqa: E731
        np.savez_compressed(results / "samples.npz", samples=to_images(samples))
        return [
            save_frame_rows([to_images(model.prepare(shown)), to_images(recon)], ["original", "reconstruction"],
                            results / "reconstructions.png"),
            save_frame_rows([to_images(samples)], ["z ~ N(0, I)"], results / "samples.png"),
            save_latent_pca(mus, arrays["test_step"], results / "latent_pca.png"),
            save_latent_histograms(mus, results / "latent_histograms.png"),
            results / "samples.npz",
        ]
