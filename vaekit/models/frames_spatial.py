"""Conv2d VAE for frames with a spatial latent: z is a small map (e.g. 16×16×4 on 64×64 frames),
each cell coding its own patch, rather than one vector behind a dense bottleneck."""

from __future__ import annotations

import torch
from torch import nn

from vaekit.models import register_model
from vaekit.models.frames import FrameVAE, check_likelihood, frame_shape
from vaekit.models.layers import conv_block, halved, upsampling_stages


class SpatialGaussianHead(nn.Module):
    """1×1 convolutions -> (μ, σ) per cell and channel of the map, flattened to (batch, d)."""

    def __init__(self, in_channels: int, latent_channels: int):
        super().__init__()
        self.mu = nn.Conv2d(in_channels, latent_channels, kernel_size=1)
        self.sigma = nn.Sequential(nn.Conv2d(in_channels, latent_channels, kernel_size=1), nn.Softplus())

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(h).flatten(1), self.sigma(h).flatten(1)


class SpatialEncoder2d(nn.Module):
    """Stride-2 3×3 conv stages, one stride-1 3×3 conv, then the per-cell Gaussian head."""

    def __init__(self, in_channels: int, channels, latent_channels: int, norm: bool):
        super().__init__()
        layers: list[nn.Module] = []
        for out_ch in channels:
            layers += conv_block(in_channels, out_ch, 2, norm)
            in_channels = out_ch
        layers += conv_block(in_channels, in_channels, 1, norm)
        self.features = nn.Sequential(*layers)
        self.head = SpatialGaussianHead(in_channels, latent_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))


class SpatialDecoder2d(nn.Module):
    """z reshaped to its map -> 3×3 conv -> 4×4 stride-2 transposed convs -> 3×3 output conv."""

    def __init__(self, latent_shape: tuple[int, int, int], channels, out_channels: int, norm: bool,
                 output_size: tuple[int, int]):
        super().__init__()
        self.latent_shape, self.output_size = latent_shape, output_size
        layers = conv_block(latent_shape[0], channels[0], 1, norm) + upsampling_stages(channels[0], channels, norm)
        layers.append(nn.Conv2d(channels[-1], out_channels, kernel_size=3, padding=1))
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.upsample(z.view(-1, *self.latent_shape))
        return out[..., : self.output_size[0], : self.output_size[1]]


@register_model("conv2d_frames_spatial")
class SpatialFrameVAE(FrameVAE):
    """The frames VAE with a spatial latent map: no dense bottleneck, so each latent cell codes the
    patch above it and a one-pixel object (Breakout's ball) only has to survive its own cell.

    ``channels`` sets the stride-2 stages down to the map (64×64 with two stages: a 16×16 map), and
    ``latent_dim`` must be a multiple of the map's cells: d = 1024 on a 16×16 map is 4 channels per
    cell. The prior stays N(0, I) over all d numbers, so every β schedule, objective and metric reads
    z as the flat (batch, d) vector it is everywhere else; the likelihoods and the foreground weight
    are ``conv2d_frames``' own.
    """
    # four stages take 16×16 frames to a 1×1 map, so the tests' tiny models take any d
    tiny_options = {"frame_size": 16, "channels": [4, 4, 4, 4], "decoder_channels": [4, 4, 4, 4]}

    def __init__(
        self,
        latent_dim: int = 1024,
        in_channels: int = 3,
        frame_size: int | list = 64,
        channels: tuple = (32, 64),
        decoder_channels: tuple = (64, 32),
        likelihood: str = "gaussian",
        sigma: float = 0.05,
        learn_sigma: bool = False,
        norm: bool = True,
    ):
        nn.Module.__init__(self)
        check_likelihood(likelihood, sigma)
        height, width = frame_shape(frame_size)
        if len(decoder_channels) != len(channels):
            raise ValueError(f"decoder_channels {list(decoder_channels)}: expected as many stages as channels "
                             f"{list(channels)} ({len(channels)})")
        map_height, map_width = height, width
        for _ in channels:
            map_height, map_width = halved(map_height, 2), halved(map_width, 2)
        cells = map_height * map_width
        if latent_dim % cells:
            raise ValueError(f"latent_dim {latent_dim}: the {map_height}×{map_width} latent map of {height}×{width} "
                             f"frames needs a multiple of its {cells} cells")
        self.latent_dim, self.likelihood = latent_dim, likelihood
        latent_shape = (latent_dim // cells, map_height, map_width)
        self.encoder = SpatialEncoder2d(in_channels, channels, latent_shape[0], norm)
        self.decoder = SpatialDecoder2d(latent_shape, decoder_channels, in_channels, norm, (height, width))
        self.use_sigma(sigma, learn_sigma)
