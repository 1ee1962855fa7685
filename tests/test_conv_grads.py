"""Convolutions whose weight gradient is a matmul: the same outputs and gradients as torch's layers."""

from __future__ import annotations

import contextlib
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from vaekit.config import LossConfig
from vaekit.models import create_model
from vaekit.models import conv_grads
from vaekit.models.conv_grads import MATMUL_MIN_IN_CHANNELS, Conv2d, TransposedConv2d, windowed_matmul


@pytest.mark.parametrize("kernel,stride,padding", [(4, 2, 1), (3, 1, 1), (3, 2, 0), (5, 3, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_the_windowed_matmul_is_the_weight_gradient(kernel, stride, padding, channels_last, transposed):
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 5, 9, 7, dtype=torch.float64).contiguous(memory_format=layout)
    shape = (5, 4, kernel, kernel) if transposed else (4, 5, kernel, kernel)
    weight = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    conv = F.conv_transpose2d if transposed else F.conv2d
    out = conv(x, weight, stride=stride, padding=padding)
    grad_out = torch.randn_like(out)
    (expected,) = torch.autograd.grad(out, weight, grad_out)
    ours = (windowed_matmul(x, grad_out, kernel, stride, padding) if transposed
            else windowed_matmul(grad_out, x, kernel, stride, padding))
    assert torch.allclose(ours, expected)


def assert_within_a_bf16_step(ours: torch.Tensor, expected: torch.Tensor) -> None:
    """Each value within one bf16 step of the expected one, plus what fp32 accumulation in another order
    can move a sum that cancels to near 0 (a millionth of the largest value)."""
    slack = expected.abs().to(torch.bfloat16).float() * 2**-7 + expected.abs().max() * 1e-6
    bad = (ours - expected).abs() > slack
    assert not bad.any(), (ours[bad][:5], expected[bad][:5])


def _pair(ours_class, theirs_class, in_channels: int, out_channels: int, stride: int):
    torch.manual_seed(0)
    kernel = 4 if ours_class is TransposedConv2d else 3
    ours = ours_class(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=1)
    theirs = theirs_class(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=1)
    theirs.load_state_dict(ours.state_dict())
    for layer in (ours, theirs):
        layer.to(memory_format=torch.channels_last)
    return ours, theirs


def _gradients(layer, x, precision):
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = layer(x)
    torch.manual_seed(1)
    out.backward(torch.randn_like(out))
    return out, [x.grad, layer.weight.grad, layer.bias.grad]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("ours_class,theirs_class,side,stride", [
    (TransposedConv2d, torch.nn.ConvTranspose2d, 4, 2), (Conv2d, torch.nn.Conv2d, 8, 2), (Conv2d, torch.nn.Conv2d, 4, 1)])
def test_outputs_and_gradients_are_torch_s(precision, ours_class, theirs_class, side, stride):
    """fp32 runs torch's own path (bit for bit); bf16 the same forward, input and bias gradients, and a
    weight gradient within one bf16 step (another order of summation; assert_within_a_bf16_step)."""
    ours, theirs = _pair(ours_class, theirs_class, MATMUL_MIN_IN_CHANNELS, 16, stride)
    x = torch.randn(8, MATMUL_MIN_IN_CHANNELS, side, side).contiguous(memory_format=torch.channels_last)
    assert ours.takes_matmul_weight_grad(x, torch.bfloat16)
    out, grads = _gradients(ours, x, precision)
    expected_out, expected = _gradients(theirs, x, precision)
    assert out.dtype == expected_out.dtype and torch.equal(out, expected_out)
    assert torch.equal(grads[0], expected[0]) and torch.equal(grads[2], expected[2])
    assert grads[1].dtype == torch.float32 and grads[1].is_contiguous(memory_format=torch.channels_last)
    if precision == "fp32":
        assert torch.equal(grads[1], expected[1])
    else:
        assert_within_a_bf16_step(grads[1], expected[1])


def test_the_matmul_is_taken_only_where_it_was_measured_faster():
    wide, narrow = TransposedConv2d(64, 8, 4, 2, 1), TransposedConv2d(32, 8, 4, 2, 1)
    x64, x32 = torch.zeros(1, 64, 4, 4), torch.zeros(1, 32, 4, 4)
    assert wide.takes_matmul_weight_grad(x64, torch.bfloat16)
    assert not wide.takes_matmul_weight_grad(x64, torch.float32)
    assert not narrow.takes_matmul_weight_grad(x32, torch.bfloat16)
    assert not TransposedConv2d(64, 8, 4, 2, 1, output_padding=1).takes_matmul_weight_grad(x64, torch.bfloat16)
    assert not TransposedConv2d(64, 8, 4, 2, 1, groups=2).takes_matmul_weight_grad(x64, torch.bfloat16)
    conv = Conv2d(64, 128, 3, 2, 1)
    assert conv.takes_matmul_weight_grad(torch.zeros(1, 64, 8, 8), torch.bfloat16)  # a 4×4 output
    assert not conv.takes_matmul_weight_grad(torch.zeros(1, 64, 16, 16), torch.bfloat16)  # 8×8
    assert not Conv2d(32, 64, 3, 2, 1).takes_matmul_weight_grad(torch.zeros(1, 32, 8, 8), torch.bfloat16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_seed_model_trains_the_same_in_bf16_up_to_bf16_rounding_of_three_weight_gradients(seed):
    """ARC's conv2d: the loss bit for bit, every gradient bit for bit but the weights' of the two
    transposed convolutions and of the last encoder convolution (64 -> 128 channels, 4×4 out), which
    stay within one bf16 step."""
    batch = torch.randint(0, 10, (16, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    runs = []
    for matmul in (True, False):
        torch.manual_seed(seed)
        model = create_model("conv2d", 10)
        with contextlib.ExitStack() as stack:
            if not matmul:
                for layer_class in (Conv2d, TransposedConv2d):
                    stack.enter_context(mock.patch.object(layer_class, "takes_matmul_weight_grad", lambda *a: False))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss, _, _ = model.objective(batch, 1.0, LossConfig())
            loss.backward()
        runs.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (loss, grads), (expected_loss, expected) = runs
    assert torch.equal(loss, expected_loss)
    differing = [n for n in grads if not torch.equal(grads[n], expected[n])]
    assert differing and set(differing) <= {"decoder.upsample.0.weight", "decoder.upsample.2.weight",
                                            "encoder.features.4.weight"}
    for name in differing:
        assert_within_a_bf16_step(grads[name], expected[name])


def test_the_matmul_path_runs_in_a_bf16_training_step_and_nowhere_else():
    """The three matmul weight gradients of ARC's conv2d are taken in its bf16 step; in fp32, under
    no_grad and in evaluation none is."""
    batch = torch.randint(0, 10, (4, 16, 16), dtype=torch.uint8)
    model = create_model("conv2d", 10)
    with mock.patch.object(conv_grads, "windowed_matmul", wraps=windowed_matmul) as spy:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _, _ = model.objective(batch, 1.0, LossConfig())
        loss.backward()
        assert spy.call_count == 3
        spy.reset_mock()
        model.objective(batch, 1.0, LossConfig())[0].backward()  # fp32
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model.objective(batch, 1.0, LossConfig())
        assert spy.call_count == 0


def test_other_devices_layouts_and_frozen_weights_keep_torch_s_layer():
    layer = TransposedConv2d(64, 8, 4, 2, 1)
    assert not layer.takes_matmul_weight_grad(torch.zeros(1, 64, 4, 4, device="meta"), torch.bfloat16)
    assert not layer.takes_matmul_weight_grad(torch.zeros(64, 4, 4), torch.bfloat16)  # unbatched
    assert not Conv2d(64, 8, 3, 1, padding="same").takes_matmul_weight_grad(torch.zeros(1, 64, 4, 4), torch.bfloat16)
    ours, theirs = _pair(TransposedConv2d, torch.nn.ConvTranspose2d, MATMUL_MIN_IN_CHANNELS, 8, 2)
    for layer in (ours, theirs):
        layer.weight.requires_grad_(False)
    x = torch.randn(2, MATMUL_MIN_IN_CHANNELS, 4, 4).contiguous(memory_format=torch.channels_last)
    (_, grads), (_, expected) = _gradients(ours, x, "bf16"), _gradients(theirs, x, "bf16")
    assert grads[1] is None and torch.equal(grads[0], expected[0]) and torch.equal(grads[2], expected[2])


def test_an_output_size_runs_torch_s_own_path():
    ours, theirs = _pair(TransposedConv2d, torch.nn.ConvTranspose2d, MATMUL_MIN_IN_CHANNELS, 4, 2)
    x = torch.randn(2, MATMUL_MIN_IN_CHANNELS, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(ours(x, output_size=[9, 9]), theirs(x, output_size=[9, 9]))
