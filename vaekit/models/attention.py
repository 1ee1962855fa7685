"""Pre-norm transformer blocks over token sequences; attention by
``torch.nn.functional.scaled_dot_product_attention`` (a fused kernel on CPU and GPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Queries from ``x``, keys and values from ``context`` (``x`` itself for self-attention).

    Args:
        width: token width; a multiple of ``heads``.
        heads: attention heads, each of width ``width // heads``.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        batch, length, width = x.shape
        head_width = width // self.heads
        query = self.query(x).view(batch, length, self.heads, head_width).transpose(1, 2)
        key, value = self.key_value(context).view(batch, -1, 2, self.heads, head_width).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(query, key, value)
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class TransformerBlock(nn.Module):
    """x + SelfAttention(LN x), then (with ``cross``) x + CrossAttention(LN x, memory), then
    x + MLP(LN x): the pre-norm block of GPT-2 and ViT, with a decoder's cross-attention when asked.

    Args:
        width: token width.
        heads: attention heads (``width`` must be a multiple).
        mlp_ratio: hidden width of the MLP over ``width``.
        cross: add a cross-attention to the ``memory`` tokens passed to ``forward``.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4, cross: bool = False):
        super().__init__()
        self.self_norm = nn.LayerNorm(width)
        self.self_attention = MultiHeadAttention(width, heads)
        self.cross_norm = nn.LayerNorm(width) if cross else None
        self.cross_attention = MultiHeadAttention(width, heads) if cross else None
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attention(self.self_norm(x))
        if self.cross_attention is not None:
            x = x + self.cross_attention(self.cross_norm(x), memory)
        return x + self.mlp(self.mlp_norm(x))


def count_cpu_attention_flops() -> None:
    """Teach ``torch.utils.flop_counter`` the CPU kernel of ``scaled_dot_product_attention``.

    The counter knows the CUDA kernels (flash, efficient, cuDNN) but not
    ``_scaled_dot_product_flash_attention_for_cpu``, so on CPU it counted a transformer's matmuls and
    left out its attention. The same formulas as the CUDA kernels' are registered for it and its
    backward; calling this twice is harmless.
    """
    from torch.utils import flop_counter

    aten = torch.ops.aten
    forward, backward = (aten._scaled_dot_product_flash_attention_for_cpu,
                         aten._scaled_dot_product_flash_attention_for_cpu_backward)
    if forward in flop_counter.flop_registry:
        return

    def forward_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    def backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    flop_counter.register_flop_formula(forward)(forward_flops)
    flop_counter.register_flop_formula(backward)(backward_flops)
