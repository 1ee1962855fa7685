"""results/reconstructions_epoch_NNN.png every train.pictures_every epochs: the same validation items
each time, drawn the domain's way (its ``save_pictures``), so the epochs can be compared side by side.

The epoch's pictures (reconstructions and prior samples) are also left in ``t.shared['pictures']``
as (epoch, {name: HxWxC uint8 array}) for other sinks (TensorBoard).
"""

import shutil
import tempfile
from pathlib import Path

import matplotlib.image
import numpy as np
import torch

from vaekit.config import Config
from vaekit.domains import picture_items
from vaekit.errors import VaekitUsageError
from vaekit.training.events import Callback, Training, register_callback
from vaekit.training.precision import inference

ITEMS = 16  # validation items shown, and prior samples drawn


@register_callback
class EpochPictures(Callback):
    stage = "draw"

    def __init__(self, every: int):
        self.every, self.shown = every, None

    @classmethod
    def check_config(cls, config: Config) -> None:
        if config.train.pictures_every < 0:
            raise VaekitUsageError(f"train.pictures_every {config.train.pictures_every}: expected 0 (off) or more")

    @classmethod
    def from_config(cls, config: Config) -> "EpochPictures | None":
        return cls(config.train.pictures_every) if config.train.pictures_every else None

    def on_epoch_end(self, t: Training, record: dict) -> None:
        epoch = record["epoch"]
        if not t.writes or epoch % self.every:
            return
        if self.shown is None:
            self.shown = picture_items(t.domain.load(t.config.data.path).arrays, "val")
        with tempfile.TemporaryDirectory() as folder, torch.random.fork_rng(devices=[]):
            generator = torch.Generator().manual_seed(t.config.seed)  # the same prior samples every epoch
            t.model.eval()
            try:
                with torch.no_grad(), inference(t.config.train.precision, next(t.model.parameters()).device):
                    files = t.domain.save_pictures(t.model, self.shown, Path(folder), ITEMS, generator)
            finally:
                t.model.train()
            pictures = {p.stem: p for p in files if p.suffix == ".png" and p.stem in ("reconstructions", "samples")}
            if "reconstructions" in pictures:
                shutil.copyfile(pictures["reconstructions"], t.run.results / f"reconstructions_epoch_{epoch:03d}.png")
            t.shared["pictures"] = (epoch, {name: _as_uint8(matplotlib.image.imread(path))
                                            for name, path in pictures.items()})


def _as_uint8(image: np.ndarray) -> np.ndarray:
    return (image[..., :3] * 255).round().astype(np.uint8) if image.dtype != np.uint8 else image[..., :3]
