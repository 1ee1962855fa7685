"""`vaekit runs` and `vaekit models`: what is there."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from vaekit.cli.common import RunsDirOption, cli_errors, console


@cli_errors
def runs(runs_dir: RunsDirOption = Path("runs")):
    """List the run directories under --runs-dir with their domain, model and progress.

    Example: vaekit runs --runs-dir runs
    """
    from vaekit.errors import VaekitError
    from vaekit.report import summarize_run
    from vaekit.runs import RunDir

    table = Table(title=f"Runs in {runs_dir}")
    for column in ("run", "domain", "model", "latent", "epochs", "best epoch"):
        table.add_column(column, overflow="fold")
    found = sorted(p for p in Path(runs_dir).glob("*") if (p / "config.yaml").is_file()) if Path(runs_dir).is_dir() else []
    for path in found:
        try:
            s = summarize_run(RunDir(path), with_parameters=False)
        except (VaekitError, OSError, ValueError) as error:  # one broken run must not hide the rest
            table.add_row(path.name, f"[red]unreadable: {error}[/red]", "", "", "", "")
            continue
        table.add_row(s["run"], s["domain"], s["model"], str(s["latent"]), s["epochs"],
                      str(s["best_epoch"] or "—"))
    console.print(table if found else f"No runs in {runs_dir}.")


@cli_errors
def models():
    """List the registered models, the domains each one can train on, and the domains.

    Example: vaekit models
    """
    from vaekit.domains import get_domain, list_domains
    from vaekit.models import MODELS

    domains = [get_domain(name) for name in list_domains()]
    table = Table(title="Registered models")
    table.add_column("name")
    table.add_column("domains")
    table.add_column("description")
    for name in MODELS.names():
        doc = (MODELS.get(name).__doc__ or "").strip().splitlines()[0]
        fits = [d.name for d in domains if d.model_problem(MODELS.get(name)) is None]
        table.add_row(name, ", ".join(fits) or "—", doc)
    console.print(table)
    console.print(f"Domains: {', '.join(list_domains())}")
