"""`vaekit runs` and `vaekit models`: what is there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from vaekit.cli.common import RunsDirOption, cli_errors, console
from vaekit.cli.output import JsonOption, print_json


@cli_errors
def runs(
    runs_dir: RunsDirOption = Path("runs"),
    domain: Annotated[Optional[str], typer.Option(help="Only runs of this domain.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Only runs of this model.")] = None,
    sort: Annotated[str, typer.Option(
        help="run, latent, best_epoch, wall_seconds or a metric (e.g. pixel_accuracy).")] = "run",
    descending: Annotated[Optional[bool], typer.Option(
        "--descending/--ascending", help="Order (default: ascending run ids, highest metric first).")] = None,
    json_output: Annotated[bool, JsonOption] = False,
):
    """List the run directories under --runs-dir with their domain, model and progress.

    Metrics come from results/metrics.json (the test split), or the last epoch's validation metrics.
    A run that cannot be read is listed as unreadable, with the reason.

    Examples:
      vaekit runs --runs-dir runs
      vaekit runs --domain arc --sort pixel_accuracy
      vaekit runs --json
    """
    from vaekit.report import list_runs, summary_document

    listed = list_runs(runs_dir, domain, model, sort, descending)
    if json_output:
        print_json({"runs_dir": str(runs_dir), "sort": sort,
                    "runs": [summary_document(s) for s in listed]})
        return
    table = Table(title=f"Runs in {runs_dir}")
    columns = ["run", "domain", "model", "objective", "latent", "epochs", "best epoch"]
    by_metric = sort not in ("run", "latent", "best_epoch")
    for column in columns + ([sort] if by_metric else []):
        table.add_column(column, overflow="fold")
    for s in listed:
        if "error" in s:  # one broken run must not hide the rest
            table.add_row(s["run"], f"[red]unreadable: {escape(s['error'])}[/red]", *[""] * (len(table.columns) - 2))
            continue
        row = [s["run"], s["domain"], s["model"], s["objective"].split(" ")[0], str(s["latent"]), s["epochs"],
               str(s["best_epoch"] or "—")]
        if by_metric:
            value = s["wall_seconds"] if sort == "wall_seconds" else s["metrics"].get(sort)
            row.append("—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value))
        table.add_row(*row)
    console.print(table if listed else f"No runs in {runs_dir}.")


@cli_errors
def models(json_output: Annotated[bool, JsonOption] = False):
    """List the registered models, the domains each one can train on, their options (model.options),
    the training objectives with their keys (objective.*) and the domains; --json gives each option's
    and key's default.

    Example: vaekit models --json
    """
    from vaekit.domains import get_domain, list_domains
    from vaekit.models import MODELS, model_options
    from vaekit.objectives import OBJECTIVES, describe, takes_objective

    domains = [get_domain(name) for name in list_domains()]
    described = [{"name": name, "description": (MODELS.get(name).__doc__ or "").strip().splitlines()[0],
                  "domains": [d.name for d in domains if d.model_problem(MODELS.get(name)) is None],
                  "options": model_options(MODELS.get(name))}
                 for name in MODELS.names()]
    objectives = [{"name": name, "description": describe(name),
                   "keys": {key: declared.default for key, declared in OBJECTIVES.get(name).keys.items()},
                   "models": [m for m in MODELS.names() if takes_objective(m, name)]}
                  for name in OBJECTIVES.names()]
    if json_output:
        print_json({"models": described, "objectives": objectives, "domains": list_domains()})
        return
    table = Table(title="Registered models")
    table.add_column("name")
    table.add_column("domains")
    table.add_column("description")
    table.add_column("options")
    for entry in described:
        table.add_row(entry["name"], ", ".join(entry["domains"]) or "—", entry["description"],
                      ", ".join(entry["options"]))
    console.print(table)
    table = Table(title="Training objectives (--objective NAME, keys as --set objective.KEY=VALUE)")
    for column in ("name", "description", "keys (default)"):
        table.add_column(column)
    for entry in objectives:
        table.add_row(entry["name"], entry["description"],
                      ", ".join(f"{k} ({v})" for k, v in entry["keys"].items()) or "—")
    console.print(table)
    refusing = [m for m in MODELS.names() if not all(takes_objective(m, o["name"]) for o in objectives)]
    if refusing:
        console.print(f"Models that train only with elbo (no single diagonal-Gaussian posterior): {', '.join(refusing)}")
    console.print(f"Domains: {', '.join(list_domains())}")
