"""Conv2d β-VAE for categorical grids (ARC): one-hot colours in, logits per colour out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.data_formats import ARC_GRID
from vaekit.errors import VaekitUsageError
from vaekit.models import MODELS, register_model
from vaekit.models.base import GaussianVAE
from vaekit.models.cell_losses import CELL_LOSS_OPTIONS, PerCellLoss, make_cell_loss
from vaekit.models.layers import ConvDecoder2d, ConvEncoder2d, SpatialBroadcastDecoder2d
from vaekit.training.losses import reduce_elements
from vaekit.training.precision import compute_dtype


class CategoricalCells:
    """Grids of integer colours (batch, H, W) uint8: one-hot in, a categorical per cell out.

    Mixed into every grid VAE; the class sets ``self.num_colors`` and, to train with another loss
    than the cross-entropy, calls ``use_cell_loss`` with its ``recon_loss``, ``focal_gamma`` and
    ``focal_alpha`` options (``CELL_LOSS_OPTIONS``; vaekit.models.cell_losses)."""

    data_format = ARC_GRID
    data_bin_width = 1.0  # a categorical likelihood is already a probability of the stored grid
    num_colors: int
    cell_loss: PerCellLoss | None = None  # the objective's per-cell loss; None: the cross-entropy (NLL)

    def use_cell_loss(self, recon_loss: str, focal_gamma: float | None, focal_alpha) -> None:
        """Train with the per-cell loss ``recon_loss`` (a name in vaekit.models.cell_losses.CELL_LOSSES)."""
        self.cell_loss = make_cell_loss(recon_loss, focal_gamma, focal_alpha, self.num_colors)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """One-hot (batch, colours, H, W), channels-last in memory, in the dtype the first layer runs in
        (bf16 under bf16 autocast: 0 and 1 are exact). One comparison pass: ``F.one_hot`` fills and
        scatters an int64 tensor eight times the size, then ``float()`` and autocast copy it twice more
        (4 % of ARC's bf16 step, docs/training.md)."""
        colours = torch.arange(self.num_colors, device=batch.device, dtype=batch.dtype)
        return (batch.unsqueeze(-1) == colours).permute(0, 3, 1, 2).to(compute_dtype(batch.device))

    def reconstruction_nll(self, output, batch, reduction):
        per_cell = F.cross_entropy(output.float(), batch.long(), reduction="none")
        return reduce_elements(per_cell, reduction)

    def reconstruction_objective(self, output, batch, reduction):
        if self.cell_loss is None:
            return None
        return reduce_elements(self.cell_loss(output, batch), reduction)

    def reconstruct(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=1).to(torch.uint8)


def check_cell_loss_options(model_name: str, model_cls: type, options: dict) -> None:
    """Refuse ``recon_loss``, ``focal_gamma`` or ``focal_alpha`` in ``options`` for a model that is
    not a grid VAE (one without ``CategoricalCells``), naming the key and the models that take it."""
    given = [key for key in CELL_LOSS_OPTIONS if key in options]
    if given and not issubclass(model_cls, CategoricalCells):
        grid_models = [name for name in MODELS.names() if issubclass(MODELS.get(name), CategoricalCells)]
        raise VaekitUsageError(
            f"model.options.{given[0]}: model '{model_name}' has no choice of reconstruction loss; "
            f"recon_loss (cross_entropy or focal, with focal_gamma and focal_alpha) applies to the grid models "
            f"over categorical cells: {', '.join(grid_models)}")


class CategoricalGridVAE(CategoricalCells, GaussianVAE):
    """Grids of integer colours (batch, H, W) uint8, decoded as a categorical per cell: the family of
    every grid VAE, whose constructor holds their arguments.

    Args:
        latent_dim: d.
        num_colors: colours per cell.
        grid_size: side of the square grid.
        channels, strides, hidden: the conv encoder's stages and its dense layer (the decoder mirrors
            ``hidden``).
        decoder_channels: output channels of each decoder stage (``build_decoder``).
        norm: BatchNorm after each convolution.
        recon_loss, focal_gamma, focal_alpha: the per-cell training loss (vaekit.models.cell_losses).
    """
    tiny_options = {"channels": [4, 4, 4], "hidden": 8, "decoder_channels": [4, 4]}

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
        recon_loss: str = "cross_entropy",
        focal_gamma: float | None = None,
        focal_alpha: float | list | None = None,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_colors = num_colors
        self.use_cell_loss(recon_loss, focal_gamma, focal_alpha)
        self.encoder = ConvEncoder2d(num_colors, channels, strides, grid_size, hidden, latent_dim, norm)
        self.decoder = self.build_decoder(latent_dim, grid_size, hidden, decoder_channels, norm)

    def build_decoder(self, latent_dim: int, grid_size: int, hidden: int, decoder_channels: tuple,
                      norm: bool) -> nn.Module:
        """z -> logits (batch, colours, H, W): the seed's dense layers and transposed convolutions,
        mirroring the encoder."""
        return ConvDecoder2d(latent_dim, hidden, self.encoder.feature_shape, decoder_channels, self.num_colors, norm)


@register_model("conv2d")
class Conv2dGridVAE(CategoricalGridVAE):
    """The seed's layers exactly: conv 32/64/128 (strides 1, 2, 2), dense 128, mirrored decoder."""


@register_model("conv2d_wide")
class WideConv2dGridVAE(CategoricalGridVAE):
    """A stronger grid VAE: twice the channels, a 512-wide dense layer and BatchNorm."""

    default_options = dict(channels=(64, 128, 256), hidden=512, decoder_channels=(128, 64), norm=True)


@register_model("conv2d_broadcast")
class BroadcastGridVAE(CategoricalGridVAE):
    """The seed's encoder with a spatial-broadcast decoder: z tiled over 16×16 with coordinates,
    then stride-1 3×3 convolutions."""

    default_options = dict(decoder_channels=(64, 64, 64, 64))

    def build_decoder(self, latent_dim, grid_size, hidden, decoder_channels, norm):
        return SpatialBroadcastDecoder2d(latent_dim, grid_size, decoder_channels, self.num_colors, norm)
