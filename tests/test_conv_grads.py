"""The transposed convolution whose weight gradient is a matmul: the same gradients as nn.ConvTranspose2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaekit.config import LossConfig
from vaekit.models import create_model
from vaekit.models.conv_grads import MATMUL_MIN_IN_CHANNELS, TransposedConv2d, transposed_conv_weight_grad


@pytest.mark.parametrize("kernel,stride,padding", [(4, 2, 1), (3, 1, 1), (3, 2, 0), (5, 3, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_weight_gradient_is_autograd_s(kernel, stride, padding, channels_last):
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 5, 6, 7, dtype=torch.float64).contiguous(memory_format=layout)
    weight = torch.randn(5, 4, kernel, kernel, dtype=torch.float64, requires_grad=True)
    out = F.conv_transpose2d(x, weight, stride=stride, padding=padding)
    grad_out = torch.randn_like(out)
    (expected,) = torch.autograd.grad(out, weight, grad_out)
    assert torch.allclose(transposed_conv_weight_grad(x, grad_out, kernel, stride, padding), expected)


def _pair(in_channels: int, out_channels: int):
    torch.manual_seed(0)
    ours = TransposedConv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
    theirs = torch.nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
    theirs.load_state_dict(ours.state_dict())
    for layer in (ours, theirs):
        layer.to(memory_format=torch.channels_last)
    return ours, theirs


def _gradients(layer, x, grad_out, precision):
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = layer(x)
    out.backward(grad_out)
    return out, [x.grad, layer.weight.grad, layer.bias.grad]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_outputs_and_gradients_are_nn_conv_transpose2d_s(precision):
    """fp32 runs oneDNN's path itself (bit for bit); bf16 the same forward, input and bias gradients,
    and a weight gradient within the rounding of bf16 (a different order of summation)."""
    ours, theirs = _pair(MATMUL_MIN_IN_CHANNELS, 16)
    x = torch.randn(8, MATMUL_MIN_IN_CHANNELS, 4, 4).contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(8, 16, 8, 8)
    out, grads = _gradients(ours, x, grad_out.to(torch.bfloat16) if precision == "bf16" else grad_out, precision)
    expected_out, expected = _gradients(theirs, x, grad_out.to(torch.bfloat16) if precision == "bf16" else grad_out,
                                        precision)
    assert out.dtype == expected_out.dtype and torch.equal(out, expected_out)
    assert torch.equal(grads[0], expected[0]) and torch.equal(grads[2], expected[2])
    assert grads[1].dtype == torch.float32 and grads[1].is_contiguous(memory_format=torch.channels_last)
    if precision == "fp32":
        assert torch.equal(grads[1], expected[1])
    else:
        ulp = expected[1].abs().to(torch.bfloat16).float() * 2**-7  # one bf16 step at each value
        assert ((grads[1] - expected[1]).abs() <= ulp).all()


def test_it_takes_the_matmul_only_where_it_was_measured_faster():
    wide, narrow = TransposedConv2d(64, 8, 4, 2, 1), TransposedConv2d(32, 8, 4, 2, 1)
    cpu = torch.device("cpu")
    assert wide.takes_matmul_weight_grad(cpu, torch.bfloat16)
    assert not wide.takes_matmul_weight_grad(cpu, torch.float32)
    assert not narrow.takes_matmul_weight_grad(cpu, torch.bfloat16)
    assert not TransposedConv2d(64, 8, 4, 2, 1, output_padding=1).takes_matmul_weight_grad(cpu, torch.bfloat16)
    assert not TransposedConv2d(64, 8, 4, 2, 1, groups=2).takes_matmul_weight_grad(cpu, torch.bfloat16)


def test_the_seed_model_trains_the_same_in_bf16_up_to_bf16_rounding_of_two_weight_gradients():
    """ARC's conv2d: the loss bit for bit, every gradient bit for bit but the two transposed
    convolutions' weights, which stay within one bf16 step."""
    batch = torch.randint(0, 10, (16, 16, 16), dtype=torch.uint8)
    runs = []
    for matmul in (True, False):
        torch.manual_seed(0)
        model = create_model("conv2d", 10)
        original = TransposedConv2d.takes_matmul_weight_grad
        TransposedConv2d.takes_matmul_weight_grad = original if matmul else (lambda *args: False)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss, _, _ = model.objective(batch, 1.0, LossConfig())
            loss.backward()
        finally:
            TransposedConv2d.takes_matmul_weight_grad = original
        runs.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (loss, grads), (expected_loss, expected) = runs
    assert torch.equal(loss, expected_loss)
    differing = [n for n in grads if not torch.equal(grads[n], expected[n])]
    assert set(differing) <= {"decoder.upsample.0.weight", "decoder.upsample.2.weight"}
    for name in differing:
        ulp = expected[name].abs().to(torch.bfloat16).float() * 2**-7
        assert ((grads[name] - expected[name]).abs() <= ulp).all()
