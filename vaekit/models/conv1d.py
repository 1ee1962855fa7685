"""Conv1d VAEs over sequences of Gaussian-splat parameters: (8 channels, 512 splats), normalised.

The encoder sees θ as (cos 2θ, sin 2θ) and the decoder predicts that embedding, so an ellipse and
the same ellipse turned by π are the same input and the same target. The rotation error is
1 − cos 2(θ̂ − θ): 0 when right, 1 on average for a guess unrelated to θ (like the normalised MSE of
a constant guess), 2 at the worst.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.data_formats import SPLAT_GROUPS as GROUPS
from vaekit.data_formats import SPLAT_SEQUENCE
from vaekit.models import register_model
from vaekit.models.base import GaussianVAE
from vaekit.models.layers import GaussianHead
from vaekit.training.losses import reduce_elements

ROT = GROUPS["rot"][0]
# Channels of the model's own layout (θ replaced by its embedding): 9 in all.
MODEL_GROUPS = {"xy": [0, 1], "scale": [2, 3], "rot": [4, 5], "feat": [6, 7, 8]}
CHANNELS = {group: len(channels) for group, channels in GROUPS.items()}  # parameters per group: 2, 2, 1, 3
WEIGHTINGS = ("per_group", "equal")


def embed_rotation(params: torch.Tensor) -> torch.Tensor:
    """(B, 8, K) parameters -> (B, 9, K) with θ replaced by (cos 2θ, sin 2θ)."""
    theta = params[:, ROT:ROT + 1]
    return torch.cat([params[:, :ROT], torch.cos(2 * theta), torch.sin(2 * theta), params[:, ROT + 1:]], dim=1)


class ResidualBlock1d(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU(),
                                  nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class Conv1dEncoder(nn.Module):
    """Stride-2 Conv1d stages (each optionally followed by residual blocks) -> 1×1 bottleneck -> (μ, σ)."""

    def __init__(self, filters, length, bottleneck, latent_dim, residual_blocks=0):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 9
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
    """Dense -> (bottleneck, L) -> stride-2 ConvTranspose1d stages -> 9 output channels."""

    def __init__(self, filters, feature_shape, latent_dim, residual_blocks=0):
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
        layers.append(nn.Conv1d(in_ch, 9, 3, padding=1))
        self.upsample = nn.Sequential(*layers)

    def forward(self, z):
        return self.upsample(self.dense(z).view(-1, *self.feature_shape))


class SplatSequenceVAE(GaussianVAE):
    """Shared scoring of splat sequences; subclasses choose the layers."""

    data_format = SPLAT_SEQUENCE

    def _build(self, latent_dim, encoder_filters, decoder_filters, length, bottleneck, residual_blocks,
               loss_weighting):
        if loss_weighting not in WEIGHTINGS:
            raise ValueError(f"loss_weighting '{loss_weighting}': expected one of {', '.join(WEIGHTINGS)}")
        if len(encoder_filters) != len(decoder_filters):
            raise ValueError("encoder and decoder need the same number of stride-2 stages")
        self.latent_dim, self.loss_weighting = latent_dim, loss_weighting
        self.encoder = Conv1dEncoder(encoder_filters, length, bottleneck, latent_dim, residual_blocks)
        self.decoder = Conv1dDecoder(decoder_filters, self.encoder.feature_shape, latent_dim, residual_blocks)

    def prepare(self, batch):
        return embed_rotation(batch)

    def _splat_errors(self, output, batch) -> dict[str, torch.Tensor]:
        """Per group, the (batch, splats) error summed over the group's channels: squared error for
        xy, scale and feat (normalised units); 1 − cos 2Δθ for rot."""
        target = self.prepare(batch)
        errors = {}
        for group, channels in MODEL_GROUPS.items():
            if group == "rot":
                c, s = output[:, 4], output[:, 5]
                norm = torch.sqrt(c.pow(2) + s.pow(2) + 1e-8)
                errors[group] = 1 - (c * target[:, 4] + s * target[:, 5]) / norm
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
        """Output in the target's layout, the rotation embedding scaled to unit length."""
        norm = torch.sqrt(output[:, 4:6].pow(2).sum(dim=1, keepdim=True) + 1e-8)
        return torch.cat([output[:, :4], output[:, 4:6] / norm, output[:, 6:]], dim=1)

    def comparable_target(self, batch):
        return self.prepare(batch)

    def comparable_groups(self):
        return MODEL_GROUPS

    def to_normalised_params(self, output):
        """(B, 9, K) output -> (B, 8, K) normalised parameters with θ = ½·atan2(s, c) in [0, π)."""
        theta = torch.remainder(0.5 * torch.atan2(output[:, 5], output[:, 4]), math.pi)
        return torch.cat([output[:, :4], theta[:, None], output[:, 6:]], dim=1)

    def reconstruct(self, output):
        return self.to_normalised_params(output)


@register_model("conv1d_gaussian")
class Conv1dGaussianVAE(SplatSequenceVAE):
    """Conv1d VAE over 512 splats: encoder filters [32, 64, 128], decoder [64, 32, 16]."""

    def __init__(self, latent_dim: int = 256, encoder_filters: tuple = (32, 64, 128),
                 decoder_filters: tuple = (64, 32, 16), length: int = 512, bottleneck: int = 32,
                 loss_weighting: str = "per_group"):
        super().__init__()
        self._build(latent_dim, encoder_filters, decoder_filters, length, bottleneck, 0, loss_weighting)


@register_model("resnet_conv1d_gaussian")
class ResNetConv1dGaussianVAE(SplatSequenceVAE):
    """The residual variant: two residual blocks after every stage, wider filters."""

    def __init__(self, latent_dim: int = 512, encoder_filters: tuple = (64, 128, 192),
                 decoder_filters: tuple = (192, 96, 48), length: int = 512, bottleneck: int = 32,
                 residual_blocks: int = 2, loss_weighting: str = "per_group"):
        super().__init__()
        self._build(latent_dim, encoder_filters, decoder_filters, length, bottleneck, residual_blocks,
                    loss_weighting)
