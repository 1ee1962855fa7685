from pathlib import Path

from vaekit.docs_gen import configuration_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_reference_is_up_to_date():
    assert (DOCS / "configuration.md").read_text() == configuration_markdown(), (
        "docs/configuration.md is stale: run `python -m vaekit.docs_gen`")


def test_readme_test_command_is_what_ci_runs():
    root = DOCS.parent
    assert "make test" in (root / "README.md").read_text()
    assert "make test" in (root / ".ci" / "run").read_text()


def test_the_command_line_reference_is_generated_from_the_commands():
    from vaekit.cli_reference import cli_markdown

    assert (DOCS / "cli.md").read_text() == cli_markdown(), "docs/cli.md is stale: run `python -m vaekit.docs_gen`"


def test_vaekit_help_lists_the_commands_in_workflow_order_and_never_breaks_a_sentence():
    import re

    from typer.testing import CliRunner

    from vaekit.cli import app

    listing = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    order = [name for name in re.findall(r"│ (\w+) ", listing) if name in ("collect", "train", "sweep", "eval", "models")]
    assert order == ["collect", "train", "sweep", "eval", "models"]
    traverse = CliRunner().invoke(app, ["traverse", "--help"], env={"COLUMNS": "120"}).output
    assert "−SPAN to +SPAN" in traverse  # a source line break used to split this sentence


def test_flags_show_no_value_placeholder_in_help_and_options_keep_theirs():
    from typer.testing import CliRunner

    from vaekit.cli import app

    help_text = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "120"}).output
    rows = {line.split()[1]: line for line in help_text.splitlines() if line.startswith("│ --")}
    assert "<bool>" not in help_text and "<" not in rows["--json"]  # --json takes no value
    assert "<int>" in rows["--nll-samples"]


def test_every_flag_the_commands_guide_names_is_a_flag_of_that_command():
    """docs/commands.md is the guide around the generated reference (cli.md): a flag it documents in a
    command's table that the command does not take (renamed, removed) fails here."""
    import re

    import typer

    from vaekit.cli import app

    root = typer.main.get_command(app)
    sections = re.split(r"^## [^`\n]*`vaekit ([a-z]+(?: [a-z]+)?)(?=[ `])[^\n]*$", (DOCS / "commands.md").read_text(),
                        flags=re.M)
    checked = 0
    for name, body in zip(sections[1::2], sections[2::2]):
        command = root
        for part in name.split():
            command = command.commands[part] if part in getattr(command, "commands", {}) else command
        flags = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        documented = set(re.findall(r"^\| `(--?[\w-]+)", body, flags=re.M))
        assert documented <= flags, f"docs/commands.md, `vaekit {name}`: {sorted(documented - flags)} not in --help"
        checked += len(documented)
    assert checked > 30  # the tables were found
