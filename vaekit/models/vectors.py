"""MLP VAE for vectors (the arrays domain): (D,) standardised floats, a Gaussian decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.data_formats import VECTORS
from vaekit.models import register_model
from vaekit.models.base import GaussianVAE
from vaekit.models.layers import GaussianHead, mlp
from vaekit.training.losses import reduce_elements


@register_model("mlp_vectors")
class VectorVAE(GaussianVAE):
    """Dense layers down to (μ, σ), the same widths reversed back up to one mean per feature.

    The likelihood is a Gaussian per feature. With ``learn_sigma`` (the default) each feature has
    its own trained σ, starting at ``sigma``: a feature the latent code cannot explain keeps a wide
    σ instead of pulling every code towards it. The arrays domain standardises the features, so
    σ = 1 means "no better than the training mean".
    """
    tiny_options = {"features": 5, "hidden": [8]}

    data_format = VECTORS

    def __init__(self, latent_dim: int = 8, features: int = 16, hidden: tuple = (128, 128), sigma: float = 1.0,
                 learn_sigma: bool = True):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma {sigma}: expected a positive standard deviation")
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(mlp([features, *hidden]), nn.ReLU(), GaussianHead(hidden[-1], latent_dim))
        self.decoder = mlp([latent_dim, *reversed(hidden), features])
        log_sigma = torch.full((features,), math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def prepare(self, batch):
        return batch.float()

    def reconstruction_nll(self, output, batch, reduction):
        log_sigma = self.log_sigma.clamp(min=math.log(1e-3))
        error = (output - self.prepare(batch)) / log_sigma.exp()
        return reduce_elements(0.5 * error.pow(2) + log_sigma + 0.5 * math.log(2 * math.pi), reduction)

    def reconstruct(self, output):
        return output
