"""Layers shared by the model families (ARC grids, frames and images, vectors, ternary tables)."""

from __future__ import annotations

import torch
from torch import nn

from vaekit.models.conv_grads import Conv2d, TransposedConv2d


def relu(after_norm: bool = False) -> nn.ReLU:
    """ReLU, in place where it follows a convolution or a linear layer (neither keeps its output for
    the backward pass, so overwriting it is safe and spares a full-size tensor; the ReLU's backward
    reads its output either way). After a batch norm it stays out of place: in place there measured
    2–3 % slower on the frame models' bf16 step, +2 % on ARC's conv2d without one (docs/training.md)."""
    return nn.ReLU(inplace=not after_norm)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(relu())
    return nn.Sequential(*layers)


def halved(side: int, stride: int) -> int:
    """The side after a 3×3 convolution with padding 1 and this stride (odd sides round up)."""
    return -(-side // stride)


class GaussianHead(nn.Module):
    """Dense -> (μ, σ) with σ = Softplus(dense), as in the seed's encoder."""

    def __init__(self, in_features: int, latent_dim: int):
        super().__init__()
        self.mu = nn.Linear(in_features, latent_dim)
        self.sigma = nn.Sequential(nn.Linear(in_features, latent_dim), nn.Softplus())

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(h), self.sigma(h)


def conv_block(in_ch: int, out_ch: int, stride: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(relu(after_norm=norm))
    return layers


def upsampling_stages(in_ch: int, channels, norm: bool) -> list[nn.Module]:
    """4×4 stride-2 transposed convolutions, each doubling the side, with BatchNorm (``norm``) and ReLU."""
    layers: list[nn.Module] = []
    for out_ch in channels:
        layers.append(TransposedConv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1))
        if norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(relu(after_norm=norm))
        in_ch = out_ch
    return layers


class _FlattenChannelsLast(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.flatten(1)  # a copy: a channels-last map is not contiguous in (C, H, W) order

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape).contiguous(memory_format=torch.channels_last)


class Flatten(nn.Flatten):
    """``nn.Flatten`` whose gradient goes back channels-last where the feature map came channels-last:
    nn.Flatten's arrives contiguous, and the ReLU before it then computes its backward across two
    layouts, several times slower than within one (docs/training.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dim() == 4 and (self.start_dim, self.end_dim) == (1, -1) and not x.is_contiguous()
                and x.is_contiguous(memory_format=torch.channels_last)):
            return _FlattenChannelsLast.apply(x)
        return super().forward(x)


class ConvEncoder2d(nn.Module):
    """3×3 convolutions (stride per stage) -> flatten -> dense -> Gaussian head.

    Args:
        in_channels: input channels (10 one-hot colours, or 1/3 frame channels).
        channels: output channels of each conv stage.
        strides: stride of each conv stage (2 halves the side, rounding up).
        input_size: side of the square input, or (height, width).
        hidden: width of the dense layer before the head.
        latent_dim: d.
        norm: add BatchNorm after each convolution.
    """

    def __init__(self, in_channels, channels, strides, input_size, hidden, latent_dim, norm=False):
        super().__init__()
        layers: list[nn.Module] = []
        height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
        for out_ch, stride in zip(channels, strides):
            layers += conv_block(in_channels, out_ch, stride, norm)
            in_channels, height, width = out_ch, halved(height, stride), halved(width, stride)
        self.features = nn.Sequential(*layers, Flatten())
        self.dense = nn.Sequential(nn.Linear(in_channels * height * width, hidden), relu())
        self.head = GaussianHead(hidden, latent_dim)
        self.feature_shape = (in_channels, height, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.dense(self.features(x)))


class ConvDecoder2d(nn.Module):
    """Dense -> dense -> reshape -> 4×4 stride-2 transposed convs -> 3×3 output conv.

    Args:
        latent_dim: d.
        hidden: width of the first dense layer.
        feature_shape: (channels, side, side) the second dense layer reshapes to.
        channels: output channels of each transposed-conv stage (each doubles the side).
        out_channels: channels of the output (logits per class, or frame channels).
        norm: add BatchNorm after each transposed convolution.
        output_size: (height, width) to crop the output to, when the doubled sides overshoot it (an
            odd side was rounded up on the way down); None keeps the doubled size.
    """

    def __init__(self, latent_dim, hidden, feature_shape, channels, out_channels, norm=False, output_size=None):
        super().__init__()
        c, h, w = feature_shape
        self.feature_shape = feature_shape
        self.output_size = output_size
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, hidden), relu(), nn.Linear(hidden, c * h * w), relu()
        )
        layers = upsampling_stages(c, channels, norm)
        layers.append(nn.Conv2d(channels[-1] if channels else c, out_channels, kernel_size=3, padding=1))
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.upsample(self.dense(z).view(-1, *self.feature_shape))
        if self.output_size is not None:
            out = out[..., : self.output_size[0], : self.output_size[1]]
        return out


class SpatialBroadcastDecoder2d(nn.Module):
    """z tiled over the grid with two coordinate channels, then stride-1 3×3 convolutions
    (Watters et al., 2019): every cell reads all of z and knows where it is.

    Args:
        latent_dim: d.
        size: side of the square output.
        channels: output channels of each 3×3 convolution.
        out_channels: channels of the output (logits per class).
        norm: add BatchNorm after each convolution.
    """

    def __init__(self, latent_dim, size, channels, out_channels, norm=False):
        super().__init__()
        axis = torch.linspace(-1.0, 1.0, size)
        rows, cols = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("coords", torch.stack([rows, cols]).unsqueeze(0), persistent=False)
        self.size = size
        layers: list[nn.Module] = []
        in_ch = latent_dim + 2
        for out_ch in channels:
            layers += conv_block(in_ch, out_ch, 1, norm)
            in_ch = out_ch
        layers.append(nn.Conv2d(in_ch, out_channels, kernel_size=1))
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        tiled = z[:, :, None, None].expand(-1, -1, self.size, self.size)
        coords = self.coords.expand(z.shape[0], -1, -1, -1).to(z.dtype)
        return self.convs(torch.cat([tiled, coords], dim=1))
