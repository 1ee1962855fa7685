"""VAEs over ternary operations: 9 positions, each a categorical over {-1, 0, 1}.

The layers, the stored format and the likelihood they share, and ``ternary_mlp``, the
single-pathway baseline. The dual-pathway model of the seed report is in ``ternary_dual.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.data_formats import TERNARY_TABLE
from vaekit.models import register_model
from vaekit.models.base import GaussianVAE
from vaekit.models.layers import GaussianHead, mlp
from vaekit.training.losses import reduce_elements

POSITIONS, VALUES = 9, 3


class ResidualBlock(nn.Module):
    """x + W2·ReLU(W1·LayerNorm(x)); without ``norm``, x + W2·ReLU(W1·x)."""

    def __init__(self, width: int, norm: bool = True):
        super().__init__()
        layers = [nn.LayerNorm(width)] if norm else []
        self.body = nn.Sequential(*layers, nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.body(x)


class TernaryEncoder(nn.Module):
    """Input (one-hot 9×3 = 27, or the 9 values) -> hidden layers (optionally residual) -> (μ, σ)."""

    def __init__(self, hidden: tuple, latent_dim: int, residual_blocks: int = 0, input_dim: int = POSITIONS * VALUES,
                 residual_norm: bool = True):
        super().__init__()
        width = hidden[-1]
        self.body = nn.Sequential(mlp([input_dim, *hidden]), nn.ReLU(),
                                  *[ResidualBlock(width, residual_norm) for _ in range(residual_blocks)])
        self.head = GaussianHead(width, latent_dim)

    def forward(self, x):
        return self.head(self.body(x))


class TernaryDecoder(nn.Module):
    """z -> hidden layers (optionally residual) -> logits (batch, 9, 3)."""

    def __init__(self, hidden: tuple, latent_dim: int, residual_blocks: int = 0, residual_norm: bool = True):
        super().__init__()
        width = hidden[-1]
        self.body = nn.Sequential(mlp([latent_dim, *hidden]), nn.ReLU(),
                                  *[ResidualBlock(width, residual_norm) for _ in range(residual_blocks)])
        self.out = nn.Linear(width, POSITIONS * VALUES)

    def forward(self, z):
        return self.out(self.body(z)).view(-1, POSITIONS, VALUES)


class TernaryCodec:
    """Stored format: (batch, 9) int8 in {-1, 0, 1}; class index = value + 1.

    Also what the ternary domain's coverage metrics need (protocols.PathwayModel): a single pathway,
    named '', whose prior draws have the latent size.
    """

    data_format = TERNARY_TABLE
    pathways: tuple[str, ...] = ("",)
    data_bin_width = 1.0  # categorical: log p(x|z) is a log-probability of the stored operation

    def prepare(self, batch):
        return F.one_hot(batch.long() + 1, VALUES).flatten(1).float()

    def reconstruct(self, output):
        return (output.argmax(dim=-1) - 1).to(torch.int8)

    @property
    def prior_dim(self) -> int:
        """Dimension of one prior draw (per pathway for multi-pathway models)."""
        return self.latent_dim

    def decode_prior(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a batch of prior draws of size ``prior_dim``."""
        return self.decode(z)

    def pathway_predictions(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stored-format reconstructions per pathway, keyed by the names in ``pathways``."""
        return {"": self.reconstruct(output)}


# How the encoders see an operation: ``one_hot`` (9×3 = 27 inputs) or ``values`` (the 9 values
# in {-1, 0, 1} as numbers, the report's "input dimension 9").
ENCODER_INPUTS = {
    "one_hot": (POSITIONS * VALUES, lambda batch: F.one_hot(batch.long() + 1, VALUES).flatten(1).float()),
    "values": (POSITIONS, lambda batch: batch.float()),
}


def _categorical_nll(logits, batch, reduction, temperature: float = 1.0):
    per_position = F.cross_entropy((logits / temperature).transpose(1, 2), batch.long() + 1, reduction="none")
    return reduce_elements(per_position, reduction)


@register_model("ternary_mlp")
class TernaryMLPVAE(TernaryCodec, GaussianVAE):
    """Single-pathway MLP VAE over the 9 ternary positions: the baseline."""
    tiny_options = {"hidden": [8]}

    def __init__(self, latent_dim: int = 16, hidden: tuple = (256, 256)):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = TernaryEncoder(tuple(hidden), latent_dim)
        self.decoder = TernaryDecoder(tuple(reversed(hidden)), latent_dim)

    def reconstruction_nll(self, output, batch, reduction):
        return _categorical_nll(output, batch, reduction)
