"""The GPU path, what `make gpu-check` runs (``pytest -m cuda``): a bf16 autocast step, a compiled
step, channels-last weights, DistributedDataParallel over NCCL at world size 1, and a mid-epoch resume,
all on CUDA. Every test skips, saying why, where no CUDA device is present."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from conftest import TINY_MODEL_OPTIONS
from test_training_engine import nan_at_step, records, train
from vaekit.config import LossConfig, TrainConfig
from vaekit.models import create_model
from vaekit.training.distributed import SINGLE, Workers, join, leave
from vaekit.training.loop import make_optimizer
from vaekit.training.step import TrainStep

NO_CUDA = (f"no CUDA device is present (torch {torch.__version__}: torch.cuda.is_available() is False); "
           "run `make gpu-check` on a machine with an NVIDIA GPU and a CUDA build of torch")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]
CUDA = torch.device("cuda")


def tiny_step(precision: str, workers: Workers = SINGLE) -> TrainStep:
    torch.manual_seed(0)
    model = create_model("conv2d", 3, TINY_MODEL_OPTIONS).to(CUDA)
    return TrainStep(model, make_optimizer(model, TrainConfig()), precision, CUDA, LossConfig(), workers=workers)


def grids(n: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 10, (n, 16, 16), dtype=torch.uint8, generator=generator).to(CUDA)


def weights(step: TrainStep) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in step.model.named_parameters()}


def test_a_bf16_autocast_step_is_finite_keeps_fp32_weights_and_moves_them():
    step = tiny_step("bf16")
    before = weights(step)
    loss, recon, kl = step(grids(), 1.0)
    assert all(math.isfinite(float(v)) for v in (loss, recon, kl))
    after = weights(step)
    assert {p.dtype for p in after.values()} == {torch.float32}  # autocast computes in bf16, the weights stay fp32
    assert [n for n in after if torch.equal(after[n], before[n])] == []


def test_a_compiled_step_trains_like_the_eager_one():
    eager, compiled = tiny_step("bf16"), tiny_step("bf16")
    seconds = compiled.compile_now([grids()], beta=1.0)
    assert seconds is not None, compiled.compile_error
    torch.manual_seed(1)
    eager_loss = float(eager(grids(), 1.0)[0])
    torch.manual_seed(1)
    compiled_loss = float(compiled(grids(), 1.0)[0])
    assert compiled_loss == pytest.approx(eager_loss, rel=0.05)


def test_channels_last_weights_stay_channels_last_on_the_gpu_and_give_the_same_loss():
    step = tiny_step("fp32")
    convolutions = [p for p in step.model.parameters() if p.dim() == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)
    plain = tiny_step("fp32")
    plain.model.to(memory_format=torch.contiguous_format)
    torch.manual_seed(1)
    ours = float(step(grids(), 1.0)[0])
    torch.manual_seed(1)
    theirs = float(plain(grids(), 1.0)[0])
    assert ours == pytest.approx(theirs, rel=1e-2)  # TF32 convolutions may differ in the third digit


@dataclass(frozen=True)
class OneWorkerGroup(Workers):
    """A process group of one: vaekit takes world size 1 as 'not distributed', so this forces the DDP
    and NCCL path that torchrun takes on a node of several GPUs."""

    @property
    def distributed(self) -> bool:
        return True


def test_ddp_over_nccl_at_world_size_one_steps_like_a_single_process(monkeypatch):
    import socket

    if not torch.distributed.is_nccl_available():
        pytest.skip("this torch build has no NCCL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1",
                           LOCAL_RANK="0").items():
        monkeypatch.setenv(key, value)
    group = OneWorkerGroup()
    assert join(group, CUDA) == torch.device("cuda", 0)
    try:
        assert torch.distributed.get_backend() == "nccl"
        ddp, single = tiny_step("bf16", group), tiny_step("bf16")
        assert isinstance(ddp.loss_module, torch.nn.parallel.DistributedDataParallel)
        torch.manual_seed(1)
        ddp(grids(), 1.0, (0.0, 1.0, 0.0))
        torch.manual_seed(1)
        single(grids(), 1.0)
        assert ddp.votes == [0.0, 1.0, 0.0]  # the agreement's all-reduce ran over NCCL
        for name, weight in weights(single).items():
            torch.testing.assert_close(weights(ddp)[name], weight, rtol=1e-3, atol=1e-5, msg=name)
    finally:
        leave(group)


def test_a_mid_epoch_resume_on_cuda_equals_the_uninterrupted_run(tmp_path, arc_corpus, monkeypatch):
    runs = tmp_path / "runs"
    options = ["--device", "cuda", "--epochs", 2, "--set", "train.checkpoint_every_steps=2"]
    assert train(arc_corpus, runs, "straight", *options).exit_code == 0
    nan_at_step(monkeypatch, 7)  # epoch 2's third step: last.pt was written after its second
    assert train(arc_corpus, runs, "r", *options).exit_code == 65
    last = torch.load(runs / "r" / "checkpoints" / "last.pt", weights_only=True, map_location="cpu")
    assert (last["position"]["epoch"], last["position"]["step"]) == (2, 2)
    monkeypatch.undo()
    assert train(arc_corpus, runs, "r", *options, "--resume").exit_code == 0
    resumed, straight = records(runs / "r"), records(runs / "straight")
    assert [r["epoch"] for r in resumed] == [r["epoch"] for r in straight] == [1, 2]
    for ours, theirs in zip(resumed, straight):  # cuDNN's backward may sum in another order: close, not equal
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-3)
        assert ours["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-3)

