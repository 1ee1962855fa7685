"""`vaekit train <domain>`: train a model into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vaekit.cli.common import RunsDirOption, cli_errors, console, err_console, integer, number
from vaekit.config import parse_set_option
from vaekit.errors import EXIT_INTERRUPTED


def _flag_layer(values: dict[str, object]) -> dict:
    """Nested config overrides from the flags that were given (None = not given)."""
    nested: dict = {}
    for dotted, value in values.items():
        if value is None:
            continue
        section, key = dotted.split(".")
        nested.setdefault(section, {})[key] = value
    return nested


@cli_errors
def train(
    domain: Annotated[str, typer.Argument(help="Data domain: arc, atari, ternary or gaussians.")],
    data: Annotated[Optional[Path], typer.Option(help="Corpus .npz (default: the domain's collect output).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config file.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Registered model name (see `vaekit models`).")] = None,
    latent: Annotated[Optional[int], typer.Option(parser=integer(), help="Latent dimension d.")] = None,
    epochs: Annotated[Optional[int], typer.Option(parser=integer(), help="Maximum epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(parser=integer(), help="Mini-batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(parser=number, help="Initial learning rate.")] = None,
    beta_schedule: Annotated[Optional[str], typer.Option(
        help="three_phase, linear_warmup, aggressive, constant, ultra_conservative or cyclical.")] = None,
    beta_max: Annotated[Optional[float], typer.Option(parser=number, help="Final (or peak) β of the schedule.")] = None,
    warmup_epochs: Annotated[Optional[int], typer.Option(parser=integer(), help="β warm-up length in epochs.")] = None,
    free_bits: Annotated[Optional[float], typer.Option(parser=number, help="Free bits, nats per latent dimension.")] = None,
    free_bits_mode: Annotated[Optional[str], typer.Option(help="per_sample or batch_mean.")] = None,
    recon_reduction: Annotated[Optional[str], typer.Option(help="sum (the ELBO) or mean over elements.")] = None,
    seed: Annotated[Optional[int], typer.Option(parser=integer(), help="Random seed, 0 or more (recorded in config.yaml).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    threads: Annotated[Optional[int], typer.Option(
        help="CPU threads; 0 = one per core (default; ternary: 1). Use 1 when other jobs share the cores: "
             "oversubscribed cores made epochs 3-20x slower.")] = None,
    precision: Annotated[Optional[str], typer.Option(
        help="auto (default: bf16 where the hardware runs it natively, else fp32), fp32, bf16 or fp16 (CUDA only).")] = None,
    compile_: Annotated[Optional[bool], typer.Option(
        "--compile/--no-compile", help="Compile the training step with torch.compile (costs time once).")] = None,
    tensorboard: Annotated[Optional[bool], typer.Option(
        "--tensorboard/--no-tensorboard", help="Write TensorBoard event files to RUN/logs/ (train.tensorboard).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any config field: section.key=value (repeatable).")] = None,
    run_id: Annotated[Optional[str], typer.Option(help="Run directory name (default: next run_NNN).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    resume: Annotated[bool, typer.Option(help="Continue --run-id from its checkpoints/last.pt.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run with the same --run-id.")] = False,
    progress: Annotated[bool, typer.Option(help="Show the live progress bar.")] = True,
):
    """Train a VAE on a domain's corpus; writes runs/<run_id>/ (config, metrics, checkpoints, results).

    Settings come from, lowest first: built-in defaults, the domain's defaults, --config YAML, the
    flags below, and --set. The resolved config is saved as config.yaml in the run directory.

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

    flags = _flag_layer({
        "data.path": str(data) if data else None, "model.name": model, "model.latent_dim": latent,
        "train.epochs": epochs, "train.batch_size": batch_size, "train.lr": lr,
        "beta.schedule": beta_schedule, "beta.max_beta": beta_max, "beta.warmup_epochs": warmup_epochs,
        "loss.free_bits": free_bits, "loss.free_bits_mode": free_bits_mode,
        "loss.recon_reduction": recon_reduction, "train.precision": precision, "train.compile": compile_,
        "train.tensorboard": tensorboard,
    })
    top = {k: v for k, v in {"seed": seed, "device": device, "threads": threads}.items() if v is not None}
    layers = [("command-line flags", {**flags, **top})]
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
