"""What the frames domains (atari, images) share: the facts stored in their corpus (the background,
the mean training frame, the foreground rate; ``vaekit.frame_facts``), the foreground metrics they
make possible, the baselines shown beside every figure (the mean training frame and the background
alone, scored as reconstructions), and the foreground-weighted training loss
(``loss.options.foreground_weight``).

A domain takes all of it by listing ``SharedBackground`` before ``Domain`` among its bases, adding
``foreground_metrics(...)`` to its metrics and scoring frames in ``frame_quality_sums``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vaekit.background import FOREGROUND_TOLERANCE, RARE_FOREGROUND, as_model_frame, as_model_frames, foreground
from vaekit.errors import VaekitUsageError
from vaekit.frame_facts import corpus_frame_facts
from vaekit.metrics import Metric
from vaekit.small_objects import KEPT_IOU, SMALL_OBJECT_PIXELS, kept_and_total, small_objects
from vaekit.targets import Target

def foreground_metrics(small_object_target: Target) -> tuple[Metric, ...]:
    """The foreground metrics of a frames domain, the small-object recall with ``small_object_target``
    (its pass mark, or none)."""
    return (
        Metric("foreground_psnr", "Foreground PSNR (dB)", "{:.2f}", curve=True,
               target=Target(fmt="{:.2f} dB", label="Foreground PSNR")),
        Metric("foreground_recall", f"Foreground recall (|x̂−x| ≤ {FOREGROUND_TOLERANCE:g})", "{:.2%}"),
        Metric("small_object_recall", f"Small-object recall (≤ {SMALL_OBJECT_PIXELS} px, IoU ≥ {KEPT_IOU:g})",
               "{:.2%}", curve=True, target=Target(small_object_target.threshold, small_object_target.source,
                                                    fmt="{:.1%}", label="Small-object recall")),
        Metric("foreground_mse", "Foreground MSE", "{:.6f}", higher_is_better=False, selectable=False, headline=False),
    )


MEAN_FRAME_ANSWER, BACKGROUND_ANSWER = "mean training frame", "background alone"  # the baselines' names
LOSS_OPTIONS = {"foreground_weight": "weight of the training NLL of foreground pixels (those differing from the "
                                     "corpus's background), ≥ 0; 1 (the default) weighs every pixel alike",
                "foreground_weight_on": "which pixels foreground_weight weighs: 'target' (the default: the target "
                                        "frame's foreground) or 'either' (also where the reconstruction draws "
                                        "foreground over the target's background, so halos and strays cost as "
                                        "much as misses)"}
WEIGHED_FOREGROUNDS = ("target", "either")


def psnr(mse: float) -> float:
    """PSNR in dB of intensities on [0, 1]; infinite for a perfect reconstruction."""
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def foreground_sums(predicted: torch.Tensor, target: torch.Tensor, background: torch.Tensor,
                    rare: np.ndarray | None = None) -> dict[str, tuple]:
    """Sums of the foreground metrics of (N, C, H, W) frames in [0, 1] against the (C, H, W) background;
    ``rare``: where small objects may lie (``vaekit.small_objects``)."""
    mask = foreground(target, background)
    error = predicted - target
    squared = error.pow(2).sum(dim=1)[mask].sum()
    recalled = ((error.abs().amax(dim=1) <= FOREGROUND_TOLERANCE) & mask).sum()
    kept, total = kept_and_total(mask.cpu().numpy(), foreground(predicted, background).cpu().numpy(), rare)
    return {"foreground_mse": (squared, mask.sum() * target.shape[1]), "foreground_recall": (recalled, mask.sum()),
            "small_object_recall": (kept, total)}


def foreground_weight(options: dict) -> float:
    """``loss.options.foreground_weight`` (1 when absent), refused unless a finite number ≥ 0."""
    weight = options.get("foreground_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise VaekitUsageError(f"loss.options.foreground_weight must be a finite number ≥ 0, got {weight!r}")
    return float(weight)


def foreground_weight_on(options: dict) -> str:
    """``loss.options.foreground_weight_on`` ('target' when absent), refused unless 'target' or 'either'."""
    on = options.get("foreground_weight_on", "target")
    if on not in WEIGHED_FOREGROUNDS:
        raise VaekitUsageError(f"loss.options.foreground_weight_on must be one of {', '.join(WEIGHED_FOREGROUNDS)}, "
                               f"got {on!r}")
    return on


class SharedBackground:
    """Mixin of a frames domain whose corpus stores a background (``vaekit.background``)."""

    loss_options = LOSS_OPTIONS
    background: np.ndarray | None = None  # the background of the corpus loaded last, (H, W, C) uint8
    mean_frame: np.ndarray | None = None  # its mean training frame, (H, W, C) float32 on the 0–255 scale
    rare_foreground: np.ndarray | None = None  # (H, W) bool: where its training frames rarely show foreground

    def use_corpus(self, corpus) -> None:
        facts = corpus_frame_facts(corpus.path, corpus.arrays)
        self.background, self.mean_frame = facts.background, facts.mean_frame
        self.rare_foreground = facts.foreground_rate < RARE_FOREGROUND

    def frame_quality_sums(self, predicted: torch.Tensor, target: torch.Tensor) -> dict[str, tuple]:
        """Per-batch sums of the domain's own quality metrics of (N, C, H, W) frames in [0, 1]."""
        raise NotImplementedError

    def _background_on(self, device) -> torch.Tensor:
        return as_model_frame(self.background, device)

    def quality_sums(self, model, batch, output):
        return self.answer_sums(model.frame_means(output), batch)

    def answer_sums(self, answers: torch.Tensor, batch: torch.Tensor) -> dict[str, tuple]:
        """Sums of the quality metrics of (N, C, H, W) frames in [0, 1] answering the stored ``batch``."""
        target = as_model_frames(batch)
        sums = self.frame_quality_sums(answers, target)
        if self.background is not None:
            sums.update(foreground_sums(answers, target, self._background_on(target.device), self.rare_foreground))
        return sums

    def baselines(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The mean training frame and the background alone, as the reconstruction of every frame."""
        if self.background is None:
            return {}
        answers = {MEAN_FRAME_ANSWER: self.mean_frame, BACKGROUND_ANSWER: self.background}
        return {name: as_model_frame(frame, batch.device).expand(len(batch), -1, -1, -1)
                for name, frame in answers.items()}

    def derived_metrics(self, metrics: dict) -> dict:
        return {f"{key}psnr": psnr(metrics[f"{key}mse"]) for key in ("", "foreground_")
                if metrics.get(f"{key}mse") is not None}

    def check_loss_options(self, options: dict) -> None:
        super().check_loss_options(options)
        foreground_weight(options)
        foreground_weight_on(options)

    def prepare_model(self, model, config) -> None:
        """Weigh the training NLL of the foreground by ``loss.options.foreground_weight`` (not at 1), on
        the pixels ``loss.options.foreground_weight_on`` names."""
        weight = foreground_weight(config.loss.options)
        if weight != 1.0 and self.background is not None:
            model.weigh_foreground(self._background_on(next(model.parameters()).device), weight,
                                   drawn_too=foreground_weight_on(config.loss.options) == "either")

    def small_object_boxes(self, items: np.ndarray, reconstructions: np.ndarray) -> list[list] | None:
        """Per item of stored-format ``items``, the (box, kept) of each of its small objects in
        ``reconstructions`` (for ``vaekit.plots.save_frame_rows``); None without a background."""
        if self.background is None:
            return None
        background = self._background_on("cpu")
        masks = [foreground(as_model_frames(frames), background).numpy()
                 for frames in (items, reconstructions)]
        boxes: list[list] = [[] for _ in range(len(items))]
        for obj in small_objects(*masks, self.rare_foreground):
            boxes[obj.frame].append((obj.box, obj.kept))
        return boxes
