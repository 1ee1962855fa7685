"""Conv1d VAEs over sequences of Gaussian-splat parameters: (8 channels, 512 splats), normalised.

How θ enters and leaves the model is the ``rotation`` option (vaekit.models.splat_rotation): by
default as (cos 2θ, sin 2θ), so an ellipse and the same ellipse turned by π are the same input and
target; ``angle`` is the seed's single z-scored channel. ``loss_weighting`` chooses between the
seed's plain sum of the groups' losses (``equal``) and its run_007 fix (``per_group``).
"""

from __future__ import annotations

import torch
from torch import nn

from vaekit.data_formats import SPLAT_GROUPS as GROUPS
from vaekit.data_formats import SPLAT_SEQUENCE
from vaekit.models import register_model
from vaekit.models.base import GaussianVAE
from vaekit.models.layers import GaussianHead
from vaekit.models.splat_rotation import ROTATION_ENCODINGS, UNIFORM_THETA_NORM
from vaekit.training.losses import reduce_elements

CHANNELS = {group: len(channels) for group, channels in GROUPS.items()}  # parameters per group: 2, 2, 1, 3
WEIGHTINGS = ("per_group", "equal")


class ResidualBlock1d(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU(),
                                  nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class Conv1dEncoder(nn.Module):
    """Stride-2 Conv1d stages (each optionally followed by residual blocks) -> 1×1 bottleneck -> (μ, σ)."""

    def __init__(self, filters, length, bottleneck, latent_dim, residual_blocks=0, in_channels=9):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = in_channels
        for out_ch in filters:
            layers += [nn.Conv1d(in_ch, out_ch, 4, stride=2, padding=1), nn.ReLU()]
            layers += [ResidualBlock1d(out_ch) for _ in range(residual_blocks)]
            in_ch, length = out_ch, length // 2
        layers += [nn.Conv1d(in_ch, bottleneck, 1), nn.ReLU(), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = GaussianHead(bottleneck * length, latent_dim)
        self.feature_shape = (bottleneck, length)

    def forward(self, x):
        return self.head(self.features(x))


class Conv1dDecoder(nn.Module):
    """Dense -> (bottleneck, L) -> stride-2 ConvTranspose1d stages -> the model's channels."""

    def __init__(self, filters, feature_shape, latent_dim, residual_blocks=0, out_channels=9):
        super().__init__()
        channels, length = feature_shape
        self.feature_shape = feature_shape
        self.dense = nn.Sequential(nn.Linear(latent_dim, channels * length), nn.ReLU())
        layers: list[nn.Module] = []
        in_ch = channels
        for out_ch in filters:
            layers += [nn.ConvTranspose1d(in_ch, out_ch, 4, stride=2, padding=1), nn.ReLU()]
            layers += [ResidualBlock1d(out_ch) for _ in range(residual_blocks)]
            in_ch = out_ch
        layers.append(nn.Conv1d(in_ch, out_channels, 3, padding=1))
        self.upsample = nn.Sequential(*layers)

    def forward(self, z):
        return self.upsample(self.dense(z).view(-1, *self.feature_shape))


class SplatSequenceVAE(GaussianVAE):
    """Shared scoring of splat sequences; subclasses choose the layers."""
    tiny_options = {"length": 16, "encoder_filters": [4, 4], "decoder_filters": [4, 4], "bottleneck": 2}

    data_format = SPLAT_SEQUENCE

    def _build(self, latent_dim, encoder_filters, decoder_filters, length, bottleneck, residual_blocks,
               loss_weighting, rotation, theta_norm):
        if loss_weighting not in WEIGHTINGS:
            raise ValueError(f"loss_weighting '{loss_weighting}': expected one of {', '.join(WEIGHTINGS)}")
        if rotation not in ROTATION_ENCODINGS:
            raise ValueError(f"rotation '{rotation}': expected one of {', '.join(ROTATION_ENCODINGS)}")
        if len(encoder_filters) != len(decoder_filters):
            raise ValueError("encoder and decoder need the same number of stride-2 stages")
        self.latent_dim, self.loss_weighting = latent_dim, loss_weighting
        self.rotation = ROTATION_ENCODINGS[rotation]
        self.theta_norm = tuple(float(v) for v in (theta_norm or UNIFORM_THETA_NORM))
        channels = self.rotation.channels
        self.encoder = Conv1dEncoder(encoder_filters, length, bottleneck, latent_dim, residual_blocks, channels)
        self.decoder = Conv1dDecoder(decoder_filters, self.encoder.feature_shape, latent_dim, residual_blocks,
                                     channels)

    def prepare(self, batch):
        return self.rotation.encode(batch, self.theta_norm)

    def _splat_errors(self, output, batch) -> dict[str, torch.Tensor]:
        """Per group, the (batch, splats) error summed over the group's channels: squared error for
        xy, scale and feat (normalised units); the rotation encoding's own error for rot."""
        target = self.prepare(batch)
        errors = {}
        for group, channels in self.rotation.groups.items():
            if group == "rot":
                errors[group] = self.rotation.error(output, target)
            else:
                errors[group] = (output[:, channels] - target[:, channels]).pow(2).sum(dim=1)
        return errors

    def group_errors(self, output, batch) -> dict[str, torch.Tensor]:
        """Per group, the (batch,) mean error per splat and parameter (θ counts as one parameter)."""
        return {group: error.mean(dim=1) / CHANNELS[group]
                for group, error in self._splat_errors(output, batch).items()}

    def reconstruction_nll(self, output, batch, reduction):
        """Σ over splats of Σ_groups w_g · (the group's channel-summed error): w_g = 1/channels
        (per_group: loss_xy/2 + loss_scale/2 + loss_rot/1 + loss_feat/3) or 1 (equal)."""
        per_splat = sum(
            (1 / CHANNELS[group] if self.loss_weighting == "per_group" else 1.0) * error
            for group, error in self._splat_errors(output, batch).items())
        return reduce_elements(per_splat, reduction)

    def comparable(self, output):
        """Output in the target's layout (the rotation embedding scaled to unit length)."""
        rot = self.rotation.groups["rot"]
        return torch.cat([output[:, :rot[0]], self.rotation.comparable(output), output[:, rot[-1] + 1:]], dim=1)

    def comparable_target(self, batch):
        return self.prepare(batch)

    def comparable_groups(self):
        return self.rotation.groups

    def predicted_angle(self, output) -> torch.Tensor:
        """(B, K) θ in radians as the model predicts it."""
        return self.rotation.angle(output, self.theta_norm)

    def to_normalised_params(self, output):
        """Output -> (B, 8, K) normalised parameters with θ in radians."""
        rot = self.rotation.groups["rot"]
        return torch.cat([output[:, :rot[0]], self.predicted_angle(output)[:, None], output[:, rot[-1] + 1:]], dim=1)

    def reconstruct(self, output):
        return self.to_normalised_params(output)


@register_model("conv1d_gaussian")
class Conv1dGaussianVAE(SplatSequenceVAE):
    """Conv1d VAE over 512 splats: encoder filters [32, 64, 128], decoder [64, 32, 16]."""

    def __init__(self, latent_dim: int = 256, encoder_filters: tuple = (32, 64, 128),
                 decoder_filters: tuple = (64, 32, 16), length: int = 512, bottleneck: int = 32,
                 loss_weighting: str = "per_group", rotation: str = "embedding", theta_norm: tuple | None = None):
        super().__init__()
        self._build(latent_dim, encoder_filters, decoder_filters, length, bottleneck, 0, loss_weighting,
                    rotation, theta_norm)


@register_model("resnet_conv1d_gaussian")
class ResNetConv1dGaussianVAE(SplatSequenceVAE):
    """The residual variant: two residual blocks after every stage, wider filters."""
    tiny_options = {**SplatSequenceVAE.tiny_options, "residual_blocks": 1}

    def __init__(self, latent_dim: int = 512, encoder_filters: tuple = (64, 128, 192),
                 decoder_filters: tuple = (192, 96, 48), length: int = 512, bottleneck: int = 32,
                 residual_blocks: int = 2, loss_weighting: str = "per_group", rotation: str = "embedding",
                 theta_norm: tuple | None = None):
        super().__init__()
        self._build(latent_dim, encoder_filters, decoder_filters, length, bottleneck, residual_blocks,
                    loss_weighting, rotation, theta_norm)
