"""disentanglement_lib's convolutional VAE for 64×64 frames, so that methods compare on the network
the published studies used (Locatello et al. 2019, ``conv_encoder`` and ``deconv_decoder``)."""

from __future__ import annotations

from torch import nn

from vaekit.models import register_model
from vaekit.models.frames import FrameVAE, check_likelihood, frame_shape
from vaekit.models.layers import GaussianHead

SIDE = 64  # four stride-2 stages: 64 -> 4


class DlibEncoder(nn.Module):
    """Four 4×4 stride-2 convolutions (32, 32, 64, 64) with ReLU, a dense layer of 256, the Gaussian head."""

    def __init__(self, in_channels: int, latent_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        for out_channels in (32, 32, 64, 64):
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            in_channels = out_channels
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 256), nn.ReLU())
        self.head = GaussianHead(256, latent_dim)

    def forward(self, x):
        return self.head(self.features(x))


class DlibDecoder(nn.Module):
    """Dense 256, dense 4×4×64, then four 4×4 stride-2 transposed convolutions (64, 32, 32, channels)."""

    def __init__(self, latent_dim: int, out_channels: int):
        super().__init__()
        self.dense = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 64 * 4 * 4), nn.ReLU())
        layers: list[nn.Module] = []
        in_channels = 64
        for channels in (64, 32, 32):
            layers += [nn.ConvTranspose2d(in_channels, channels, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            in_channels = channels
        layers.append(nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1))
        self.upsample = nn.Sequential(*layers)

    def forward(self, z):
        return self.upsample(self.dense(z).view(-1, 64, 4, 4))


@register_model("conv2d_dlib")
class DlibFrameVAE(FrameVAE):
    """disentanglement_lib's network: 4×4 stride-2 convs 32-32-64-64, dense 256, no normalisation; 64×64 frames.

    The encoder and decoder of the methods comparison in Locatello et al. (2019), for 64×64 frames of
    any channel count, with the Bernoulli likelihood by default as there. The posterior's σ comes
    from a Softplus like every vaekit model (disentanglement_lib predicts log σ²).
    """
    tiny_options = {"frame_size": SIDE, "in_channels": 3}  # its layers are fixed; it reads 64×64 only

    def __init__(self, latent_dim: int = 10, in_channels: int = 1, frame_size: int | list = SIDE,
                 likelihood: str = "bernoulli", sigma: float = 0.05):
        nn.Module.__init__(self)
        check_likelihood(likelihood, sigma)
        if frame_shape(frame_size) != (SIDE, SIDE):
            raise ValueError(f"frame_size {frame_size}: this network reads 64×64 frames only (conv2d_frames takes any)")
        self.latent_dim, self.likelihood = latent_dim, likelihood
        self.encoder = DlibEncoder(in_channels, latent_dim)
        self.decoder = DlibDecoder(latent_dim, in_channels)
        self.use_sigma(sigma, learn=False)
