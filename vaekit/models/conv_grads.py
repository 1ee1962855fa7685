"""A transposed convolution whose weight gradient is one matrix product instead of oneDNN's kernel.

oneDNN computes a transposed convolution's weight gradient (``brgconv_bwd_w``) at a few per cent of
the CPU's peak on the small feature maps of vaekit's decoders (4×4 to 32×32, 16–128 channels): it
was the largest item of ARC's bf16 step (docs/training.md, "Profile of the bf16 step"). The same
gradient is a sum over the input's pixels of outer products, so it can be written as

    dW[ci, (kh, kw, co)] = Σ_{n,i,j} x[n, i, j, ci] · gy_padded[n, s·i + kh, s·j + kw, co]

one matmul of the input, seen as an (N·H·W, ci) matrix (free for a channels-last tensor), with the
output gradient's k×k windows gathered into an (N·H·W, k·k·co) matrix. The forward pass and the
input's gradient stay oneDNN's. Both products accumulate in fp32; in bf16 the result is rounded to
bf16 as oneDNN's is, and the two differ only where a different order of summation rounds differently.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.training.precision import compute_dtype


def transposed_conv_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: int, stride: int,
                                padding: int) -> torch.Tensor:
    """The gradient of ``conv_transpose2d(x, weight, stride=stride, padding=padding)`` with respect to
    ``weight`` (shape (ci, co, kernel, kernel)), given the output's gradient ``grad_out``."""
    n, ci, height, width = x.shape
    co = grad_out.shape[1]
    padded = F.pad(grad_out.permute(0, 2, 3, 1), (0, 0, padding, padding, padding, padding))  # (N, H', W', co)
    s_n, s_h, s_w, s_c = padded.stride()
    windows = padded.as_strided((n, height, width, kernel, kernel, co), (s_n, stride * s_h, stride * s_w, s_h, s_w, s_c))
    gathered = windows.reshape(n * height * width, kernel * kernel * co)
    pixels = x.permute(0, 2, 3, 1).reshape(n * height * width, ci)
    return (pixels.t() @ gathered).view(ci, kernel, kernel, co).permute(0, 3, 1, 2)


class _TransposedConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv_transpose2d(x, weight, bias, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding = ctx.stride, ctx.padding
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [stride] * 2, [padding] * 2, [1, 1], True, [0, 0], 1,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = transposed_conv_weight_grad(x, grad_out, weight.shape[-1], stride, padding)
            grad_w = grad_w.contiguous(memory_format=torch.channels_last if weight.is_contiguous(
                memory_format=torch.channels_last) else torch.contiguous_format)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


# Where the matmul was measured faster than oneDNN (bf16, 1 thread, batch 64–128): 2–3.3× from 64 input
# channels up; with 16–32 input channels on 16×16 to 32×32 inputs it was up to 1.8× slower, and in fp32
# it gained little (docs/training.md).
MATMUL_MIN_IN_CHANNELS = 64
MATMUL_DTYPES = (torch.bfloat16,)


class TransposedConv2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same outputs) whose weight gradient is computed by
    ``transposed_conv_weight_grad`` where that was measured faster: on a CPU, in bf16, from
    ``MATMUL_MIN_IN_CHANNELS`` input channels, for square kernels without dilation, groups or output
    padding. Elsewhere it is nn.ConvTranspose2d."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        dtype = compute_dtype(x.device)  # what autocast casts to; the casts' gradients reach the fp32 weights
        if output_size is not None or not self.takes_matmul_weight_grad(x.device, dtype):
            return super().forward(x, output_size)
        bias = self.bias.to(dtype) if self.bias is not None else None
        with torch.autocast(x.device.type, enabled=False):
            return _TransposedConv.apply(x.to(dtype), self.weight.to(dtype), bias, self.stride[0], self.padding[0])

    def takes_matmul_weight_grad(self, device: torch.device, dtype: torch.dtype) -> bool:
        square = all(len(set(v)) == 1 for v in (self.kernel_size, self.stride, self.padding))
        return (device.type == "cpu" and dtype in MATMUL_DTYPES and self.in_channels >= MATMUL_MIN_IN_CHANNELS
                and square and self.groups == 1 and self.dilation == (1, 1) and self.output_padding == (0, 0)
                and self.padding_mode == "zeros")
