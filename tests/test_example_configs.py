"""Every shipped YAML loads, and its first line is the exact command that runs it."""

import shlex
from pathlib import Path

import pytest

from vaekit.experiment import resolve_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "examples" / "configs").rglob("*.yaml"))


def test_there_are_example_configs():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "examples" / "configs")))
def test_config_loads_and_header_is_its_command(path):
    header = path.read_text().splitlines()[0]
    assert header.startswith("# vaekit train "), header
    words = shlex.split(header[2:])
    domain = words[2]
    assert words[words.index("--config") + 1] == str(path.relative_to(ROOT))
    config = resolve_config(domain, path, [])
    assert config.domain == domain


SWEEPS = sorted((ROOT / "examples" / "sweeps").glob("*.yaml"))


def test_there_are_example_sweeps():
    assert {p.name for p in SWEEPS} >= {"arc_fallback.yaml", "arc_frontier.yaml", "beta_schedules.yaml",
                                        "gaussians_004.yaml"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_space_is_valid_and_header_is_its_command(path, tmp_path):
    """The header command's space, config, sampler and trials pass every check of `vaekit sweep run`
    (every grid point resolved), and nothing is written."""
    from vaekit.sweeps import make_plan

    header = path.read_text().splitlines()[0]
    assert header.startswith("# vaekit sweep run "), header
    words = shlex.split(header[2:])
    option = {name: words[words.index(name) + 1] for name in ("--space", "--config", "--sampler", "--trials")
              if name in words}
    assert option["--space"] == str(path.relative_to(ROOT))
    plan = make_plan(words[3], ROOT / option["--space"], tmp_path / "runs",
                     config_file=ROOT / option["--config"] if "--config" in option else None,
                     sampler=option.get("--sampler", "grid"),
                     trials=int(option["--trials"]) if "--trials" in option else None)
    assert plan.trials >= 1 and not (tmp_path / "runs").exists()
