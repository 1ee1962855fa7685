"""The model zoo: a registry of VAE families, built by name.

    @register_model("conv2d")
    class Conv2dGridVAE(GaussianVAE): ...

    model = create_model("conv2d", latent_dim=10)
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from vaekit.data_formats import DataFormat
from vaekit.errors import VaekitUsageError, nearest
from vaekit.models.protocols import VAEModel, missing_members
from vaekit.registry import Registry


def check_model_class(name: str, cls: type) -> None:
    """A registered model declares the data format it reads and provides everything VAEModel lists."""
    if not isinstance(getattr(cls, "data_format", None), DataFormat):
        raise TypeError(f"model '{name}' ({cls.__name__}) must set the class attribute data_format to "
                        "the stored format it reads, e.g. vaekit.data_formats.ARC_GRID")
    missing = missing_members(cls, VAEModel)
    if missing:
        raise TypeError(f"model '{name}' ({cls.__name__}) lacks {', '.join(missing)} "
                        "(see vaekit.models.protocols.VAEModel; subclassing GaussianVAE provides most)")


MODELS: Registry[type[nn.Module]] = Registry("model", check_model_class)
register_model = MODELS.register


def create_model(name: str, latent_dim: int, options: dict | None = None) -> nn.Module:
    """Build a registered model; unknown option names are refused with the nearest valid one."""
    cls = MODELS.get(name)
    options = dict(options or {})
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "latent_dim")]
    for key in options:
        if key not in accepted:
            hint = nearest(key, accepted)
            suggestion = f" (did you mean 'model.options.{hint}'?)" if hint else ""
            raise VaekitUsageError(
                f"model '{name}' has no option '{key}'{suggestion}; it takes: {', '.join(accepted)}"
            )
    try:
        model = cls(latent_dim=latent_dim, **options)
    except (TypeError, ValueError) as err:
        raise VaekitUsageError(f"model '{name}': {err}") from None
    if getattr(model, "prefers_channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    return model


def option_default(name: str, option: str):
    """The default value of one option of a registered model (what it builds with when the config
    leaves the option out)."""
    parameter = inspect.signature(MODELS.get(name).__init__).parameters[option]
    return parameter.default


def list_models() -> list[str]:
    return MODELS.names()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Importing the families registers them.
from vaekit.models import conv1d, conv2d, frames, grid_ar, ternary  # noqa: E402,F401
