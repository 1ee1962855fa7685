"""The epoch-end half of the non-finite guard (train.nonfinite): checks the policy name before
training, and stops the run before any checkpoint is written if the weights are not finite.

Each step's loss and gradient norm are checked by ``TrainStep`` itself (where the step can still be
skipped); this catches what a finite step can still do, e.g. an lr so large that the update
overflows, so that last.pt and vae_best.pth only ever receive finite weights.
"""

import torch

from vaekit.config import Config
from vaekit.errors import NonFiniteError, VaekitUsageError
from vaekit.training.events import Callback, Training, register_callback

POLICIES = ("stop", "skip")


@register_callback
class NonFiniteGuard(Callback):
    stage = "guard"

    @classmethod
    def check_config(cls, config: Config) -> None:
        if config.train.nonfinite not in POLICIES:
            raise VaekitUsageError(f"train.nonfinite '{config.train.nonfinite}': expected one of {', '.join(POLICIES)}")

    def on_epoch_end(self, t: Training, record: dict) -> None:
        bad = [name for name, p in t.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteError(f"the weights went non-finite during epoch {record['epoch']} ({len(bad)} tensors, "
                                 f"e.g. {bad[0]}); nothing of this epoch was saved: last.pt holds epoch "
                                 f"{record['epoch'] - 1}; continue with --resume and a lower --lr")
