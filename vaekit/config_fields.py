"""One declaration, many surfaces: every config field as a row, read from the dataclasses of
``vaekit.config``.

A field is declared once, with its type, default, help text and (optionally) its command-line flag.
From these rows come the flags of `vaekit train` (``vaekit.cli.config_flags``), the keyword
arguments of ``vaekit.train`` (``keyword_paths``) and the tables of docs/configuration.md
(``vaekit.docs_gen``); a test checks that all three cover every field.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from vaekit.config import leaf_fields


@dataclass(frozen=True)
class ConfigField:
    """One settable config field.

    Attributes:
        key: the dotted key (``train.lr``; a top-level field without a dot), as `--set` and YAML use it.
        annotation: the field's type annotation (``int``, ``float | None``, ``dict`` ...).
        default: the dataclass default.
        help: the help text, shown in `--help`, the API docstring and docs/configuration.md.
        flag: the `vaekit train` flag (``--latent``; ``--compile/--no-compile`` for a switch), or "".
    """

    key: str
    annotation: Any
    default: Any
    help: str
    flag: str = ""

    @property
    def name(self) -> str:
        """The field's own name (the last part of the key)."""
        return self.key.rsplit(".", 1)[-1]

    @property
    def value_type(self) -> type:
        """The type of a value, Optional removed (``float | None`` -> float)."""
        args = [a for a in typing.get_args(self.annotation) if a is not type(None)]
        base = args[0] if args else self.annotation
        return typing.get_origin(base) or base

    @property
    def flag_names(self) -> list[str]:
        """Every spelling of the flag (``--compile/--no-compile`` -> both)."""
        return self.flag.split("/") if self.flag else []


def _row(key: str, f: dataclasses.Field, owner: type) -> ConfigField:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return ConfigField(key, typing.get_type_hints(owner)[f.name], default, f.metadata.get("help", ""),
                       f.metadata.get("flag", ""))


def config_fields() -> list[ConfigField]:
    """Every settable field of ``Config``, in declaration order (top level first, then each section)."""
    rows = [_row(*leaf) for leaf in leaf_fields()]
    return [r for r in rows if "." not in r.key] + [r for r in rows if "." in r.key]


def flagged_fields() -> list[ConfigField]:
    """The fields that have a `vaekit train` flag."""
    return [row for row in config_fields() if row.flag]


def keyword_paths() -> dict[str, str]:
    """The keyword arguments of ``vaekit.train``: each field's own name -> its dotted key, for every
    name that only one field has (a top-level field wins over a section field of the same name).
    Other fields are set with ``overrides={dotted key: value}``."""
    by_name: dict[str, list[str]] = {}
    for row in config_fields():
        by_name.setdefault(row.name, []).append(row.key)
    paths = {}
    for name, keys in by_name.items():
        top_level = [k for k in keys if "." not in k]
        if top_level or len(keys) == 1:
            paths[name] = (top_level or keys)[0]
    return paths


def ambiguous_keywords() -> dict[str, list[str]]:
    """Field names that several sections share (``options``): name -> their dotted keys."""
    by_name: dict[str, list[str]] = {}
    for row in config_fields():
        by_name.setdefault(row.name, []).append(row.key)
    unique = keyword_paths()
    return {name: keys for name, keys in by_name.items() if name not in unique}
