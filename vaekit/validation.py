"""One validation pass over a resolved configuration, run before any file is written.

``check_run_config`` is the one place a reader finds every check that needs no data, in order:

1. every key's type, range and name: ``vaekit.config.validate`` (run by ``build_config`` as the
   layers apply, so an error names the layer that set the value);
2. the model fits the domain (data format, protocol) and takes the reconstruction options given,
   and the domain takes the ``loss.options`` given;
3. the objective takes the model, its keys are its own and in range, the batch is large enough;
4. ``train.selection_metric`` names a validation metric of the domain and model;
5. the subscribers' settings (TensorBoard, MLflow, pictures, ...) and the checkpoint cadence.

Checks that need the device or the data run where those are first known, still before the run
directory is made: the precision (``vaekit.training.precision.resolve_precision``), the corpus
against the domain's data format (``Domain.load``), and ``check_fits_data``: one forward and backward
pass of a throwaway copy of the model on a few real items, so that an option that does not fit the
data (a frame size, a feature count) is refused with exit 2 naming it, not met in the first step.
"""

from __future__ import annotations

import math

import torch

from vaekit.config import Config
from vaekit.errors import VaekitUsageError, nearest
from vaekit.models.conv2d import check_cell_loss_options
from vaekit.training.events import check_callbacks
from vaekit.training.objective import check_objective


def check_run_config(config: Config, domain) -> None:
    """Refuse a configuration that cannot train ``domain`` (exit 2, one line naming the key)."""
    model_cls = domain.check_model(config.model.name)
    check_cell_loss_options(config.model.name, model_cls, config.model.options)
    domain.check_loss_options(config.loss.options)
    check_objective(config, model_cls)
    check_selection_metric(config.train.selection_metric, domain.selection_metric_names(model_cls))
    check_callbacks(config)
    check_checkpoint_cadence(config)


DRY_ITEMS = 4  # the items of the dry step: enough for the objectives' batch estimates


def check_fits_data(config: Config, items: torch.Tensor, device: torch.device, precision: str = "fp32") -> None:
    """Build a throwaway copy of the configured model and run one training forward and backward pass
    on ``items`` (a few training items as the model reads them) in ``precision`` on ``device``; a
    failure is refused naming the model, its options and the items' shape. The caller's random
    state is left as it was."""
    from vaekit.models import create_model
    from vaekit.training.objective import build_objective
    from vaekit.training.precision import autocast

    batch = items[:DRY_ITEMS]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = create_model(config.model.name, config.model.latent_dim, config.model.options).to(device)
        objective = build_objective(config, model.latent_dim, max(len(items), 2)).to(device)
        try:
            with autocast(precision, device):
                out = objective(model, batch, torch.tensor(1.0, device=device), config.loss)
            (out.total + (out.auxiliary if out.auxiliary is not None else 0)).backward()
        except (RuntimeError, ValueError, IndexError) as error:
            options = ", ".join(f"{k}={v}" for k, v in config.model.options.items()) or "none"
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise VaekitUsageError(f"model '{config.model.name}' (model.options: {options}) does not fit the "
                                   f"corpus, whose items have shape {tuple(batch.shape[1:])} ({batch.dtype}): "
                                   f"{detail}") from None


def check_selection_metric(selection_metric: str, valid: list[str]) -> None:
    """Refuse a ``train.selection_metric`` naming anything but the validation metrics ``valid``
    (checked before training, so that a typo never costs an epoch)."""
    for name in (part.strip() for part in selection_metric.split(",")):
        if name not in valid:
            hint = nearest(name, valid)
            suggestion = f" (did you mean '{hint}'?)" if hint else ""
            raise VaekitUsageError(f"train.selection_metric '{name}' is not a validation metric{suggestion}; "
                                   f"choose from: {', '.join(valid)}")


def check_checkpoint_cadence(config: Config) -> None:
    """Mid-epoch checkpoints every N steps or minutes: 0 (off) or more."""
    for key in ("checkpoint_every_steps", "checkpoint_every_minutes"):
        value = getattr(config.train, key)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and value >= 0):
            raise VaekitUsageError(f"train.{key} {value!r}: expected 0 (off) or more")
