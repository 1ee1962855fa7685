"""Train a run: resolve its config, refuse what cannot resume, make the run directory, train, and
evaluate the best checkpoint on the test split. Reopening a trained run is ``vaekit.trained_runs``."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from rich.console import Console

from vaekit.config import Config, ModelConfig, build_config, is_spec_style, load_yaml, save_config
from vaekit.domains import get_domain
from vaekit.errors import VaekitError, VaekitUsageError
from vaekit.models import count_parameters
from vaekit.runs import RunDir
from vaekit.trained_runs import build_model, evaluate_split, record_results, split_tensors
from vaekit.training.beta import resolve_beta_config
from vaekit.training.device import apply_threads, caller_settings, resolve_device
from vaekit.training.distributed import Workers, join, leave, workers_from_environment
from vaekit.training.events import Callback
from vaekit.training.loop import fit
from vaekit.training.precision import resolve_precision
from vaekit.training.resume import resume_refusal
from vaekit.validation import check_fits_data, check_run_config


def resolve_config(domain_name: str, config_file: Path | None, layers: list[tuple[str, dict]]) -> Config:
    """Domain defaults, then the YAML file, then CLI layers; β parameters filled from the schedule."""
    domain = get_domain(domain_name)
    all_layers = [(f"domain '{domain_name}' defaults", domain.default_config())]
    if config_file is not None:
        loaded = load_yaml(config_file)
        if loaded.get("domain", domain_name) != domain_name:
            raise VaekitUsageError(
                f"{config_file}: domain is '{loaded['domain']}' but the command trains '{domain_name}'")
        all_layers.append((str(config_file), _from_spec_style(loaded, config_file)))
    all_layers += layers
    all_layers.append(("command", {"domain": domain_name}))
    config = build_config(all_layers)
    if not config.name and config_file is not None:
        config.name = Path(config_file).stem
    config.beta = resolve_beta_config(config.beta)
    check_run_config(config, domain)  # the one validation pass, before any file is written
    return config


def _from_spec_style(loaded: dict, config_file: Path) -> dict:
    """A flat specification-document file mapped onto our sections, one stderr line per key it mapped."""
    if not is_spec_style(loaded):
        return loaded
    from vaekit.spec_configs import translate  # only such files need the translator

    nested, lines = translate(loaded, str(config_file))
    for line in lines:
        print(f"{config_file}: {line}", file=sys.stderr)
    return nested


def check_resumable(run: RunDir, previous: ModelConfig, config: Config, model: torch.nn.Module,
                    world_size: int = 1) -> None:
    """Refuse a --resume whose settings describe another model than the one in the run's last.pt
    (the error names the setting and both values), whose metrics.jsonl or steps.jsonl is damaged
    before its last line, or that would continue a mid-epoch last.pt with another batch size or
    number of workers (``vaekit.training.resume.resume_refusal``). Loads last.pt's weights into
    ``model``."""
    for log in (run.metrics_path, run.steps_path):  # fit() rewrites them: a bad line stops us before config.yaml
        run.read_metrics(quiet=True, path=log)
    for key in ("name", "latent_dim"):
        was, now = getattr(previous, key), getattr(config.model, key)
        if was != now:
            raise VaekitUsageError(f"cannot resume run '{run.run_id}': model.{key}: the run has {was!r}, "
                                   f"the command asks for {now!r}")
    try:
        run.load_weights(model, "last.pt", next(model.parameters()).device, key="model")
    except VaekitUsageError:
        options = sorted(set(previous.options) | set(config.model.options))
        changed = [f"model.options.{k}: the run has {previous.options.get(k)!r}, the command asks for "
                   f"{config.model.options.get(k)!r}" for k in options
                   if previous.options.get(k) != config.model.options.get(k)]
        if changed:
            raise VaekitUsageError(f"cannot resume run '{run.run_id}': {'; '.join(changed)} (the run's weights do "
                                   "not fit that model)") from None
        raise
    refusal = resume_refusal(run.load_checkpoint("last.pt"), config, world_size)
    if refusal:
        raise VaekitUsageError(f"cannot resume run '{run.run_id}': {refusal}")


def train_run(domain_name: str, config_file: Path | None, layers: list[tuple[str, dict]], runs_dir: Path,
              run_id: str | None = None, resume: bool = False, overwrite: bool = False,
              console: Console | None = None, show_progress: bool = True,
              extra_callbacks: list[Callback] | None = None) -> RunDir:
    """Train a model for a domain into a run directory, then evaluate it on the test split.

    With ``resume`` the run's saved config is the base and ``layers`` (e.g. a larger --epochs) apply
    on top of it. Under torchrun every worker runs this; the main worker makes and writes the run
    directory (see ``vaekit.training.distributed``). ``extra_callbacks`` subscribe to the loop's
    events after the configured ones (e.g. a sweep's pruner). The caller's torch thread count and
    global random state are given back.
    """
    workers = workers_from_environment()
    try:
        with caller_settings():
            return _train_run(domain_name, config_file, layers, runs_dir, run_id, resume, overwrite,
                              console if workers.is_main else None, show_progress, workers, extra_callbacks or [])
    finally:
        leave(workers)


def _create_run_on_main(workers: Workers, runs_dir: Path, run_id: str | None, overwrite: bool) -> RunDir:
    """The main worker creates the run directory (refusing an existing one) and tells the others."""
    outcome, refusal = None, None
    if workers.is_main:
        try:
            outcome = ("created", str(RunDir.create(runs_dir, run_id, resume=False, overwrite=overwrite).path))
        except VaekitError as error:
            outcome, refusal = ("refused", error.exit_code), error
    kind, value = workers.main_decides(outcome)
    if kind == "refused":
        if workers.is_main:
            raise refusal
        raise SystemExit(value)  # the main worker reports it
    return RunDir(Path(value))


def _train_run(domain_name, config_file, layers, runs_dir, run_id, resume, overwrite, console, show_progress,
               workers: Workers, extra_callbacks: list[Callback]) -> RunDir:
    console = console or Console(quiet=True)
    if resume:
        if config_file is not None:
            raise VaekitUsageError("--config cannot be combined with --resume: the run's config.yaml is used "
                                   "(flags and --set still apply on top of it)")
        run = RunDir.create(runs_dir, run_id, resume=True, overwrite=False)  # writes nothing yet
        saved = load_yaml(run.config_path)
        if saved.get("domain") != domain_name:
            raise VaekitUsageError(f"run '{run.run_id}' trained domain '{saved.get('domain')}', not '{domain_name}'")
        previous = build_config([(str(run.config_path), saved)]).model
        config = resolve_config(domain_name, None, [(str(run.config_path), saved), *layers])
    else:
        config = resolve_config(domain_name, config_file, layers)
    domain = get_domain(domain_name)
    device = join(workers, resolve_device(config.device))
    config.train.precision = resolve_precision(config.train.precision, device)  # 'auto' is saved resolved
    apply_threads(config.threads)
    tensors = split_tensors(domain, config, device)  # every split checked before a run directory is made
    check_fits_data(config, tensors["train"], device, config.train.precision)
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    domain.prepare_model(model, config)
    if resume:
        check_resumable(run, previous, config, model, workers.world_size)  # before config.yaml is rewritten
        if workers.is_main:
            run.reopen()
    else:
        run = _create_run_on_main(workers, runs_dir, run_id, overwrite)
    if workers.is_main:
        save_config(config, run.config_path)
    on_workers = f" on each of {workers.world_size} workers" if workers.distributed else ""
    console.print(f"[bold]{run.run_id}[/bold]: {config.model.name} (d={config.model.latent_dim}, "
                  f"{count_parameters(model):,} parameters) on {domain_name}, "
                  f"{tensors['train'].shape[0]:,} training samples, device {device}{on_workers}")
    state = fit(run, config, model, domain, tensors, device, resume=resume, workers=workers, console=console,
                show_progress=show_progress, extra_callbacks=extra_callbacks)
    if not workers.is_main:
        return run
    run.load_weights(model, "vae_best.pth", device)
    test_metrics = evaluate_split(model, domain, config, tensors, "test", state.best_epoch, run)
    record_results(run, "test", test_metrics, state.best_epoch)
    return run
