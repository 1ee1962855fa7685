"""Benchmarks that nothing runs rot: each script with a smoke mode runs here in seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", ["objective_cost.py"])
def test_the_benchmark_runs_in_its_smoke_mode(script):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "× elbo" in result.stdout
