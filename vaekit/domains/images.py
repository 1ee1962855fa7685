"""Images domain: your own pictures as uint8 (H, W, C) images, 1 or 3 channels, any size ≥ 8×8.

Collecting them (folders, globs, arrays, Datasets; resizing, splits, shards) is
``vaekit.domains.images_collect``; this module trains and scores on the corpus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaekit.corpus import content_name, python_items
from vaekit.data_formats import FRAMES
from vaekit.domains import Domain, register_domain
from vaekit.domains.images_collect import (
    IMAGES_COLLECT_OPTIONS,
    STREAM_DATASETS_FROM,
    ImageSettings,
    array_source,
    check_image_array,
    collect_images,
    collect_images_command,
    dataset_source,
    streamed_corpus,
)
from vaekit.domains.shared_background import SharedBackground, foreground_metrics
from vaekit.metrics import Metric
from vaekit.models.protocols import FrameModel
from vaekit.targets import Target


def structural_similarity(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SSIM per image of (N, C, H, W) batches in [0, 1] (torchmetrics; the Gaussian window of Wang
    et al. 2004, σ = 1.5, 11 taps, channels averaged)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(images.float(), targets.float(), data_range=1.0, reduction="none")


@register_domain("images")
class ImagesDomain(SharedBackground, Domain):
    name = "images"
    default_corpus = "data/images.npz"
    collect_command = "vaekit collect images --from FOLDER --out data/images.npz"
    collect_options = IMAGES_COLLECT_OPTIONS
    collector = staticmethod(collect_images_command)
    data_format = FRAMES
    model_protocol = FrameModel
    metrics = (
        Metric("psnr", "PSNR (dB)", "{:.2f}", curve=True, target=Target()),
        Metric("ssim", "SSIM", "{:.4f}", curve=True, target=Target()),
        # without a pass mark: they describe images that share a background (screenshots, renders),
        # and mean little for photographs, whose "background" is one pixel's mode
        *foreground_metrics(small_object_target=Target()),
        Metric("mse", "MSE", "{:.6f}", higher_is_better=False, selectable=False),
    )
    item_noun = "images"
    item_identifiers = ("index", "path", "label")

    def default_config(self) -> dict:
        # A learned σ (σ-VAE) at β = 1 weighs reconstruction against KL by the data's own noise level.
        return {"data": {"path": self.default_corpus, "augment": False},
                "model": {"name": "conv2d_frames", "latent_dim": 16,
                          "options": {"channels": [32, 64, 128, 256], "decoder_channels": [128, 64, 32, 32],
                                      "learn_sigma": True, "sigma": 0.1}},
                "beta": {"schedule": "linear_warmup", "max_beta": 1.0, "warmup_epochs": 0, "ramp_epochs": 5},
                "train": {"batch_size": 64, "epochs": 30}}

    def corpus_from_data(self, data, folder: Path) -> Path:
        """Images from Python: numpy arrays channel-last (N, H, W[, C]); tensors and Dataset items
        channel-first (N, C, H, W) as torchvision gives them; uint8 or floats in [0, 1]. A Dataset
        whose images take more than ``STREAM_DATASETS_FROM`` bytes is streamed into a sharded corpus."""
        if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__") and len(data):
            source = dataset_source(data, f"Python dataset of {len(data):,} items")
            height, width = source.sizes[0]
            channels = 1 if source.modes[0] == "L" else 3
            if len(source) * height * width * channels > STREAM_DATASETS_FROM:
                return streamed_corpus(self.name, source, folder)
        array, from_torch = python_items(data)
        if from_torch and array.ndim == 4:
            array = np.moveaxis(array, 1, -1)
        description = f"Python data {tuple(array.shape)} {array.dtype}"
        array = check_image_array(array, description)  # (N, H, W) becomes (N, H, W, 1) before it is named
        path = folder / content_name(self.name, array)
        if not path.is_file():  # the same data was collected before: the same corpus
            collect_images(array_source(array, description), path, ImageSettings())
        return path

    def infer_model_options(self, corpus) -> dict:
        _, height, width, channels = corpus.arrays["train"].shape
        return {"in_channels": int(channels), "frame_size": [int(height), int(width)]}

    def frame_quality_sums(self, predicted, target):
        squared = (predicted - target).pow(2)
        ssim = structural_similarity(predicted, target)
        return {"mse": (squared.sum(), squared.numel()), "ssim": (ssim.sum(), ssim.numel())}

    def item_images(self, items, arrays):
        from vaekit.plots import ImageStyle

        return items, ImageStyle("gray", 0, 255)

    def save_pictures(self, model, shown, results, n, generator):
        from vaekit.latent import encode
        from vaekit.plots import save_frame_rows, save_latent_histograms

        samples, items, recon = self.samples_and_reconstructions(model, shown, results, n, generator, count=16)
        mus = encode(model, torch.as_tensor(shown.items))[0].numpy()
        boxes = self.small_object_boxes(items, recon)
        per_row = 16
        return [
            save_frame_rows([items, recon], ["original (small objects: green kept, red lost)", "reconstruction"],
                            results / "reconstructions.png", boxes and [boxes, boxes]),
            save_frame_rows([samples[i:i + per_row] for i in range(0, min(len(samples), 4 * per_row), per_row)],
                            ["z ~ N(0, I)"] + [""] * 3, results / "samples.png"),
            save_latent_histograms(mus, results / "latent_histograms.png"),
            results / "samples.npz",
        ]
