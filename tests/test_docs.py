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
