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
