"""Conv2d VAE for frames and images (Atari, your own images): (C, H, W) in [0, 1] at any size with
H, W ≥ 8, a continuous decoder."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.background import as_model_frames, foreground_weights
from vaekit.data_formats import FRAMES
from vaekit.models import register_model
from vaekit.models.base import GaussianVAE
from vaekit.models.layers import ConvDecoder2d, ConvEncoder2d, halved
from vaekit.training.losses import reduce_elements
from vaekit.training.precision import compute_dtype



def _gaussian_nll(output: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (output - target).pow(2) / (2 * sigma**2) + sigma.log() + 0.5 * math.log(2 * math.pi)


def _laplace_nll(output: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    scale = sigma / math.sqrt(2)  # the Laplace distribution of standard deviation σ
    return (output - target).abs() / scale + (2 * scale).log()


def _bernoulli_nll(output: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(output, target, reduction="none")


# The per-element NLL of each likelihood: (decoder output, target in [0, 1], σ) -> NLL. The Gaussian
# and Laplace outputs are the mean and median themselves; the Bernoulli output is a logit.
ELEMENT_NLL = {"gaussian": _gaussian_nll, "laplace": _laplace_nll, "bernoulli": _bernoulli_nll}
LIKELIHOODS = tuple(ELEMENT_NLL)
DENSITIES = ("gaussian", "laplace")  # likelihoods that are densities over intensities/255
SMALLEST_FEATURE_SIDE = 4  # the stride-2 stages stop before the shorter side falls below this
SIGMA_MIN = 1e-3  # a learned σ below a quarter of one 8-bit level would only chase rounding noise


def check_likelihood(likelihood: str, sigma: float) -> None:
    """Refuse a likelihood the frames models lack and a non-positive σ (ValueError naming the option)."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood '{likelihood}': expected one of {', '.join(LIKELIHOODS)}")
    if sigma <= 0:
        raise ValueError(f"sigma {sigma}: expected a positive standard deviation")


def frame_shape(frame_size: int | list | tuple) -> tuple[int, int]:
    """(height, width) of a ``frame_size`` option: the side of square frames, or [height, width]."""
    return (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)


def stride2_stages(height: int, width: int, most: int) -> int:
    """How many stride-2 stages halve the shorter side without going below 4 pixels (at most
    ``most``): 64 -> 4 stages (4×4), 16 -> 2, 8 -> 1, 84 -> 4 (6×6)."""
    stages, side = 0, min(height, width)
    while stages < most and halved(side, 2) >= SMALLEST_FEATURE_SIDE:
        side, stages = halved(side, 2), stages + 1
    return stages


@register_model("conv2d_frames")
class FrameVAE(GaussianVAE):
    """Stride-2 convs down to about 4×4, a dense bottleneck, transposed convs back up.

    Any size with H, W ≥ 8 works: the encoder uses as many of ``channels``' stages as halve the
    shorter side down to no less than 4 pixels (odd sides round up), the decoder the last as many of
    ``decoder_channels``, and its output is cropped to H×W where the doubling overshoots.

    The decoder outputs one number per pixel and channel. With the Gaussian likelihood (fixed σ,
    NLL = (x − x̂)²/2σ² + log σ + ½ log 2π per element) that number is the mean x̂ itself, clamped to
    [0, 1] only when shown or scored; with the Bernoulli likelihood it is a logit (binary
    cross-entropy on the [0, 1] intensities, frame = sigmoid(logit)). The Laplace likelihood (standard
    deviation σ, NLL = |x − x̂|/b + log 2b with b = σ/√2) makes that number the median: where a
    small object's place is uncertain it draws the object where it is likelier than not, and nothing
    elsewhere, rather than the Gaussian's faint halo around it. With ``learn_sigma`` the
    Gaussian's σ is one trained parameter shared by every pixel (starting at ``sigma``), so the
    balance of reconstruction and KL is learned rather than chosen (Rybkin et al., 2021, σ-VAE).

    Why no sigmoid under the Gaussian: the gradient of (sigmoid(l) − x)² vanishes where the sigmoid
    saturates, and on a mostly black Atari screen it saturates at 0 wherever the paddle and the ball
    might be. A linear mean has no such flat region.

    Why BatchNorm by default: without it the encoder died within the first epochs on Breakout,
    sigmoid or not. With the linear mean alone, after 4 epochs the posterior means varied by only
    0.001–0.017 across frames, 0/32 dimensions were active and every reconstruction was the mean
    frame (31.7 dB; the mean frame itself scores 31.99 dB). With BatchNorm all 32 dimensions are
    active from epoch 2 and the held-out PSNR reached 39 dB.
    """
    tiny_options = {"frame_size": 16, "channels": [4, 4], "hidden": 8, "decoder_channels": [4, 4]}

    data_format = FRAMES
    foreground_weighting: tuple[torch.Tensor, float, bool] | None = None  # weigh_foreground's arguments
    prefers_channels_last = True  # 1.6x faster fp32 training steps on CPU (docs/training.md)

    def __init__(
        self,
        latent_dim: int = 32,
        in_channels: int = 3,
        frame_size: int | list = 64,  # the side of square frames, or [height, width]
        channels: tuple = (16, 32, 64, 128),  # ~1.35M parameters: ~300 frames/s per CPU thread
        hidden: int = 256,
        decoder_channels: tuple = (64, 32, 16, 16),
        likelihood: str = "gaussian",
        sigma: float = 0.05,
        learn_sigma: bool = False,
        norm: bool = True,
    ):
        super().__init__()
        check_likelihood(likelihood, sigma)
        height, width = frame_shape(frame_size)
        if min(height, width) < 2 * SMALLEST_FEATURE_SIDE:
            raise ValueError(f"frame_size {frame_size}: height and width must be at least {2 * SMALLEST_FEATURE_SIDE}")
        stages = stride2_stages(height, width, len(channels))
        if len(decoder_channels) < stages:
            raise ValueError(f"frame_size {frame_size} takes {stages} stride-2 stages down, but decoder_channels "
                             f"has only {len(decoder_channels)} stages back up")
        self.latent_dim, self.likelihood = latent_dim, likelihood
        self.encoder = ConvEncoder2d(in_channels, channels[:stages], [2] * stages, (height, width), hidden,
                                     latent_dim, norm)
        self.decoder = ConvDecoder2d(latent_dim, hidden, self.encoder.feature_shape,
                                     decoder_channels[len(decoder_channels) - stages:], in_channels, norm,
                                     output_size=(height, width))
        self.use_sigma(sigma, learn_sigma)

    def use_sigma(self, sigma: float, learn: bool) -> None:
        """The Gaussian's or Laplace's σ: fixed at ``sigma``, or learned from it (the parameter ``log_sigma``)."""
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma))) if learn else None
        self.fixed_sigma = sigma

    def weigh_foreground(self, background: torch.Tensor, weight: float, drawn_too: bool = False) -> None:
        """Train with the NLL of each foreground pixel (one differing from ``background``, (C, H, W)
        in [0, 1]; vaekit.background) weighted by ``weight``, background pixels by 1; with
        ``drawn_too`` also each pixel the reconstruction draws as foreground. Only the training
        objective changes: ``reconstruction_nll`` and everything reported stay the NLL."""
        self.foreground_weighting = (background, float(weight), drawn_too)

    @property
    def sigma(self) -> torch.Tensor | float:
        """The Gaussian's or Laplace's standard deviation: the learned one (at least 1e-3), or the option."""
        if self.log_sigma is None:
            return self.fixed_sigma
        return self.log_sigma.clamp(min=math.log(SIGMA_MIN)).exp()

    @property
    def data_bin_width(self) -> float | None:
        """The Gaussian and Laplace are densities over intensities/255, so a pixel value's bin is 1/255
        wide; the Bernoulli of a grey level in (0, 1) is not a normalised likelihood of that level."""
        return 1 / 255 if self.likelihood in DENSITIES else None

    def prepare(self, batch, dtype: torch.dtype = torch.float32):
        """(N, H, W, C) uint8 -> (N, C, H, W) float in [0, 1] (channels-last in memory), in ``dtype``."""
        return as_model_frames(batch, dtype=dtype)

    def encoder_input(self, batch):
        """The frames in the first convolution's dtype, in one pass: 0–255 are exact in bf16 and fp16,
        and k/255 rounds to the same bits as autocast's cast of the fp32 value (the target of the NLL
        stays fp32: ``prepare``)."""
        return self.prepare(batch, compute_dtype(batch.device))

    def frame_means(self, output):
        """The decoded frames in [0, 1]."""
        if self.likelihood == "bernoulli":
            return torch.sigmoid(output)
        return output.clamp(0.0, 1.0)

    def _nll_per_element(self, output, target):
        sigma = torch.as_tensor(self.sigma, dtype=output.dtype, device=output.device)
        return ELEMENT_NLL[self.likelihood](output, target, sigma)

    def reconstruction_nll(self, output, batch, reduction):
        return reduce_elements(self._nll_per_element(output, self.prepare(batch)), reduction)

    def reconstruction_objective(self, output, batch, reduction):
        if self.foreground_weighting is None:
            return None
        background, weight, drawn_too = self.foreground_weighting
        target = self.prepare(batch)
        drawn = self.frame_means(output.detach()) if drawn_too else None
        weights = foreground_weights(target, background.to(target.device), weight, drawn=drawn)
        return reduce_elements(self._nll_per_element(output, target) * weights, reduction)

    def reconstruct(self, output):
        return (self.frame_means(output) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
