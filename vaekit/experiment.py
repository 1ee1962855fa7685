"""The library functions the CLI calls: train a run, and reopen a finished one from its directory."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from vaekit.config import Config, ModelConfig, build_config, is_seed_style, load_yaml, save_config
from vaekit.corpus import SPLITS
from vaekit.disentanglement_eval import DisentanglementSettings, check_has_factors, disentanglement_metrics
from vaekit.domains import Domain, get_domain, picture_items
from vaekit.errors import VaekitError, VaekitUsageError
from vaekit.evaluation import evaluate
from vaekit.likelihood import DEFAULT_MAX_DECODES, likelihood_metrics
from vaekit.models import count_parameters, create_model
from vaekit.runs import RunDir
from vaekit.training.beta import beta_at, resolve_beta_config
from vaekit.training.device import apply_threads, caller_settings, resolve_device, to_device
from vaekit.training.distributed import Workers, join, leave, workers_from_environment
from vaekit.training.events import Callback
from vaekit.training.loop import fit
from vaekit.training.objective import objective_for_evaluation
from vaekit.training.precision import inference, inference_precision, resolve_precision
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
        all_layers.append((str(config_file), _from_seed_style(loaded, config_file)))
    all_layers += layers
    all_layers.append(("command", {"domain": domain_name}))
    config = build_config(all_layers)
    if not config.name and config_file is not None:
        config.name = Path(config_file).stem
    config.beta = resolve_beta_config(config.beta)
    check_run_config(config, domain)  # the one validation pass, before any file is written
    return config


def _from_seed_style(loaded: dict, config_file: Path) -> dict:
    """A flat seed-document file mapped onto our sections, one stderr line per key it mapped."""
    if not is_seed_style(loaded):
        return loaded
    from vaekit.seed_configs import translate  # only such files need the translator

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


def build_model(config: Config) -> torch.nn.Module:
    return create_model(config.model.name, config.model.latent_dim, config.model.options)


def split_tensors(domain: Domain, config: Config, device: torch.device) -> dict[str, torch.Tensor]:
    """Load the corpus and put its splits on the device. Model options the data implies (e.g. frame
    channels) are filled into ``config.model.options`` unless the config sets them."""
    corpus = domain.load(config.data.path)
    inferred = domain.infer_model_options(corpus)
    config.model.options = {**config.model.options, **{k: v for k, v in inferred.items() if k not in config.model.options}}
    return {k: to_device(v, device) for k, v in domain.training_arrays(corpus).items()}


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
    state = fit(run, config, model, domain, tensors, device, console, resume, show_progress, workers,
                extra_callbacks)
    if not workers.is_main:
        return run
    run.load_weights(model, "vae_best.pth", device)
    test_metrics = evaluate_split(model, domain, config, tensors, "test", state.best_epoch, run)
    record_results(run, "test", test_metrics, state.best_epoch)
    return run


def evaluate_split(model, domain: Domain, config: Config, tensors: dict, split: str, epoch: int,
                   run: RunDir | None = None) -> dict:
    """All metrics of a checkpoint on one split (β as at the checkpoint's epoch, the loss that of the
    run's objective with its state from ``run``'s last.pt), drawn from the run's seed with the run's
    thread count; the caller's random state and thread count are kept. What trivial answers score on
    the split (``Domain.baselines``) is under ``baselines`` where the domain has any."""
    device = tensors[split].device
    precision = inference_precision(config.train.precision, device)
    objective = objective_for_evaluation(config, model, tensors["train"].shape[0], device, run, epoch)
    with caller_settings(config.threads):
        torch.manual_seed(config.seed)
        metrics = evaluate(model, tensors[split], domain, config.loss, beta_at(max(epoch, 1), config.beta),
                           z_swap=True, precision=precision, objective=objective)
        with inference(precision, device):
            metrics.update(domain.extra_metrics(model, tensors, config, during_training=False))
            baselines = domain.baselines(tensors, split)
    if baselines:
        metrics["baselines"] = baselines
    return metrics


def results_name(checkpoint: str) -> str:
    """The results file of a checkpoint's evaluation: metrics.json for the best, else
    metrics_<checkpoint>.json, so that evaluating another checkpoint never replaces the best's."""
    return "metrics.json" if checkpoint == "best" else f"metrics_{checkpoint}.json"


def record_results(run: RunDir, split: str, metrics: dict, epoch: int, checkpoint: str = "best") -> Path:
    """Merge one split's metrics into the checkpoint's results file (other splits are kept)."""
    name = results_name(checkpoint)
    file = run.resolve_checkpoint(checkpoint)[0] if checkpoint != "best" else "vae_best.pth"
    results = run.read_results(name)
    results[split] = {"checkpoint": file, "epoch": epoch, **metrics}
    return run.write_results(results, name)


@dataclass
class LoadedRun:
    """A finished run rebuilt from its directory alone."""

    run: RunDir
    config: Config
    domain: Domain
    model: torch.nn.Module
    device: torch.device
    best_epoch: int  # the epoch of the loaded checkpoint (the best one unless --checkpoint chose another)
    checkpoint: str = "best"

    @property
    def results_dir(self) -> Path:
        """Where pictures of this checkpoint go: results/, or results/<checkpoint>/ for another than the best."""
        return self.run.results if self.checkpoint == "best" else self.run.results / self.checkpoint


def load_run(ref: str | Path, runs_dir: Path, device: str = "auto", checkpoint: str = "best") -> LoadedRun:
    """Rebuild a run's model from its directory with the weights of ``checkpoint`` (best, last or
    epoch_NNN; see ``RunDir.resolve_checkpoint``). Leaves torch's thread count alone (the functions
    that compute with the model set the run's own while they run)."""
    run = RunDir.find(ref, runs_dir)
    config = build_config([(str(run.config_path), load_yaml(run.config_path))])
    file, key, epoch = run.resolve_checkpoint(checkpoint)
    dev = resolve_device(device)
    with caller_settings():  # initialising the layers draws from the global random state
        model = build_model(config).to(dev)
    run.load_weights(model, file, dev, key=key)
    model.eval()
    return LoadedRun(run, config, get_domain(config.domain), model, dev, epoch, checkpoint)


def evaluate_run(ref: str | Path, runs_dir: Path, split: str = "test", device: str = "auto",
                 nll_samples: int = 0, nll_max_decodes: int = DEFAULT_MAX_DECODES,
                 on_progress: Callable[[int, int], None] | None = None,
                 checkpoint: str = "best", disentanglement: DisentanglementSettings | None = None,
                 ) -> tuple[LoadedRun, dict]:
    """Evaluate a run's checkpoint (the best by default) on a split and record it in
    results/metrics.json (results/metrics_<checkpoint>.json for another checkpoint).
    ``disentanglement`` adds MIG, DCI, SAP and the FactorVAE score (domains with known factors)."""
    if split not in SPLITS:
        raise VaekitUsageError(f"--split '{split}': expected one of {', '.join(SPLITS)}")
    loaded = load_run(ref, runs_dir, device, checkpoint)
    if disentanglement is not None:
        check_has_factors(loaded.domain)
    return loaded, evaluate_loaded(loaded, split, nll_samples, nll_max_decodes, on_progress, disentanglement)


def evaluate_loaded(loaded: LoadedRun, split: str = "test", nll_samples: int = 0,
                    nll_max_decodes: int = DEFAULT_MAX_DECODES,
                    on_progress: Callable[[int, int], None] | None = None,
                    disentanglement: DisentanglementSettings | None = None) -> dict:
    """All metrics of a loaded run on a split, recorded in results/metrics.json.

    Args:
        nll_samples: K > 0 adds the importance-sampled log-likelihood (IWAE) with K codes per item
            (``vaekit.likelihood.likelihood_metrics``).
        nll_max_decodes: codes decoded at once by the IWAE estimate (the memory cap).
        on_progress: called with (items done, items in all) while the IWAE estimate runs.
        disentanglement: adds the disentanglement metrics (``disentanglement_metrics``).
    """
    if nll_samples < 0:
        raise VaekitUsageError(f"--nll-samples {nll_samples}: expected 0 (off) or a positive count")
    if nll_max_decodes < 1:
        raise VaekitUsageError(f"--nll-batch {nll_max_decodes}: expected a positive count")
    with caller_settings(loaded.config.threads):
        tensors = split_tensors(loaded.domain, loaded.config, loaded.device)
        loaded.domain.prepare_model(loaded.model, loaded.config)
        if split not in tensors:
            raise VaekitUsageError(f"--split '{split}': expected one of {', '.join(tensors)}")
        metrics = evaluate_split(loaded.model, loaded.domain, loaded.config, tensors, split, loaded.best_epoch,
                                 loaded.run)
        if nll_samples:
            metrics.update(likelihood_metrics(loaded.model, tensors[split], nll_samples, loaded.config.seed,
                                              nll_max_decodes, on_progress))
        if disentanglement is not None:
            metrics.update(disentanglement_metrics(loaded, split, disentanglement))
    record_results(loaded.run, split, metrics, loaded.best_epoch, loaded.checkpoint)
    return metrics


def sample_run(ref: str | Path, runs_dir: Path, n: int = 64, seed: int | None = None,
               device: str = "auto", checkpoint: str = "best") -> tuple[LoadedRun, list[Path]]:
    """Write prior samples and test reconstructions of a run's checkpoint under results/ (under
    results/<checkpoint>/ for another checkpoint than the best)."""
    if n < 1:
        raise VaekitUsageError(f"-n {n}: need at least one sample")
    loaded = load_run(ref, runs_dir, device, checkpoint)
    corpus = loaded.domain.load(loaded.config.data.path)
    generator = torch.Generator().manual_seed(loaded.config.seed if seed is None else seed)
    with caller_settings(loaded.config.threads), \
            inference(inference_precision(loaded.config.train.precision, loaded.device), loaded.device):
        loaded.results_dir.mkdir(parents=True, exist_ok=True)
        files = loaded.domain.save_pictures(loaded.model, picture_items(corpus.arrays, "test"),
                                             loaded.results_dir, n, generator)
    return loaded, files
