"""The config fields' flags as Typer options, generated from ``vaekit.config_fields``.

``with_config_flags(command)`` gives a command one option per flagged config field (its help text is
the field's) and hands the command the flags that were given as a ``config_flags`` layer: a nested
dict of config overrides, exactly what ``--set`` would have produced.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from vaekit.config import set_dotted
from vaekit.config_fields import ConfigField, flagged_fields
from vaekit.option_parsers import integer, number

_PARSERS: dict[type, Callable[[str], Any]] = {int: integer(), float: number}


def _parameter_name(row: ConfigField) -> str:
    return "flag_" + row.key.replace(".", "_")


def _option(row: ConfigField) -> inspect.Parameter:
    """The Typer option of one field; None as default means 'not given' (the config layers decide)."""
    kind = row.value_type
    parser = _PARSERS.get(kind)
    option = typer.Option(row.flag, help=f"{row.help} [config: {row.key}]",
                          **({"parser": parser} if parser else {}))
    return inspect.Parameter(_parameter_name(row), inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[Optional[kind], option])


def flag_layer(given: dict[str, Any]) -> dict:
    """Nested config overrides from {dotted key: value} (None = flag not given)."""
    nested: dict = {}
    for dotted, value in given.items():
        if value is None:
            continue
        set_dotted(nested, dotted, value)
    return nested


def with_config_flags(command: Callable) -> Callable:
    """Add one option per flagged config field to ``command``, which must take a ``config_flags``
    keyword: it receives the nested overrides of the flags given."""
    rows = flagged_fields()
    own = [p for name, p in inspect.signature(command, eval_str=True).parameters.items() if name != "config_flags"]
    generated = [_option(row) for row in rows]
    keys = {_parameter_name(row): row.key for row in rows}

    @functools.wraps(command)
    def wrapper(**kwargs):
        given = {keys[name]: kwargs.pop(name) for name in list(kwargs) if name in keys}
        return command(**kwargs, config_flags=flag_layer(given))

    own_positional = [p for p in own if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    own_keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own
                   if p.kind is inspect.Parameter.KEYWORD_ONLY]
    # Typer lists options in signature order: the command's arguments, then the config fields' flags,
    # then the command's own options (--config, --set, --run-id ...).
    first = [p for p in own_positional if p.default is inspect.Parameter.empty]
    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own_positional if p not in first]
    parameters = first + generated + rest + own_keyword
    wrapper.__signature__ = inspect.Signature(parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__  # Typer must read the generated signature, not the command's own
    return wrapper
