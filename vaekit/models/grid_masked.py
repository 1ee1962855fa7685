"""Grid VAE with an iterative masked-refinement decoder (MaskGIT-style), conditioned on z.

The decoder fills in a grid in a fixed number of parallel steps. A *canvas* network maps z to a
feature map (C, 16, 16); a *refiner* of 3×3 residual convolutions reads the canvas and the cells
decided so far (one-hot, plus a channel marking the cells still undecided) and predicts every
undecided cell. Unlike a raster-order decoder it sees decided cells on every side.

Training: per grid, m cells (m uniform in 1..H·W) are hidden at random, the others are shown as
they are, and the loss is the cross-entropy of the hidden cells scaled by H·W / m. Averaged over m
and the hidden sets this is the order-agnostic autoregressive bound on −log p(x | z) (Hoogeboom et
al., 2022), so the ELBO stays a bound; one draw per grid is an unbiased estimate of it.

Decoding from z alone is free-running (the target is never read): all cells start undecided; at
each of ``decode_steps`` steps the refiner predicts every undecided cell and the most confident ones
are fixed, following a cosine schedule, until all are decided. The first step sees only z, so it is
a factorised prediction; later steps add the context of the cells decided before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models import register_model
from vaekit.models.base import GaussianVAE, LossTerms
from vaekit.models.conv2d import CategoricalCells
from vaekit.models.layers import ConvDecoder2d, ConvEncoder2d
from vaekit.training.losses import gaussian_kl_per_dim


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MaskedRefiner(nn.Module):
    """Logits of every cell from canvas features and the decided cells (one-hot; zero where undecided).

    Args:
        num_colors: categories per cell.
        channels: width C of the canvas features and of the residual blocks.
        blocks: residual blocks of two 3×3 convolutions each (receptive field grows by 4 per block).
    """

    def __init__(self, num_colors: int, channels: int, blocks: int):
        super().__init__()
        self.num_colors = num_colors
        self.inputs = nn.Conv2d(num_colors + 1, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, num_colors, 1))

    def forward(self, canvas: torch.Tensor, grid: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """``grid`` (B, H, W) integer colours, ``hidden`` (B, H, W) bool: the cells not shown."""
        shown = F.one_hot(grid.long(), self.num_colors).permute(0, 3, 1, 2).to(canvas.dtype)
        shown = shown * (~hidden).unsqueeze(1)
        x = self.inputs(torch.cat([shown, hidden.unsqueeze(1).to(canvas.dtype)], dim=1))
        return self.out(self.blocks(canvas + x))


HIDE_SCHEDULES = {
    "uniform": lambda n, cells, device: torch.randint(1, cells + 1, (n,), device=device),
    "cosine": lambda n, cells, device: torch.ceil(
        cells * torch.cos(math.pi / 2 * torch.rand(n, device=device))).clamp(1, cells).long(),
}


def cells_decided_after(step: int, steps: int, cells: int) -> int:
    """Cells decided after ``step`` of ``steps`` (cosine schedule: few at first, all at the end)."""
    return cells - math.floor(cells * math.cos(math.pi / 2 * step / steps))


class MaskedRefinementGridVAE(CategoricalCells, GaussianVAE):
    """Grids (batch, H, W) uint8 of integer colours; conv encoder, canvas + masked-refiner decoder.

    Args:
        latent_dim: d.
        num_colors: colours per cell.
        grid_size: side of the square grid.
        channels, strides, hidden, decoder_channels, norm: the conv encoder and canvas network, as in
            the factorised grid VAE.
        refiner_channels: width C of the canvas features and the refiner.
        refiner_blocks: residual blocks in the refiner.
        decode_steps: parallel steps of free-running decoding.
        hide_schedule: how many cells training hides per grid: 'uniform' (m uniform in 1..H·W, which
            makes the recon term an unbiased estimate of the likelihood bound) or 'cosine' (MaskGIT's
            m = ⌈H·W·cos(π/2·u)⌉, mostly many cells hidden, so the decoder leans on z more; the
            training loss is then a reweighted bound). Evaluation always uses 'uniform'.
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
        refiner_channels: int = 64,
        refiner_blocks: int = 2,
        decode_steps: int = 8,
        hide_schedule: str = "uniform",
    ):
        super().__init__()
        if decode_steps < 1:
            raise ValueError(f"decode_steps must be at least 1, got {decode_steps}")
        self.latent_dim = latent_dim
        self.num_colors = num_colors
        if hide_schedule not in HIDE_SCHEDULES:
            raise ValueError(f"hide_schedule must be one of {', '.join(HIDE_SCHEDULES)}, got {hide_schedule!r}")
        self.decode_steps = decode_steps
        self.hide_schedule = hide_schedule
        self.encoder = ConvEncoder2d(num_colors, channels, strides, grid_size, hidden, latent_dim, norm)
        self.decoder = nn.ModuleDict({
            "canvas": ConvDecoder2d(latent_dim, hidden, self.encoder.feature_shape, decoder_channels,
                                    refiner_channels, norm),
            "refiner": MaskedRefiner(num_colors, refiner_channels, refiner_blocks),
        })

    def loss_terms(self, batch: torch.Tensor, reduction: str = "sum", sample: bool = True) -> LossTerms:
        mu, sigma = self.encode(batch)
        z = mu + sigma * torch.randn_like(mu) if sample else mu
        hidden = self.random_hidden_cells(batch, self.hide_schedule if self.training else "uniform")
        output = self.decoder["refiner"](self.decoder["canvas"](z), batch, hidden)
        per_cell = F.cross_entropy(output.float(), batch.long(), reduction="none") * hidden
        cells = hidden[0].numel()
        hidden_count = hidden.flatten(1).sum(1)
        recon = per_cell.flatten(1).sum(1) * (cells / hidden_count)  # the order-agnostic bound
        if reduction == "mean":
            recon = recon / cells
        return LossTerms(recon=recon, kl_per_dim=gaussian_kl_per_dim(mu, sigma), output=output, mu=mu)

    @staticmethod
    def random_hidden_cells(batch: torch.Tensor, schedule: str = "uniform") -> torch.Tensor:
        """Per grid, m cells hidden at random places, m drawn by ``schedule`` (see the class)."""
        flat = batch.flatten(1)
        cells = flat.shape[1]
        count = HIDE_SCHEDULES[schedule](flat.shape[0], cells, batch.device).unsqueeze(1)
        rank = torch.rand(flat.shape, device=batch.device).argsort(dim=1).argsort(dim=1)
        return (rank < count).view_as(batch)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Free-running decoding from z alone; returns the logits each cell was decided from."""
        canvas = self.decoder["canvas"](z)
        batch, _, height, width = canvas.shape
        cells = height * width
        grid = torch.zeros(batch, height, width, dtype=torch.long, device=z.device)
        hidden = torch.ones(batch, height, width, dtype=torch.bool, device=z.device)
        logits = canvas.new_zeros(batch, self.num_colors, height, width)
        for step in range(1, self.decode_steps + 1):
            step_logits = self.decoder["refiner"](canvas, grid, hidden)
            confidence, colour = step_logits.float().softmax(dim=1).max(dim=1)
            confidence = confidence.masked_fill(~hidden, -1.0).flatten(1)
            fix_count = cells_decided_after(step, self.decode_steps, cells) - (~hidden).flatten(1).sum(1)
            rank = confidence.argsort(dim=1, descending=True).argsort(dim=1)
            fix = (rank < fix_count.unsqueeze(1)).view_as(hidden)
            grid = torch.where(fix, colour, grid)
            logits = torch.where(fix.unsqueeze(1), step_logits.to(logits.dtype), logits)
            hidden = hidden & ~fix
        return logits


@register_model("conv2d_masked")
class Conv2dMaskedRefinementGridVAE(MaskedRefinementGridVAE):
    """Seed encoder; decoder = seed canvas network + masked refiner, decoded from z in 8 parallel steps."""
