"""`python tests/faulty_worker.py <vaekit arguments>`: the vaekit CLI, with a NaN injected into the
training step's loss on one worker (VAEKIT_TEST_NAN_RANK) at its VAEKIT_TEST_NAN_STEP-th step; how the
torchrun tests fail one worker only (in-process tests patch ``TrainStep.eager_forward`` the same way)."""

import math
import os
import sys

import torch

from vaekit.cli import app
from vaekit.training.step import TrainStep


def inject_nan(bad_step: int) -> None:
    original, calls = TrainStep.eager_forward, {"n": 0}

    def forward(self, batch, beta):
        loss, auxiliary, recon, kl = original(self, batch, beta)
        calls["n"] += 1
        if calls["n"] == bad_step:
            return loss * math.nan, auxiliary, recon, kl * math.nan
        return loss, auxiliary, recon, kl

    TrainStep.eager_forward = forward


if __name__ == "__main__":
    if os.environ.get("RANK") == os.environ.get("VAEKIT_TEST_NAN_RANK"):
        inject_nan(int(os.environ["VAEKIT_TEST_NAN_STEP"]))
    torch.set_num_threads(1)
    sys.exit(app(sys.argv[1:], prog_name="vaekit"))
