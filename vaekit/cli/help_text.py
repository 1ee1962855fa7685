"""`--help` as a reader meets it: paragraphs that reflow to any width, commands in the order of the
workflow, and flags without a value placeholder.

Docstrings are wrapped at 100 columns in the source; Typer's rich help keeps their line breaks, so
at 80 columns a sentence broke in the middle. ``reflow`` joins the lines of each prose paragraph and
keeps the lines of indented blocks (examples) as written.

Typer 0.29 shows a value placeholder after every option, ``<bool>`` after flags as well, although a
flag takes no value (``--json <bool>`` reads as if it wanted ``--json true``); ``show_no_placeholder_for_flags``
leaves the placeholder out for flags.
"""

from __future__ import annotations

import inspect

import typer
from typer.core import TyperGroup, TyperOption

# `vaekit --help` lists the commands in the order a user runs them.
WORKFLOW = ("collect", "train", "sweep", "eval", "sample", "encode", "traverse", "interpolate", "report", "runs",
            "models")


class WorkflowGroup(TyperGroup):
    """A command group that lists its commands in ``WORKFLOW`` order (others after, as registered)."""

    def list_commands(self, ctx) -> list[str]:
        names = list(self.commands)
        return sorted(names, key=lambda n: (WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW), names.index(n)))


def reflow(doc: str | None) -> str | None:
    """A docstring with each prose paragraph on one line (the terminal wraps it); a paragraph with an
    indented line after its first (an 'Examples:' block) keeps its breaks."""
    if not doc:
        return doc
    paragraphs = []
    for block in inspect.cleandoc(doc).split("\n\n"):
        lines = block.splitlines()
        verbatim = any(line.startswith((" ", "\t")) for line in lines[1:]) or lines[0].startswith(" ")
        paragraphs.append(block if verbatim else " ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def reflow_commands(app: typer.Typer) -> None:
    """Give every command of ``app`` and of its sub-apps its reflowed docstring as help, unless it
    has a help of its own."""
    for command in app.registered_commands:
        if command.help is None and command.callback is not None:
            command.help = reflow(command.callback.__doc__)
    for group in app.registered_groups:
        reflow_commands(group.typer_instance)


def show_no_placeholder_for_flags() -> None:
    """Make Typer's rich help print no type placeholder for a flag (an option that takes no value)."""
    placeholder = TyperOption.display_type_rich
    if getattr(placeholder, "leaves_out_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else placeholder(self, ctx)

    display_type_rich.leaves_out_flags = True
    TyperOption.display_type_rich = display_type_rich
