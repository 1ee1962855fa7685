"""`vaekit train <domain>`: train a model into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vaekit.cli.common import RunsDirOption, cli_errors, console, domain_help, err_console
from vaekit.cli.config_flags import with_config_flags
from vaekit.config import parse_set_option
from vaekit.errors import EXIT_INTERRUPTED


@cli_errors
@with_config_flags
def train(
    domain: Annotated[str, typer.Argument(help=domain_help())],
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config file.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any config field: section.key=value (repeatable).")] = None,
    run_id: Annotated[Optional[str], typer.Option(help="Run directory name (default: next run_NNN).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    resume: Annotated[bool, typer.Option(help="Continue --run-id from its checkpoints/last.pt.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run with the same --run-id.")] = False,
    progress: Annotated[bool, typer.Option(help="Show the live progress bar.")] = True,
    config_flags: dict | None = None,
):
    """Train a VAE on a domain's corpus; writes runs/<run_id>/ (config, metrics, checkpoints, results).

    Settings come from, lowest first: built-in defaults, the domain's defaults, --config YAML, the
    flags below, and --set. Each flag sets one config key (named in its help; docs/configuration.md
    lists them all). The resolved config is saved as config.yaml in the run directory.

    Examples:
      vaekit train arc --latent 10
      vaekit train arc --config examples/configs/arc_cyclical.yaml --set train.batch_size=256
      vaekit train arc --run-id run_007 --resume --epochs 80
      vaekit train arc --precision fp32 --compile   # full fp32; compiling measured no faster on 2 CPU cores
      vaekit train arc --tensorboard --set train.pictures_every=5   # then: tensorboard --logdir runs/
      torchrun --nproc_per_node=4 -m vaekit train arc   # data-parallel; --batch-size is per worker
    """
    from vaekit.experiment import train_run
    from vaekit.training.distributed import workers_from_environment

    layers = [("command-line flags", config_flags or {})]
    layers += [(f"--set {item}", parse_set_option(item)) for item in set_ or []]
    try:
        run = train_run(domain, config, layers, runs_dir, run_id, resume, overwrite, console, progress)
    except KeyboardInterrupt:
        err_console.print("Interrupted. Continue with --resume --run-id <run id> (last.pt holds the last "
                          "finished epoch).")
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    if not workers_from_environment().is_main:  # under torchrun the main worker speaks for all
        return
    console.print(f"Run written to [bold]{run.path}[/bold]. Next: vaekit eval {run.run_id} · "
                  f"vaekit sample {run.run_id} · vaekit report {run.run_id}")
