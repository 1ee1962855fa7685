"""`vaekit sweep run|report|list`: a table of runs from one command, on Optuna (docs/sweeps.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from vaekit.cli.common import RunsDirOption, cli_errors, console, domain_help, err_console, integer
from vaekit.cli.output import JsonOption, print_json
from vaekit.errors import Interrupted

app = typer.Typer(help="Sweeps: many runs from one command, on one machine or many (Optuna; docs/sweeps.md).",
                  no_args_is_help=True)

StorageOption = Annotated[Optional[str], typer.Option(
    "--storage", help="Optuna storage: sqlite:///PATH (default: RUNS_DIR/sweeps.db), postgresql://..., "
                      "mysql://..., or journal:PATH (a journal file, e.g. on a shared filesystem).")]


@app.command("run")
@cli_errors
def run(
    domain: Annotated[str, typer.Argument(help=domain_help())],
    space: Annotated[Path, typer.Option("--space", help="SPACE.yaml: dotted config keys -> list, {low, high, "
                                        "log, step} or one_of (docs/sweeps.md).")],
    config: Annotated[Optional[Path], typer.Option("--config", help="Base YAML config of every trial.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field of every trial: "
                                                      "section.key=value (repeatable).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Corpus .npz (default: the config's or the domain's).")] = None,
    study: Annotated[Optional[str], typer.Option(help="Study name; run ids are <study>-tNNN "
                                                 "(default: the space file's name).")] = None,
    trials: Annotated[Optional[int], typer.Option(parser=integer(), help="Trials in the study (grid: the first N "
                                                  "points, default all, and a larger N later queues the next ones; "
                                                  "random and tpe: required).")] = None,
    sampler: Annotated[str, typer.Option(help="grid (every combination), random or tpe.")] = "grid",
    metric: Annotated[Optional[str], typer.Option(help="Validation metric the study optimises (default: the "
                                                  "domain's headline metric, e.g. arc pixel_accuracy). The "
                                                  "training objective is a config key: --set objective.name=btcvae "
                                                  "or an axis.")] = None,
    old_metric: Annotated[Optional[str], typer.Option("--objective", hidden=True,
                                                      help="The old spelling of --metric.")] = None,
    direction: Annotated[Optional[str], typer.Option(help="max or min (default: the metric's).")] = None,
    storage: StorageOption = None,
    workers: Annotated[int, typer.Option(parser=integer(), help="Trials at once on this machine, as separate "
                                         "processes; each gets max(1, cores // K) threads unless --set threads=N.")] = 1,
    prune: Annotated[bool, typer.Option(help="Stop unpromising trials early (Optuna's median pruner on the "
                                        "objective after each epoch); their runs are kept.")] = False,
    runs_dir: RunsDirOption = Path("runs"),
):
    """Run a sweep: one ordinary run directory per trial, trained like `vaekit train`.

    The whole space is checked before anything is written. Running the same command again continues
    the study (finished trials are kept, an interrupted one resumes from its last.pt); run it on other
    machines with the same --storage and --study to add workers.

    Examples:
      vaekit sweep run arc --space examples/sweeps/arc_fallback.yaml --config examples/configs/arc_quickstart.yaml
      vaekit sweep run arc --space examples/sweeps/arc_frontier.yaml --sampler tpe --trials 40 --prune
      vaekit sweep run sprites --space examples/sweeps/sprites_methods.yaml --metric pixel_accuracy
      vaekit sweep run ternary --space space.yaml --workers 2 --storage journal:/shared/sweeps.journal
    """
    from vaekit.sweeps import sweep

    if old_metric is not None:
        err_console.print("warning: sweep run --objective is now --metric (the metric the study optimises); "
                          "--objective still works for now. The training objective is the config key "
                          "objective.name (--set objective.name=NAME, or an axis).", markup=False, highlight=False)
        metric = metric or old_metric
    try:
        outcome = sweep(domain, space, runs_dir, console=console, config_file=config, set_options=set_,
                        data=data, study=study, trials=trials, sampler=sampler, objective=metric,
                        direction=direction, storage=storage, workers=workers, prune=prune)
    except Interrupted as error:
        err_console.print(f"Interrupted: {error}. Run the same command again to continue the study.", markup=False)
        raise typer.Exit(code=error.exit_code) from None
    counts = ", ".join(f"{n} {state}" for state, n in sorted(outcome.states.items()))
    console.print(f"Study [bold]{escape(outcome.study)}[/bold]: {counts}. "
                  f"Next: vaekit sweep report {escape(outcome.study)} --runs-dir {escape(str(runs_dir))}")
    if outcome.states.get("RUNNING"):
        from vaekit.sweeps.heartbeat import grace_seconds

        console.print(f"{outcome.states['RUNNING']} trial(s) RUNNING in other workers. A trial whose worker died "
                      f"is queued again by the next `sweep run` once its heartbeat has been silent for "
                      f"{grace_seconds()} s (database storages).", markup=False, highlight=False)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return escape(str(value))


@app.command("report")
@cli_errors
def report(
    name: Annotated[str, typer.Argument(help="Study name (see `vaekit sweep list`).")],
    runs_dir: RunsDirOption = Path("runs"),
    storage: StorageOption = None,
    json_output: Annotated[bool, JsonOption] = False,
    pareto: Annotated[Optional[str], typer.Option(help="Two test metrics, e.g. pixel_accuracy,kl: the trials "
                                                  "no other beats on both, and their plot.")] = None,
):
    """A row per trial sorted by the objective, with each varied key and the runs' test metrics;
    PNG plots of the objective against each key under RUNS_DIR/sweeps/<study>/.

    Examples:
      vaekit sweep report arc_fallback --runs-dir runs
      vaekit sweep report arc_fallback --pareto pixel_accuracy,kl --json
    """
    from vaekit.sweeps import sweep_report

    document = sweep_report(name, runs_dir, storage, pareto)
    if json_output:
        print_json(document)
        return
    console.print(_report_table(name, document, console.width))
    for trial in (t for t in document["trials"] if t["error"]):
        console.print(f"trial {trial['number']}: {trial['error']}", markup=False, highlight=False)
    if "pareto" in document:
        runs = ", ".join(t["run_id"] or str(t["number"]) for t in document["pareto"])
        console.print(f"Pareto front of {pareto}: {escape(runs)}")
    for file in document.get("plots", []):
        console.print(f"Plot: {escape(file)}")


def _report_table(name: str, document: dict, width: int) -> Table:
    """The report's table, fitted to ``width`` columns: the trial's number, state, run id and varied keys
    are never cut; test and training-split metrics that do not fit are left out, from the last, and
    the caption names them (--json has them all)."""
    # the training split once `vaekit eval RUN --split train` recorded it: generalisation against rate
    train = [document["objective"]] if any("train" in t["results"] for t in document["trials"]) else []
    trials = document["trials"]
    identity = [("#", [str(t["number"]) for t in trials]),
                ("state", [t["state"] for t in trials]),
                ("run", [_cell(t["run_id"]) for t in trials]),
                *[(key, [_cell(t["params"].get(key)) for t in trials]) for key in document["space"]],
                (f"val {document['objective']}", [_cell(t["value"]) for t in trials])]
    measured = [*[(f"test {m}", [_cell(t["results"].get("test", {}).get(m)) for t in trials])
                  for m in document["metrics"]],
                *[(f"train {m}", [_cell(t["results"].get("train", {}).get(m)) for t in trials]) for m in train]]
    kept, left_out = list(identity), []
    used = sum(_column_width(*column) for column in identity) + 1
    for column in measured:
        if used + _column_width(*column) <= width and not left_out:
            kept.append(column)
            used += _column_width(*column)
        else:
            left_out.append(column[0])
    caption = f"left out for width: {', '.join(left_out)} (--json or a wider terminal shows them)" \
        if left_out else None
    table = Table(title=f"Sweep {escape(name)} ({document['domain']}): {document['objective']}, "
                        f"{document['direction']}, {document['sampler']} sampler", caption=caption)
    for header, cells in kept:
        table.add_column(escape(_wrappable(header)), justify="left" if header in ("state", "run") else "right",
                         no_wrap=True)
    for row in zip(*(cells for _, cells in kept)):
        table.add_row(*row)
    return table


def _wrappable(header: str) -> str:
    """'test pixel_accuracy' → 'test' / 'pixel' / 'accuracy', one word a line: headers stay as narrow as
    their longest word, so that more columns fit."""
    return "\n".join(header.replace("_", " ").split())


def _column_width(header: str, cells: list[str]) -> int:
    """Characters a column takes in a rich table: its widest cell or header word, padding and a border."""
    return max([*map(len, cells), *map(len, _wrappable(header).splitlines())]) + 3


@app.command("list")
@cli_errors
def list_(
    runs_dir: RunsDirOption = Path("runs"),
    storage: StorageOption = None,
    json_output: Annotated[bool, JsonOption] = False,
):
    """The studies in a storage with their trial counts and best value.

    Examples:
      vaekit sweep list --runs-dir runs
      vaekit sweep list --storage postgresql://me@dbhost/sweeps --json
    """
    from vaekit.sweeps import list_studies

    document = list_studies(runs_dir, storage)
    if json_output:
        print_json(document)
        return
    table = Table(title=f"Studies in {escape(document['storage'])}")
    for column in ("study", "domain", "objective", "trials", "states", "best", "best run"):
        table.add_column(column)
    for s in document["studies"]:
        states = ", ".join(f"{n} {k}" for k, n in sorted(s["states"].items()))
        table.add_row(escape(s["study"]), _cell(s["domain"]), _cell(s["objective"]), str(s["trials"]),
                      states, _cell(s["best_value"]), _cell(s["best_run_id"]))
    console.print(table)
