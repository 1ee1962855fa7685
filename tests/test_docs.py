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
