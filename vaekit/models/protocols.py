"""The model side of the model–domain contract, declared as typing Protocols.

``VAEModel`` is what the trainer, the evaluation and the samplers call on every model;
``GaussianVAE`` provides all of it but the three methods a family must write (``prepare``,
``reconstruction_nll``, ``reconstruct``) and its ``data_format``. A domain whose metrics or pictures
call more names the Protocol its models must satisfy as well (``Domain.model_protocol``):
``FrameModel``, ``PathwayModel`` or ``SplatModel`` below. ``missing_members`` lists what a model
class lacks, so a model and a domain that do not fit are refused before anything runs.
"""

from __future__ import annotations

from typing import Protocol

import torch

from vaekit.data_formats import DataFormat


class VAEModel(Protocol):
    """Every registered model: a VAE over one stored data format."""

    data_format: DataFormat  # the stored format the model reads (vaekit.data_formats)
    latent_dim: int
    data_bin_width: float | None  # quantisation bin of the stored data; None: likelihood not normalised
    prefers_channels_last: bool  # create_model stores its 4-d weights channels-last
    supports_compile: bool  # False: --compile trains it eagerly after one warning
    gaussian_posterior: bool  # True: loss_terms gives z, mu and sigma, so every objective (vaekit.objectives) applies
    corrects_lr: bool  # True: the loop's scheduler multiplies the lr by lr_factor() after each epoch

    def prepare(self, batch: torch.Tensor) -> torch.Tensor: ...
    def encode(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def decode(self, z: torch.Tensor) -> torch.Tensor: ...
    def decode_data(self, z: torch.Tensor) -> torch.Tensor: ...
    def reconstruct(self, output: torch.Tensor) -> torch.Tensor: ...
    def reconstruction_nll(self, output: torch.Tensor, batch: torch.Tensor, reduction: str) -> torch.Tensor: ...
    def objective(self, batch: torch.Tensor, beta: float, loss_cfg) -> tuple: ...
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...
    def log_likelihood(self, batch: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...  # IWAE (vaekit.likelihood)

    # Training hooks, called by the loop in this order (GaussianVAE's defaults do nothing).
    def on_epoch_start(self, epoch: int, total_epochs: int) -> dict: ...
    def after_backward(self) -> None: ...
    def lr_factor(self) -> float: ...  # applied by the loop's scheduler where corrects_lr is set
    def on_epoch_end(self) -> dict: ...
    def phase_boundaries(self) -> list[tuple[int, str]]: ...


class FrameModel(VAEModel, Protocol):
    """A model of images with a continuous decoder (the Atari domain's metrics and pictures)."""

    def frame_means(self, output: torch.Tensor) -> torch.Tensor: ...
    def weigh_foreground(self, background: torch.Tensor, weight: float, drawn_too: bool = False) -> None: ...


class PathwayModel(VAEModel, Protocol):
    """A model whose decoder output holds one or more named pathways (the ternary domain's coverage)."""

    pathways: tuple[str, ...]  # names of the keys pathway_predictions returns ('' for a single one)
    prior_dim: int  # dimension of one prior draw: per pathway

    def decode_prior(self, z: torch.Tensor) -> torch.Tensor: ...
    def pathway_predictions(self, output: torch.Tensor) -> dict[str, torch.Tensor]: ...


class SplatModel(VAEModel, Protocol):
    """A model of Gaussian-splat sequences (the gaussians domain's per-group metrics and pictures)."""

    def group_errors(self, output: torch.Tensor, batch: torch.Tensor) -> dict[str, torch.Tensor]: ...
    def comparable(self, output: torch.Tensor) -> torch.Tensor: ...
    def comparable_target(self, batch: torch.Tensor) -> torch.Tensor: ...
    def comparable_groups(self) -> dict[str, list[int]]: ...
    def to_normalised_params(self, output: torch.Tensor) -> torch.Tensor: ...
    def predicted_angle(self, output: torch.Tensor) -> torch.Tensor: ...


def protocol_members(protocol: type) -> list[str]:
    """The attribute and method names a Protocol declares, its Protocol bases' included."""
    names: list[str] = []
    for klass in reversed(protocol.__mro__):
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        declared = [*vars(klass).get("__annotations__", {}), *vars(klass)]
        names += [n for n in declared if not n.startswith("_") and n not in names]
    return names


def _provides(cls: type, name: str) -> bool:
    """True when instances of ``cls`` have ``name``: a class attribute, or one declared by annotation
    and set in ``__init__`` (e.g. ``latent_dim``)."""
    return hasattr(cls, name) or any(name in vars(k).get("__annotations__", {}) for k in cls.__mro__)


def missing_members(cls: type, protocol: type) -> list[str]:
    """The names of ``protocol`` that the model class ``cls`` does not provide."""
    return [name for name in protocol_members(protocol) if not _provides(cls, name)]
