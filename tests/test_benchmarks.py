"""Benchmarks that nothing runs rot: every script in benchmarks/ runs here in its smoke mode.

The list of scripts is read from the directory, so a new script without ``--smoke`` fails this test.
Each script declares, at module level, ``SMOKE_FIGURE``: a regular expression for a line of figures
its smoke run prints (asserted here, so a script that exits 0 without measuring anything fails), and
optionally ``SMOKE_REQUIRES``: modules it needs that vaekit does not depend on (skipped without them).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
LIBRARIES = {"bench_common.py"}  # imported by the scripts, not run
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in LIBRARIES)


def declared(script: str) -> dict:
    """The module-level constants of a script (read without importing it)."""
    values = {}
    for node in ast.parse((BENCHMARKS / script).read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def test_the_scripts_are_found():
    assert {"train_throughput.py", "eval_throughput.py", "objective_cost.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_prints_its_figures_in_its_smoke_mode(script):
    constants = declared(script)
    assert "--smoke" in (BENCHMARKS / script).read_text(), f"{script} has no --smoke mode"
    assert "SMOKE_FIGURE" in constants, f"{script} declares no SMOKE_FIGURE (the line of figures its smoke run prints)"
    missing = [m for m in constants.get("SMOKE_REQUIRES", []) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}, which vaekit does not depend on")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke"], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(constants["SMOKE_FIGURE"], result.stdout), result.stdout[-2000:]
