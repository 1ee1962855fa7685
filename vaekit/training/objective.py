"""The run's training objective: checked against the model before anything is written, built from
the config with what it needs to know of the run, and restored from last.pt for evaluation."""

from __future__ import annotations

import math

import torch

from vaekit.config import Config, objective_keys_set
from vaekit.errors import VaekitUsageError
from vaekit.objectives import OBJECTIVES, Objective, ObjectiveContext, check_model_takes, create_objective


def check_objective(config: Config, model_cls: type) -> None:
    """The model takes the objective, and the batch is as large as its estimates need (exit 2)."""
    name = config.objective.name  # its keys were checked by vaekit.config.validate as the layers applied
    check_model_takes(name, config.model.name, model_cls)
    smallest = OBJECTIVES.get(name).min_batch_size
    if config.train.batch_size < smallest:
        raise VaekitUsageError(f"train.batch_size {config.train.batch_size} is too small for objective '{name}': it "
                               f"estimates from the batch and needs at least {smallest}")


def build_objective(config: Config, latent_dim: int, dataset_size: int, shard_size: int | None = None) -> Objective:
    """The configured objective for a model of ``latent_dim`` trained on ``dataset_size`` items, of which
    this worker's share is ``shard_size`` (all of them by default)."""
    given = objective_keys_set(config)
    steps = math.ceil((shard_size or dataset_size) / config.train.batch_size)
    context = ObjectiveContext(latent_dim=latent_dim, dataset_size=dataset_size, steps_per_epoch=steps,
                               epochs=config.train.epochs, batch_size=config.train.batch_size)
    return create_objective(config.objective.name, given, context)


def objective_for_evaluation(config: Config, model, dataset_size: int, device: torch.device, run=None,
                             epoch: int = 0) -> Objective:
    """The objective a run trained with, as it stood at the end of ``epoch`` (the annealed capacity),
    with its own state (FactorVAE's discriminator) as ``run``'s last.pt has it, to score a trained
    model's loss as training did."""
    objective = build_objective(config, model.latent_dim, dataset_size).to(device)
    objective.before_step(epoch * objective.context.steps_per_epoch)
    if objective.state_dict() and run is not None and (run.checkpoints / "last.pt").is_file():
        saved = run.load_checkpoint("last.pt", device).get("step", {}).get("objective")
        if saved:
            objective.load_state_dict(saved)
    return objective.eval()
