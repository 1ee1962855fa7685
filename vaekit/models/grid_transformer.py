"""Transformer grid VAE: every cell a token with its colour and its row and column, attended to jointly.

A conv VAE predicts each cell from an upsampled 2×2 or 4×4 map, so cells cannot agree on a line, a
border or a repeated pattern. Here (in the manner of the Latent Program Network's decoder and
ViTARC's 2D positions):

- the **encoder** embeds each of the H·W cells as colour + row + column (learned embeddings), runs
  pre-norm transformer blocks over the H·W tokens and pools them (``pool``: their mean, or a CLS
  token) into μ and σ of a d-vector (the zoo's Gaussian head);
- the **decoder** expands z into ``memory_tokens`` tokens; H·W position queries (row + column
  embeddings) run pre-norm blocks of self-attention among themselves and cross-attention to the
  memory, and a linear head gives every cell's logits in one pass (factorised given z).

With ``patch`` p > 1 a token is a p×p patch of cells rather than one cell (as a ViT's): its
embedding is the sum of its cells' colour embeddings, one table per place in the patch, and the
decoder's head gives the p·p cells' logits of its patch. Attention then runs over (H/p)·(W/p)
tokens: p⁴ times fewer pairs, p² times fewer tokens through every other layer. p = 1 is the
cell-token model itself, parameter for parameter.

Attention is ``torch.nn.functional.scaled_dot_product_attention`` (vaekit.models.attention).
"""

from __future__ import annotations

import torch
from torch import nn

from vaekit.models import register_model
from vaekit.models.attention import TransformerBlock
from vaekit.models.base import GaussianVAE
from vaekit.models.conv2d import CategoricalCells
from vaekit.models.layers import GaussianHead

EMBEDDING_STD = 0.02  # GPT-2's initialisation of token and position embeddings


class GridPositions(nn.Module):
    """Learned row and column embeddings, summed into one (H·W, width) table in raster order."""

    def __init__(self, grid_size: int, width: int):
        super().__init__()
        self.rows = nn.Parameter(torch.randn(grid_size, 1, width) * EMBEDDING_STD)
        self.cols = nn.Parameter(torch.randn(1, grid_size, width) * EMBEDDING_STD)

    def forward(self) -> torch.Tensor:
        return (self.rows + self.cols).flatten(0, 1)


def mean_pool(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.mean(dim=1)


def cls_pool(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, 0]


# pool name -> (reads the pooled vector from the encoder's tokens, prepends a learned CLS token)
POOLS = {"mean": (mean_pool, False), "cls": (cls_pool, True)}


def patch_place(grid_size: int, patch: int) -> torch.Tensor:
    """(H, W) index of each cell's place inside its p×p patch, in raster order (all 0 for p = 1)."""
    place = torch.arange(grid_size) % patch
    return place[:, None] * patch + place[None, :]


def to_patches(cells: torch.Tensor, patch: int) -> torch.Tensor:
    """(batch, H, W, ...) -> (batch, H/p · W/p, p, p, ...): the cells of each patch, patches in raster order."""
    b, h, w = cells.shape[:3]
    rest = cells.shape[3:]
    patches = cells.reshape(b, h // patch, patch, w // patch, patch, *rest).transpose(2, 3)
    return patches.reshape(b, (h // patch) * (w // patch), patch, patch, *rest)


def from_patches(patches: torch.Tensor, grid_size: int) -> torch.Tensor:
    """The inverse of ``to_patches``: (batch, H/p · W/p, p, p, ...) -> (batch, H, W, ...)."""
    b, _, patch = patches.shape[:3]
    rest = patches.shape[4:]
    side = grid_size // patch
    cells = patches.reshape(b, side, side, patch, patch, *rest).transpose(2, 3)
    return cells.reshape(b, grid_size, grid_size, *rest)


class TransformerGridEncoder(nn.Module):
    """(batch, H, W) colour indices -> (μ, σ) of a d-vector."""

    def __init__(self, num_colors, grid_size, patch, width, heads, depth, mlp_ratio, pool, latent_dim):
        super().__init__()
        self.patch = patch
        # one colour table per place in the patch, stacked: a cell's row is its colour + C · its place
        self.colours = nn.Embedding(num_colors * patch * patch, width)
        nn.init.normal_(self.colours.weight, std=EMBEDDING_STD)
        self.register_buffer("place", patch_place(grid_size, patch) * num_colors, persistent=False)
        self.positions = GridPositions(grid_size // patch, width)
        self.pool, prepends_cls = POOLS[pool]
        self.cls = nn.Parameter(torch.randn(1, 1, width) * EMBEDDING_STD) if prepends_cls else None
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = GaussianHead(width, latent_dim)

    def forward(self, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.colours(cells + self.place)  # (batch, H, W, width)
        tokens = to_patches(embedded, self.patch).sum(dim=(2, 3)) + self.positions()
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.pool(self.norm(tokens)))


class TransformerGridDecoder(nn.Module):
    """z -> logits (batch, colours, H, W): position queries attend to each other and to z's memory tokens."""

    def __init__(self, num_colors, grid_size, patch, width, heads, depth, mlp_ratio, memory_tokens, latent_dim):
        super().__init__()
        self.grid_size, self.patch, self.width, self.memory_tokens = grid_size, patch, width, memory_tokens
        self.memory = nn.Linear(latent_dim, memory_tokens * width)
        self.queries = GridPositions(grid_size // patch, width)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio, cross=True) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.logits = nn.Linear(width, num_colors * patch * patch)  # the patch's cells in raster order

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        memory = self.memory(z).view(z.shape[0], self.memory_tokens, self.width)
        tokens = self.queries().expand(z.shape[0], -1, -1)
        for block in self.blocks:
            tokens = block(tokens, memory)
        logits = self.logits(self.norm(tokens)).view(*tokens.shape[:2], self.patch, self.patch, -1)
        return from_patches(logits, self.grid_size).permute(0, 3, 1, 2)


def check_transformer_options(width, heads, encoder_depth, decoder_depth, memory_tokens, mlp_ratio, pool,
                              grid_size, patch) -> None:
    """Raise ValueError naming the first option out of range (create_model turns it into exit 2)."""
    for key, value in (("width", width), ("heads", heads), ("encoder_depth", encoder_depth),
                       ("decoder_depth", decoder_depth), ("memory_tokens", memory_tokens),
                       ("mlp_ratio", mlp_ratio), ("grid_size", grid_size), ("patch", patch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"model.options.{key} {value!r}: expected an integer ≥ 1")
    if width % heads:
        raise ValueError(f"model.options.width {width}: must be a multiple of model.options.heads ({heads})")
    if grid_size % patch:
        raise ValueError(f"model.options.patch {patch}: must divide model.options.grid_size ({grid_size})")
    if pool not in POOLS:
        raise ValueError(f"model.options.pool {pool!r}: expected one of {', '.join(POOLS)}")


class TransformerGridVAE(CategoricalCells, GaussianVAE):
    """Grids of integer colours (batch, H, W) uint8 through transformers over their cells: the family
    of the transformer grid VAEs, whose constructor holds their arguments.

    Args:
        latent_dim: d.
        num_colors: colours per cell.
        grid_size: side of the square grid; must be the corpus's (16 for ARC).
        patch: side of the square patch of cells one token holds (must divide ``grid_size``; 1: a token per cell).
        width: token width of encoder and decoder.
        heads: attention heads (``width`` must be a multiple).
        encoder_depth, decoder_depth: transformer blocks of each (≥ 1).
        memory_tokens: tokens z is expanded into for the decoder's cross-attention.
        mlp_ratio: each block's MLP width over ``width``.
        pool: how the encoder's tokens become one vector: ``mean`` or ``cls``.
        recon_loss, focal_gamma, focal_alpha: the per-cell training loss (vaekit.models.cell_losses).
    """

    tiny_options = {"width": 8, "heads": 2, "encoder_depth": 1, "decoder_depth": 1, "memory_tokens": 2,
                    "mlp_ratio": 1}

    def __init__(
        self,
        latent_dim: int = 10,
        num_colors: int = 10,
        grid_size: int = 16,
        patch: int = 1,
        width: int = 64,
        heads: int = 2,  # head width 32: CPU bf16 attention is ~5× slower at 16 (docs/domains/arc.md)
        encoder_depth: int = 2,
        decoder_depth: int = 2,
        memory_tokens: int = 8,
        mlp_ratio: int = 4,
        pool: str = "mean",
        recon_loss: str = "cross_entropy",
        focal_gamma: float | None = None,
        focal_alpha: float | list | None = None,
    ):
        super().__init__()
        check_transformer_options(width, heads, encoder_depth, decoder_depth, memory_tokens, mlp_ratio, pool,
                                  grid_size, patch)
        self.latent_dim = latent_dim
        self.num_colors = num_colors
        self.grid_size = grid_size
        self.use_cell_loss(recon_loss, focal_gamma, focal_alpha)
        self.encoder = TransformerGridEncoder(num_colors, grid_size, patch, width, heads, encoder_depth, mlp_ratio,
                                              pool, latent_dim)
        self.decoder = TransformerGridDecoder(num_colors, grid_size, patch, width, heads, decoder_depth, mlp_ratio,
                                              memory_tokens, latent_dim)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """The colour indices themselves (the encoder embeds them), once their side is checked."""
        if tuple(batch.shape[-2:]) != (self.grid_size, self.grid_size):
            raise ValueError(f"model.options.grid_size {self.grid_size}: the grids are "
                             f"{batch.shape[-2]}×{batch.shape[-1]}; set it to the corpus's side")
        return batch.long()


@register_model("transformer_grid")
class TransformerGridVAE64(TransformerGridVAE):
    """Transformer over the 256 cells: width 64, 2 heads, 2 encoder + 2 decoder blocks, 8 memory tokens."""


@register_model("transformer_grid_wide")
class WideTransformerGridVAE(TransformerGridVAE):
    """The transformer grid VAE at width 128 (2 heads of 64): about three times the FLOPs of transformer_grid."""

    default_options = dict(width=128)


@register_model("transformer_grid_cls")
class ClsTransformerGridVAE(TransformerGridVAE):
    """transformer_grid with a CLS token read out for (μ, σ) in place of the tokens' mean."""

    default_options = dict(pool="cls")


@register_model("transformer_grid_patch2")
class PatchTransformerGridVAE(TransformerGridVAE):
    """The wide transformer grid VAE over 2×2 patches of cells (64 tokens): about a third of its time per epoch."""

    default_options = {**WideTransformerGridVAE.default_options, "patch": 2}
