"""Grid VAE with an autoregressive decoder: each cell is predicted from z and the cells decoded before it.

A factorised decoder predicts all 256 cells of a grid independently given z, so every detail has to
pass through the latent code. Here the decoder is split in two:

- a *canvas* network maps z to a feature map (C, 16, 16) (the seed's dense + transposed-conv
  decoder with C output channels instead of 10 logits);
- a *local head* predicts cell (r, c) from the canvas features at (r, c) and a causal window of the
  already-decoded cells: the k×k neighbourhood restricted to the rows above and the cells to the
  left in the same row (a PixelCNN type-A mask), followed by two 1×1 layers.

Training is teacher-forced (one pass, the true grid as context), so the reconstruction term is the
exact log-likelihood log p(x | z) of an autoregressive model in raster order. Decoding from z alone
(``decode``) is free-running and greedy: cells are decided one at a time in raster order, each one
from the cells decided before it; the target is never read. Because the head sees only its window,
one decoding step costs a (batch, 10·k²) × (10·k², C) product; the canvas is computed once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models import register_model
from vaekit.models.base import GaussianVAE, LossTerms
from vaekit.models.conv2d import CategoricalCells
from vaekit.models.layers import ConvDecoder2d, ConvEncoder2d
from vaekit.training.losses import gaussian_kl_per_dim


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
        channels: width C of the canvas features and of the hidden 1×1 layers.
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
        self.mlp = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                 nn.Conv2d(channels, num_colors, 1))

    def masked_weight(self) -> torch.Tensor:
        return self.context.weight * self.mask

    def forward(self, canvas: torch.Tensor, context_one_hot: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, colours, H, W) with ``context_one_hot`` (B, colours, H, W) as the
        decoded cells; the mask keeps each cell from seeing itself or anything after it."""
        pad = self.kernel_size // 2
        seen = F.conv2d(context_one_hot, self.masked_weight(), self.context.bias, padding=pad)
        return self.mlp(canvas + seen)

    @torch.no_grad()
    def generate(self, canvas: torch.Tensor) -> torch.Tensor:
        """Greedy free-running decoding in raster order; returns the logits each cell was chosen from.

        Only the causal window of the cell being decided is read from the canvas of decisions so far.
        """
        batch, _, height, width = canvas.shape
        k, pad = self.kernel_size, self.kernel_size // 2
        weight = self.masked_weight().reshape(self.context.out_channels, -1).t()  # (colours·k², C)
        bias = self.context.bias
        layers = [m for m in self.mlp if isinstance(m, nn.Conv2d)]
        hidden_w, hidden_b = layers[0].weight.flatten(1).t(), layers[0].bias
        out_w, out_b = layers[1].weight.flatten(1).t(), layers[1].bias
        decided = canvas.new_zeros(batch, self.num_colors, height + 2 * pad, width + 2 * pad)
        logits = canvas.new_empty(batch, self.num_colors, height, width)
        eye = torch.eye(self.num_colors, dtype=canvas.dtype, device=canvas.device)
        for row in range(height):
            for col in range(width):
                window = decided[:, :, row : row + k, col : col + k].reshape(batch, -1)
                h = torch.relu(canvas[:, :, row, col] + window @ weight + bias)
                h = torch.relu(h @ hidden_w + hidden_b)
                cell_logits = h @ out_w + out_b
                logits[:, :, row, col] = cell_logits
                decided[:, :, row + pad, col + pad] = eye[cell_logits.argmax(dim=1)]
        return logits


class AutoregressiveGridVAE(CategoricalCells, GaussianVAE):
    """Grids (batch, H, W) uint8 of integer colours; conv encoder, canvas + causal-head decoder.

    Args:
        latent_dim: d.
        num_colors: colours per cell.
        grid_size: side of the square grid.
        channels, strides, hidden, decoder_channels, norm: the conv encoder and canvas network, as in
            the factorised grid VAE.
        head_channels: width C of the canvas features and of the causal head.
        kernel_size: side of the causal window (odd); 5 reads two rows up and two cells left.
        context_noise: training only: the fraction of context cells replaced by a random colour, so
            that the head learns to rely on z where its own earlier decisions may be wrong
            (free-running decoding feeds it its own decisions, not the truth).
    """

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
        head_channels: int = 64,
        kernel_size: int = 5,
        context_noise: float = 0.0,
        canvas_loss_weight: float = 0.0,
        own_context: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= context_noise < 1.0:
            raise ValueError(f"context_noise must be in [0, 1), got {context_noise}")
        self.latent_dim = latent_dim
        self.num_colors = num_colors
        self.context_noise = context_noise
        self.canvas_loss_weight = canvas_loss_weight
        self.own_context = own_context
        self.encoder = ConvEncoder2d(num_colors, channels, strides, grid_size, hidden, latent_dim, norm)
        self.decoder = nn.ModuleDict({
            "canvas": ConvDecoder2d(latent_dim, hidden, self.encoder.feature_shape, decoder_channels,
                                    head_channels, norm),
            "head": CausalGridHead(num_colors, head_channels, kernel_size),
        })
        self.canvas_logits = nn.Conv2d(head_channels, num_colors, 1) if canvas_loss_weight > 0 else None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Free-running greedy logits from z alone (no target is read)."""
        canvas = self.decoder["canvas"](z)
        return self.decoder["head"].generate(canvas)

    def decode_teacher_forced(self, z: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Logits of every cell given z and the true cells before it: the likelihood's factors."""
        context = self.prepare(self._noisy_context(batch) if self.training else batch)
        return self.decoder["head"](self.decoder["canvas"](z), context)

    def _noisy_context(self, batch: torch.Tensor) -> torch.Tensor:
        if self.context_noise <= 0:
            return batch
        replace = torch.rand(batch.shape, device=batch.device) < self.context_noise
        random_colors = torch.randint_like(batch, self.num_colors)
        return torch.where(replace, random_colors, batch)

    def loss_terms(self, batch: torch.Tensor, reduction: str = "sum", sample: bool = True) -> LossTerms:
        mu, sigma = self.encode(batch)
        z = mu + sigma * torch.randn_like(mu) if sample else mu
        canvas = self.decoder["canvas"](z)
        context_grid = batch
        if self.training and self.own_context > 0:
            own = self.decoder["head"].generate(canvas.detach()).argmax(1).to(batch.dtype)
            use_own = torch.rand(batch.shape[0], 1, 1, device=batch.device) < self.own_context
            context_grid = torch.where(use_own, own, batch)
        context = self.prepare(self._noisy_context(context_grid) if self.training else batch)
        output = self.decoder["head"](canvas, context)
        recon = self.reconstruction_nll(output, batch, reduction)
        terms = LossTerms(recon=recon, kl_per_dim=gaussian_kl_per_dim(mu, sigma), output=output, mu=mu)
        terms.canvas_nll = (self.reconstruction_nll(self.canvas_logits(canvas), batch, reduction)
                            if self.canvas_logits is not None else None)
        return terms

    def objective(self, batch, beta, loss_cfg):
        """The β-VAE objective, plus ``canvas_loss_weight`` × the NLL of a factorised prediction
        from the canvas alone: an auxiliary term (not part of the ELBO) that makes the canvas carry
        every cell's colour, so the head has more than its neighbours to go on when decoding freely."""
        loss, terms, logs = super().objective(batch, beta, loss_cfg)
        if terms.canvas_nll is not None:
            loss = loss + self.canvas_loss_weight * terms.canvas_nll.mean()
            logs = {**logs, "canvas_nll": terms.canvas_nll.detach().mean()}
        return loss, terms, logs


@register_model("conv2d_ar")
class Conv2dAutoregressiveGridVAE(AutoregressiveGridVAE):
    """Seed encoder; decoder = seed canvas network + causal 5×5 head, decoded cell by cell from z."""
