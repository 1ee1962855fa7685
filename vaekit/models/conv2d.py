"""Conv2d β-VAE for categorical grids (ARC): one-hot colours in, logits per colour out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaekit.data_formats import ARC_GRID
from vaekit.models import register_model
from vaekit.models.base import GaussianVAE
from vaekit.models.layers import ConvDecoder2d, ConvEncoder2d, SpatialBroadcastDecoder2d
from vaekit.training.losses import reduce_elements


class CategoricalCells:
    """Grids of integer colours (batch, H, W) uint8: one-hot in, a categorical per cell out.

    Mixed into every grid VAE; the class sets ``self.num_colors``."""

    data_format = ARC_GRID
    data_bin_width = 1.0  # a categorical likelihood is already a probability of the stored grid
    num_colors: int

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return F.one_hot(batch.long(), self.num_colors).permute(0, 3, 1, 2).float()

    def reconstruction_nll(self, output, batch, reduction):
        per_cell = F.cross_entropy(output.float(), batch.long(), reduction="none")
        return reduce_elements(per_cell, reduction)

    def reconstruct(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=1).to(torch.uint8)


class CategoricalGridVAE(CategoricalCells, GaussianVAE):
    """Grids of integer colours (batch, H, W) uint8, decoded as a categorical per cell."""

    prefers_channels_last = True  # as fast or faster on CPU (docs/training.md); the one-hot input is NHWC already

    def __init__(
        self,
        latent_dim: int = 10,
        num_colors: int = 10,
        grid_size: int = 16,
        channels: tuple = (32, 64, 128),
        strides: tuple = (1, 2, 2),
        hidden: int = 128,
        decoder_channels: tuple = (64, 32),
        norm: bool = False,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_colors = num_colors
        self.encoder = ConvEncoder2d(num_colors, channels, strides, grid_size, hidden, latent_dim, norm)
        self.decoder = ConvDecoder2d(
            latent_dim, hidden, self.encoder.feature_shape, decoder_channels, num_colors, norm
        )


@register_model("conv2d")
class Conv2dGridVAE(CategoricalGridVAE):
    """The seed's layers exactly: conv 32/64/128 (strides 1, 2, 2), dense 128, mirrored decoder."""


@register_model("conv2d_wide")
class WideConv2dGridVAE(CategoricalGridVAE):
    """A stronger grid VAE: twice the channels, a 512-wide dense layer and BatchNorm."""

    def __init__(
        self,
        latent_dim: int = 10,
        num_colors: int = 10,
        grid_size: int = 16,
        channels: tuple = (64, 128, 256),
        strides: tuple = (1, 2, 2),
        hidden: int = 512,
        decoder_channels: tuple = (128, 64),
        norm: bool = True,
    ):
        super().__init__(latent_dim, num_colors, grid_size, channels, strides, hidden, decoder_channels, norm)


@register_model("conv2d_broadcast")
class BroadcastGridVAE(CategoricalGridVAE):
    """The seed's encoder with a spatial-broadcast decoder: z tiled over 16×16 with coordinates,
    then stride-1 3×3 convolutions."""

    def __init__(
        self,
        latent_dim: int = 10,
        num_colors: int = 10,
        grid_size: int = 16,
        channels: tuple = (32, 64, 128),
        strides: tuple = (1, 2, 2),
        hidden: int = 128,
        decoder_channels: tuple = (64, 64, 64, 64),
        norm: bool = False,
    ):
        super().__init__(latent_dim, num_colors, grid_size, channels, strides, hidden, (), norm)
        # Replaces the parent's decoder after building it, so the random initialisation (and the
        # figures in docs/domains/arc.md) stay those of the runs that were measured.
        self.decoder = SpatialBroadcastDecoder2d(latent_dim, grid_size, decoder_channels, num_colors, norm)
