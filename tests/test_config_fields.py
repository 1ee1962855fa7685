"""One declaration, many surfaces: every config field is settable with --set, documented, and each
`vaekit train` flag sets exactly the key its field declares."""

from __future__ import annotations

from pathlib import Path

import json

import pytest
import typer.main

from typer.testing import CliRunner

from vaekit.api import keyword_layer
from vaekit.cli import app
from vaekit.config import build_config, dotted_keys, parse_set_option
from vaekit.config_fields import ambiguous_keywords, config_fields, flagged_fields, keyword_paths
from vaekit.objectives import key_declarations

DOCS = Path(__file__).resolve().parents[1] / "docs"

# A valid value other than the default for each field, where the default would not show the change.
DIFFERENT = {"domain": "ternary", "device": "cpu", "beta.schedule": "constant", "loss.recon_reduction": "mean",
             "loss.free_bits_mode": "batch_mean", "train.optimizer": "adamw", "train.lr_schedule": "multistep",
             "train.precision": "fp32", "train.nonfinite": "skip", "train.selection_metric": "pixel_accuracy",
             "train.lr_milestones": [3], "train.lr_values": [], "objective.name": "btcvae",
             "objective.sampling": "mss", "objective.variant": "ii", "objective.kernel": "rbf"}


def _objective_layer(key: str) -> list:
    """An objective.* key is valid only with an objective that declares it: choose the first such."""
    section, _, name = key.partition(".")
    if section != "objective" or name == "name":
        return []
    return [("--set", {"objective": {"name": next(iter(key_declarations(name)))}})]


def _value_for(row):
    if row.key in DIFFERENT:
        return DIFFERENT[row.key]
    kind = row.value_type
    if kind is bool:
        return not row.default
    if kind is int:
        return (row.default or 0) + 3
    if kind is float:
        return 0.25
    if kind is dict:
        return {"some_option": 1}
    if kind is list:
        return []
    return "something"


def _text(value) -> str:
    """A value as typed on a command line (YAML reads it back)."""
    return value if isinstance(value, str) else json.dumps(value)


def test_the_table_covers_every_config_key():
    assert sorted(row.key for row in config_fields()) == sorted(dotted_keys())


@pytest.mark.parametrize("row", config_fields(), ids=lambda row: row.key)
def test_every_field_can_be_set_with_set_and_is_documented(row):
    value = _value_for(row)
    config = build_config([*_objective_layer(row.key), ("--set", parse_set_option(f"{row.key}={_text(value)}"))])
    current = config
    for part in row.key.split("."):
        current = getattr(current, part)
    assert current == value or (isinstance(value, dict) and value.items() <= current.items())
    assert row.help, f"{row.key} has no help text"
    assert f"`{row.key}`" in (DOCS / "configuration.md").read_text()


def _train_command():
    group = typer.main.get_command(app)
    return group.get_command(None, "train")


def test_every_flag_names_one_field_and_sets_it(monkeypatch):
    flags = [name for row in flagged_fields() for name in row.flag_names]
    assert len(flags) == len(set(flags)), "two fields declare the same flag"
    seen = {}

    def capture(domain, config_file, layers, *args, **kwargs):
        seen["layers"] = layers
        raise SystemExit(0)

    monkeypatch.setattr("vaekit.experiment.train_run", capture)
    arguments, expected = ["train", "arc"], {}
    for row in flagged_fields():
        value = _value_for(row)
        arguments += [row.flag_names[0]] if row.value_type is bool else [row.flag_names[0], _text(value)]
        expected[row.key] = value
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    source, layer = seen["layers"][0]
    assert source == "command-line flags"
    assert dict(sorted(_leaves(layer).items())) == dict(sorted(expected.items()))


def _leaves(nested: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_flags_and_non_config_options_do_not_collide():
    command = _train_command()
    spellings = [opt for param in command.params for opt in [*param.opts, *param.secondary_opts]]
    assert len(spellings) == len(set(spellings))
    assert {"--config", "--set", "--run-id", "--resume", "--latent", "--compile", "--no-compile"} <= set(spellings)


def test_api_keywords_come_from_the_same_table():
    paths = keyword_paths()
    assert paths["epochs"] == "train.epochs" and paths["latent_dim"] == "model.latent_dim"
    assert paths["name"] == "name"  # the top-level field wins over model.name
    assert ambiguous_keywords() == {"options": ["data.options", "model.options", "loss.options"]}
    every = {name: 1 for name in paths}
    layer = keyword_layer(every)
    assert sorted(_flatten(layer)) == sorted(paths.values())


def _flatten(nested: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in nested.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in ("data.options", "model.options", "loss.options"):
            keys += _flatten(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys
