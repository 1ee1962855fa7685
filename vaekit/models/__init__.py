"""The model zoo: a registry of VAE families and their variants, built by name.

A family is one class whose constructor holds every argument; its keyword arguments are the
``model.options`` a config may set. A variant is a registered subclass that states only what
differs: other ``default_options``, and where it needs one, another part (timm's ``resnet50`` is
``_create_resnet`` with ``layers=(3, 4, 6, 3)``)::

    @register_model("conv2d_wide")
    class WideConv2dGridVAE(CategoricalGridVAE):  # with a docstring: its line in `vaekit models`
        default_options = dict(channels=(64, 128, 256), hidden=512, norm=True)

    model = create_model("conv2d_wide", latent_dim=10, options={"hidden": 256})
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from vaekit.data_formats import DataFormat
from vaekit.errors import VaekitUsageError, nearest
from vaekit.models.protocols import VAEModel, missing_members
from vaekit.registry import Registry, import_submodules


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


def model_options(cls: type) -> dict:
    """The options a model class takes (``model.options``), each with its default.

    They are the keyword arguments of its constructor (without ``latent_dim``), or of its
    ``from_options`` builder where it has one (a family whose constructor takes its options grouped);
    a constructor that passes ``**options`` on to its parent's takes the parent's as well. The class's
    ``default_options`` (a variant's) replace the constructor's defaults.
    """
    constructors = []
    for klass in cls.__mro__:
        builder = vars(klass).get("from_options") or vars(klass).get("__init__")
        if builder is not None:
            constructors.append(inspect.signature(getattr(builder, "__func__", builder)).parameters.values())
            if not any(p.kind is p.VAR_KEYWORD for p in constructors[-1]):
                break
    defaults = {p.name: p.default for params in reversed(constructors) for p in params  # the family's first
                if p.name not in ("self", "cls", "latent_dim") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {**defaults, **getattr(cls, "default_options", {})}


def create_model(name: str, latent_dim: int, options: dict | None = None) -> nn.Module:
    """Build a registered model from its variant's defaults and ``options``; unknown option names are
    refused with the nearest valid one and the list of all."""
    cls = MODELS.get(name)
    options = dict(options or {})
    accepted = list(model_options(cls))
    for key in options:
        if key not in accepted:
            hint = nearest(key, accepted)
            suggestion = f" (did you mean 'model.options.{hint}'?)" if hint else ""
            raise VaekitUsageError(
                f"model '{name}' has no option '{key}'{suggestion}; it takes: {', '.join(accepted)}"
            )
    try:
        build = getattr(cls, "from_options", cls)
        model = build(latent_dim=latent_dim, **{**getattr(cls, "default_options", {}), **options})
    except (TypeError, ValueError) as err:
        raise VaekitUsageError(f"model '{name}': {err}") from None
    if getattr(model, "prefers_channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    return model


def option_default(name: str, option: str):
    """The default value of one option of a registered model (what it builds with when the config
    leaves the option out)."""
    return model_options(MODELS.get(name))[option]


def list_models() -> list[str]:
    return MODELS.names()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


import_submodules(__name__, __path__)  # each module registers its families and variants
