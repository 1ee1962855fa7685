"""Grid VAE with an autoregressive decoder: each cell is predicted from z and the cells decoded before it.

A factorised decoder predicts all 256 cells of a grid independently given z. Here the decoder is
split in two:

- a *canvas* network maps z to a feature map (C, 16, 16) (the seed's dense + transposed-conv
  decoder with C output channels instead of 10 logits);
- a *causal head* predicts cell (r, c) from the canvas features at (r, c) and a causal window of the
  cells before it in raster order: the k×k neighbourhood restricted to the rows above and the cells
  to the left in the same row (a PixelCNN type-A mask), then two 1×1 layers.

Training is teacher-forced (one pass, the true grid as context), so the reconstruction term is the
exact log-likelihood log p(x | z) of an autoregressive model in raster order, and the ELBO and the
IWAE bound are exact bounds. Decoding from z alone (``decode``) is free-running and greedy: cells are
decided one at a time in raster order, each from the cells decided before it; no target is read.
The canvas is computed once; each of the 256 steps costs a (batch, 10·k²) × (10·k², C) product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models import register_model
from vaekit.models.base import at_least_fp32
from vaekit.models.conv2d import CategoricalGridVAE
from vaekit.models.layers import ConvDecoder2d


def causal_mask(kernel_size: int) -> torch.Tensor:
    """(k, k) mask of the cells a k×k window may read before its centre in raster order: every row
    above the centre, and the cells left of the centre in its own row (the centre itself excluded)."""
    mask = torch.zeros(kernel_size, kernel_size)
    centre = kernel_size // 2
    mask[:centre, :] = 1
    mask[centre, :centre] = 1
    return mask


class CausalGridHead(nn.Module):
    """Logits of every cell from canvas features and the causal window of the one-hot grid.

    Args:
        num_colors: categories per cell.
        channels: width C of the canvas features and of the hidden 1×1 layer.
        kernel_size: odd side k of the causal window.
    """

    def __init__(self, num_colors: int, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and at least 3, got {kernel_size}")
        self.num_colors = num_colors
        self.kernel_size = kernel_size
        self.context = nn.Conv2d(num_colors, channels, kernel_size, padding=kernel_size // 2)
        self.register_buffer("mask", causal_mask(kernel_size), persistent=False)
        self.hidden = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, num_colors, 1)

    def masked_weight(self) -> torch.Tensor:
        return self.context.weight * self.mask

    def forward(self, canvas: torch.Tensor, context_one_hot: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, colours, H, W) with ``context_one_hot`` as the decided cells;
        the mask keeps each cell from seeing itself or any cell after it."""
        seen = F.conv2d(context_one_hot, self.masked_weight(), self.context.bias, padding=self.kernel_size // 2)
        h = torch.relu(self.hidden(torch.relu(canvas + seen)))
        return self.out(h)

    @torch.no_grad()
    def generate(self, canvas: torch.Tensor) -> torch.Tensor:
        """Greedy free-running decoding in raster order; returns the logits each cell was chosen from.

        The same arithmetic as ``forward`` restricted to one cell: its causal window is read from the
        cells decided so far (one-hot, zero outside the grid, as the convolution's padding).
        """
        batch, _, height, width = canvas.shape
        k, pad = self.kernel_size, self.kernel_size // 2
        context_w = self.masked_weight().to(canvas.dtype).reshape(self.context.out_channels, -1).t()
        hidden_w = self.hidden.weight.to(canvas.dtype).flatten(1).t()
        out_w = self.out.weight.to(canvas.dtype).flatten(1).t()
        context_b, hidden_b, out_b = (b.to(canvas.dtype) for b in (self.context.bias, self.hidden.bias, self.out.bias))
        decided = canvas.new_zeros(batch, self.num_colors, height + 2 * pad, width + 2 * pad)
        logits = canvas.new_empty(batch, self.num_colors, height, width)
        one_hot = torch.eye(self.num_colors, dtype=canvas.dtype, device=canvas.device)
        for row in range(height):
            for col in range(width):
                window = decided[:, :, row : row + k, col : col + k].reshape(batch, -1)
                h = torch.relu(canvas[:, :, row, col] + window @ context_w + context_b)
                cell_logits = torch.relu(h @ hidden_w + hidden_b) @ out_w + out_b
                logits[:, :, row, col] = cell_logits
                decided[:, :, row + pad, col + pad] = one_hot[cell_logits.argmax(dim=1)]
        return logits


@register_model("conv2d_ar")
class AutoregressiveGridVAE(CategoricalGridVAE):
    """Seed encoder; decoder = seed canvas network + causal 5×5 head, decoded cell by cell from z.

    Takes the grid VAE's options (``CategoricalGridVAE``; its ``decoder_channels`` shape the canvas
    network), and:

    Args:
        head_channels: width C of the canvas features and of the causal head.
        kernel_size: side of the causal window (odd); 5 reads two rows up and two cells left.
    """
    tiny_options = {**CategoricalGridVAE.tiny_options, "head_channels": 4}

    prefers_channels_last = False  # measured for the factorised decoders only

    def __init__(self, latent_dim: int = 10, head_channels: int = 64, kernel_size: int = 5, **grid_options):
        self.head_channels, self.kernel_size = head_channels, kernel_size  # read by build_decoder
        super().__init__(latent_dim, **grid_options)

    def build_decoder(self, latent_dim, grid_size, hidden, decoder_channels, norm):
        return nn.ModuleDict({
            "canvas": ConvDecoder2d(latent_dim, hidden, self.encoder.feature_shape, decoder_channels,
                                    self.head_channels, norm),
            "head": CausalGridHead(self.num_colors, self.head_channels, self.kernel_size),
        })

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Free-running greedy logits from z alone (no target is read)."""
        return at_least_fp32(self.decoder["head"].generate(self.decoder["canvas"](z)))

    def decode_for_likelihood(self, z: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits: every cell given z and the true cells before it, the factors of
        the exact log p(x | z)."""
        return at_least_fp32(self.decoder["head"](self.decoder["canvas"](z), self.prepare(batch)))
