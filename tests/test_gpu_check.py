"""`make gpu-check` (scripts/gpu_check.sh) on a machine without a GPU: it says so and fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU, gpu_check.sh runs the benchmark for minutes")
def test_gpu_check_without_a_gpu_skips_the_cuda_tests_saying_why_and_exits_1():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "gpu-check: no CUDA device is present" in result.stderr.splitlines()[-1]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 5 and all("no CUDA device is present" in line for line in skipped), result.stdout
