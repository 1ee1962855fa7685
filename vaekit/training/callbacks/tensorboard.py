"""TensorBoard event files under runs/<id>/logs/ (train.tensorboard, `train --tensorboard`): per
epoch the losses, β, lr, active dimensions, quality metrics and the KL of each latent dimension, and
the reconstruction and prior-sample pictures of the epochs that draw them (train.pictures_every);
every train.log_every_steps steps, at the global step, the training batch's unclamped KL per latent
dimension: its min, max and mean under train/kl_per_dim/ and each dimension as train/kl_per_dim/dim_NNN.
`tensorboard --logdir runs/` then shows every run. Needs the extra: pip install 'vaekit[tensorboard]'.
"""

from vaekit.config import Config
from vaekit.errors import VaekitUsageError
from vaekit.training.events import Training, register_callback
from vaekit.training.metric_logger import MetricLogger


@register_callback
class TensorBoard(MetricLogger):
    def __init__(self):
        super().__init__()
        self.writer = None

    @classmethod
    def check_config(cls, config: Config) -> None:
        if not config.train.tensorboard:
            return
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise VaekitUsageError("train.tensorboard needs the tensorboard package: pip install "
                                   "'vaekit[tensorboard]' (or pip install tensorboard)") from None

    @classmethod
    def from_config(cls, config: Config) -> "TensorBoard | None":
        return cls() if config.train.tensorboard else None

    def open(self, t: Training) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run hides the step scalars it logged after last.pt, as steps.jsonl drops them
        # (epoch scalars sit at steps ≤ last.pt's epoch, below the first dropped step)
        self.writer = SummaryWriter(log_dir=str(t.run.path / "logs"), purge_step=t.shared.get("steps_dropped_from"))

    def log_step(self, t: Training, step: int, record: dict) -> None:
        for name in ("min", "max", "mean"):
            self.writer.add_scalar(f"train/kl_per_dim/{name}", record[f"kl_{name}"], step)
        for dim, kl in enumerate(record["kl_per_dim"]):
            self.writer.add_scalar(f"train/kl_per_dim/dim_{dim:03d}", kl, step)

    def log_epoch(self, t: Training, epoch: int, scalars: dict[str, float], record: dict) -> None:
        for key, value in scalars.items():
            group = "train" if key.startswith("train_") else "val" if key.startswith("val_") else "schedule"
            self.writer.add_scalar(f"{group}/{key}", value, epoch)
        for dim, kl in enumerate(record["kl_per_dim"]):
            self.writer.add_scalar(f"kl_per_dim/{dim:03d}", kl, epoch)
        pictured, pictures = t.shared.get("pictures", (None, {}))
        if pictured == epoch:
            for name, image in pictures.items():
                self.writer.add_image(f"pictures/{name}", image, epoch, dataformats="HWC")
        self.writer.flush()

    def finish(self, t: Training, completed: bool) -> None:
        self.writer.close()
        self.writer = None
