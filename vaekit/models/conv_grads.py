"""Convolutions whose weight gradient is one matrix product instead of oneDNN's kernel, where that
was measured faster.

oneDNN computes a convolution's weight gradient (``brgconv_bwd_w``) at a few per cent of the CPU's
bf16 peak on the small feature maps of vaekit's models (4×4 to 16×16, 10–256 channels): the
transposed convolutions' were the largest item of ARC's bf16 step (docs/training.md, "Profile of the
bf16 step"). The gradient is a sum over pixels of outer products, so it can be written as one
matmul: the pixels of one side, seen as an (N·h·w, C) matrix (free for a channels-last tensor),
against the k×k windows of the other side gathered into an (N·h·w, k·k·C') matrix. The forward pass
and the input's gradient stay oneDNN's. Both accumulate in fp32; in bf16 the result is rounded to
bf16 as oneDNN's is, and the two differ only where another order of summation rounds differently.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.training.precision import compute_dtype


def windowed_matmul(pixels: torch.Tensor, source: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """``out[p, c, kh, kw] = Σ_{n,i,j} pixels[n, p, i, j] · padded(source)[n, c, stride·i + kh, stride·j + kw]``.

    With ``pixels`` a convolution's output gradient and ``source`` its input, this is the weight
    gradient of ``conv2d(source, W, stride=stride, padding=padding)``; with ``pixels`` a transposed
    convolution's input and ``source`` its output gradient, that of ``conv_transpose2d(pixels, W, ...)``.
    """
    n, p, height, width = pixels.shape
    c = source.shape[1]
    padded = F.pad(source.permute(0, 2, 3, 1), (0, 0, padding, padding, padding, padding))
    s_n, s_h, s_w, s_c = padded.stride()
    windows = padded.as_strided((n, height, width, kernel, kernel, c), (s_n, stride * s_h, stride * s_w, s_h, s_w, s_c))
    gathered = windows.reshape(n * height * width, kernel * kernel * c)
    flat = pixels.permute(0, 2, 3, 1).reshape(n * height * width, p)
    return (flat.t() @ gathered).view(p, kernel, kernel, c).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class _Geometry:
    transposed: bool
    kernel: int
    stride: int
    padding: int


class _MatmulWeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, geometry: _Geometry):
        ctx.save_for_backward(x, weight)
        ctx.geometry, ctx.has_bias = geometry, bias is not None
        conv = F.conv_transpose2d if geometry.transposed else F.conv2d
        return conv(x, weight, bias, stride=geometry.stride, padding=geometry.padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        g = ctx.geometry
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [g.stride] * 2, [g.padding] * 2, [1, 1], g.transposed, [0, 0], 1,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            if g.transposed:
                grad_w = windowed_matmul(x, grad_out, g.kernel, g.stride, g.padding)
            else:
                grad_w = windowed_matmul(grad_out, x, g.kernel, g.stride, g.padding)
            channels_last = weight.is_contiguous(memory_format=torch.channels_last)
            grad_w = grad_w.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None


MATMUL_DTYPES = (torch.bfloat16,)  # in fp32 the matmul gained little (docs/training.md)


class _MatmulWeightGradMixin:
    """Runs the convolution through ``_MatmulWeightGrad`` where ``takes_matmul_weight_grad`` says so,
    casting its input and parameters to the dtype autocast would (the casts' gradients reach the fp32
    weights as autocast's do); elsewhere the torch layer's own forward."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        dtype = compute_dtype(x.device)
        if args or kwargs or not torch.is_grad_enabled() or not self.takes_matmul_weight_grad(x, dtype):
            return super().forward(x, *args, **kwargs)  # e.g. an output_size; evaluation: torch's own layer
        bias = self.bias.to(dtype) if self.bias is not None else None
        geometry = _Geometry(self.transposed, self.kernel_size[0], self.stride[0], self.padding[0])
        with torch.autocast(x.device.type, enabled=False):
            return _MatmulWeightGrad.apply(x.to(dtype), self.weight.to(dtype), bias, geometry)

    def _plain_geometry(self, x: torch.Tensor, dtype: torch.dtype) -> bool:
        """A CPU, a dtype of MATMUL_DTYPES, square kernel, stride and padding, no dilation, groups or
        output padding: what ``windowed_matmul`` computes."""
        return (x.device.type == "cpu" and dtype in MATMUL_DTYPES and self.groups == 1 and x.dim() == 4
                and not isinstance(self.padding, str)
                and all(len(set(v)) == 1 for v in (self.kernel_size, self.stride, self.padding))
                and self.dilation == (1, 1) and self.output_padding == (0, 0) and self.padding_mode == "zeros")


# Measured on ARC's, Atari's and conv2d_wide's layers, bf16, 1 thread, batch 64–128 (docs/training.md):
# transposed convolutions 1.7–3.3× faster from 64 input channels, up to 1.8× slower with 16–32 input
# channels on 16×16–32×32 inputs; convolutions 1.7–2.3× faster where the output is at most 4×4 with
# 64 or more input channels, slower (to 8×) on larger outputs.
MATMUL_MIN_IN_CHANNELS = 64
CONV_MATMUL_MAX_OUTPUT_PIXELS = 16


class TransposedConv2d(_MatmulWeightGradMixin, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same outputs) with the matmul weight gradient from
    ``MATMUL_MIN_IN_CHANNELS`` input channels."""

    def takes_matmul_weight_grad(self, x: torch.Tensor, dtype: torch.dtype) -> bool:
        return self.in_channels >= MATMUL_MIN_IN_CHANNELS and self._plain_geometry(x, dtype)


class Conv2d(_MatmulWeightGradMixin, nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same outputs) with the matmul weight gradient from
    ``MATMUL_MIN_IN_CHANNELS`` input channels where the output has at most
    ``CONV_MATMUL_MAX_OUTPUT_PIXELS`` pixels."""

    def takes_matmul_weight_grad(self, x: torch.Tensor, dtype: torch.dtype) -> bool:
        if self.in_channels < MATMUL_MIN_IN_CHANNELS or not self._plain_geometry(x, dtype):
            return False
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        out_pixels = ((x.shape[-2] + 2 * p - k) // s + 1) * ((x.shape[-1] + 2 * p - k) // s + 1)
        return out_pixels <= CONV_MATMUL_MAX_OUTPUT_PIXELS
