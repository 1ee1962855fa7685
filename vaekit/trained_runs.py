"""Reopen a trained run from its directory alone: its model with a checkpoint's weights, its corpus
split onto the device, and what `eval` and `sample` compute from them (the metrics recorded in
results/, the pictures). Training a run is ``vaekit.experiment``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vaekit.config import Config, build_config, load_yaml
from vaekit.corpus import SPLITS
from vaekit.disentanglement_eval import DisentanglementSettings, check_has_factors, disentanglement_metrics
from vaekit.domains import Domain, get_domain, picture_items
from vaekit.errors import VaekitUsageError
from vaekit.evaluation import evaluate
from vaekit.likelihood import DEFAULT_MAX_DECODES, likelihood_metrics
from vaekit.models import create_model
from vaekit.runs import RunDir
from vaekit.training.beta import beta_at
from vaekit.training.device import caller_settings, resolve_device, to_device
from vaekit.training.objective import objective_for_evaluation
from vaekit.training.precision import inference, inference_precision


def build_model(config: Config) -> torch.nn.Module:
    return create_model(config.model.name, config.model.latent_dim, config.model.options)


def split_tensors(domain: Domain, config: Config, device: torch.device) -> dict[str, torch.Tensor]:
    """Load the corpus and put its splits on the device. Model options the data implies (e.g. frame
    channels) are filled into ``config.model.options`` unless the config sets them."""
    corpus = domain.load(config.data.path)
    inferred = domain.infer_model_options(corpus)
    config.model.options = {**config.model.options, **{k: v for k, v in inferred.items() if k not in config.model.options}}
    return {k: to_device(v, device) for k, v in domain.training_arrays(corpus).items()}


def evaluate_split(model, domain: Domain, config: Config, tensors: dict, split: str, epoch: int,
                   run: RunDir | None = None) -> dict:
    """All metrics of a checkpoint on one split (β as at the checkpoint's epoch, the loss that of the
    run's objective with its state from ``run``'s last.pt), drawn from the run's seed with the run's
    thread count; the caller's random state and thread count are kept. What the domain's trivial
    answers score on the split (``Domain.baselines``) is under ``baselines`` where it has any."""
    device = tensors[split].device
    precision = inference_precision(config.train.precision, device)
    objective = objective_for_evaluation(config, model, tensors["train"].shape[0], device, run, epoch)
    with caller_settings(config.threads):
        torch.manual_seed(config.seed)
        metrics = evaluate(model, tensors[split], domain, config.loss, beta_at(max(epoch, 1), config.beta),
                           z_swap=True, precision=precision, objective=objective, baselines=True)
        with inference(precision, device):
            metrics.update(domain.extra_metrics(model, tensors, config, during_training=False))
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
