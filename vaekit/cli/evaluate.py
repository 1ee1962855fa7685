"""`vaekit eval RUN`: metrics of a run's best checkpoint on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vaekit.cli.common import CheckpointOption, DeviceOption, RunsDirOption, cli_errors, console, integer
from vaekit.cli.output import JsonOption, print_json
from vaekit.cli.progress import item_progress
from vaekit.errors import VaekitUsageError


@cli_errors
def evaluate(
    run: Annotated[str, typer.Argument(help="Run id under --runs-dir, or a path to a run directory.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    nll_samples: Annotated[int, typer.Option(
        parser=integer(),
        help="K > 0 adds the importance-sampled log-likelihood (IWAE bound) with K codes per item.")] = 0,
    nll_batch: Annotated[Optional[int], typer.Option(
        parser=integer(),
        help="Codes decoded at once by the IWAE estimate, to cap its memory (default 4096).")] = None,
    disentanglement: Annotated[bool, typer.Option(
        "--disentanglement",
        help="Add MIG, DCI, SAP and the FactorVAE score (domains whose items have known factors; docs/disentanglement.md).")] = False,
    factor_vae_votes: Annotated[int, typer.Option(
        parser=integer(0),
        help="FactorVAE training votes of 64 items each (evaluation: half; 0 leaves the score out).")] = 1000,
    dci_estimator: Annotated[str, typer.Option(
        help="DCI's classifiers: forest (seconds) or gbt (disentanglement_lib's; minutes).")] = "forest",
    json_output: Annotated[bool, JsonOption] = False,
    runs_dir: RunsDirOption = Path("runs"),
    device: DeviceOption = "auto",
    checkpoint: CheckpointOption = "best",
):
    """Evaluate a run's best checkpoint (or --checkpoint); prints the metric report and writes
    results/metrics.json (results/metrics_<checkpoint>.json for another than the best).

    The report opens with the domain's headline metrics against their targets (✓ or ✗, with the
    specification's advice when a target is missed), then the full table.

    Examples:
      vaekit eval run_001 --split test
      vaekit eval run_001 --nll-samples 100 --json
      vaekit eval run_001 --checkpoint epoch_040   # kept by train.checkpoint_every
      vaekit eval run_001 --disentanglement --json  # MIG, DCI, SAP, FactorVAE
    """
    from vaekit.disentanglement import DCI_ESTIMATORS
    from vaekit.disentanglement_eval import DisentanglementSettings
    from vaekit.trained_runs import evaluate_run, results_name
    from vaekit.likelihood import DEFAULT_MAX_DECODES
    from vaekit.report import evaluation_block, metrics_table, target_outcomes

    if dci_estimator not in DCI_ESTIMATORS:
        raise VaekitUsageError(f"--dci-estimator '{dci_estimator}': expected one of {', '.join(DCI_ESTIMATORS)}")
    settings = DisentanglementSettings(factor_vae_votes=factor_vae_votes, dci_estimator=dci_estimator) \
        if disentanglement else None
    with item_progress(f"IWAE, K={nll_samples}", show=nll_samples > 0) as advance:
        loaded, metrics = evaluate_run(run, runs_dir, split, device, nll_samples,
                                       DEFAULT_MAX_DECODES if nll_batch is None else nll_batch, advance,
                                       checkpoint, settings)
    if json_output:
        print_json({"run": loaded.run.run_id, "path": str(loaded.run.path), "domain": loaded.config.domain,
                    "model": loaded.config.model.name, "split": split, "metrics": metrics,
                    "targets": target_outcomes(metrics, loaded.domain)})
        return
    for line in evaluation_block(metrics, loaded.domain, split):
        console.print(line, markup=False, highlight=False)
    title = f"{loaded.run.run_id}: {loaded.config.model.name} on {loaded.config.domain} ({split}, {metrics['samples']:,} samples)"
    console.print(metrics_table(metrics, loaded.domain, title))
    console.print(f"Written to {loaded.run.results / results_name(checkpoint)}")
