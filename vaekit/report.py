"""Rich tables: one run's metric report, and several runs side by side (any mix of domains)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from vaekit.config import build_config, load_yaml
from vaekit.domains import DOMAINS, Domain, get_domain
from vaekit.errors import VaekitError, VaekitUsageError
from vaekit.metrics import COMMON
from vaekit.models import MODELS, count_parameters, create_model
from vaekit.runs import RunDir

MISSING = "—"
BATCHNORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

# Metrics every VAE has, shown after the domain's own (key, label, format): vaekit.metrics.COMMON.
COMMON_METRICS = [(m.key, m.label, m.fmt) for m in COMMON if m.headline]


def _format(value, fmt: str) -> str:
    if value is None:
        return MISSING
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def metric_rows(metrics: dict, domain: Domain) -> list[tuple[str, str]]:
    """(label, formatted value) rows for a metrics dict, the domain's metrics first."""
    rows = []
    for key, label, fmt in [*domain.headline_metrics, *COMMON_METRICS]:
        if key == "active_dims" and "active_dims" in metrics:
            rows.append((label, f"{metrics['active_dims']}/{metrics.get('latent_dim', '?')}"))
        elif key in metrics:
            rows.append((label, _format(metrics[key], fmt)))
    return rows


SPLIT_TITLES = {"test": "Test Set", "val": "Validation Set", "train": "Training Set"}
RULE = "━" * 32
LABEL_WIDTH = 22  # "Pixel-wise Accuracy:  92.3%": the value starts in column 23, as in the ARC spec


def _block_line(label: str, value: str, mark: str = "") -> str:
    return f"{label + ':':<{LABEL_WIDTH - 2}}  {value}" + (f"  {mark}" if mark else "")


def evaluation_block(metrics: dict, domain: Domain, split: str) -> list[str]:
    """The metric report of the ARC specification, for any domain: the domain's targets (✓ or ✗),
    the mean KL per dimension, the active dimensions, the IWAE bound when it was computed, then
    the specification's advice for every missed target's band."""
    lines = [f"{SPLIT_TITLES.get(split, split)} Evaluation ({metrics['samples']:,} {domain.item_noun}):", RULE]
    for target in domain.targets:
        value = metrics.get(target.metric)
        met = target.met(value)
        lines.append(_block_line(target.label, _format(value, target.fmt), {True: "✓", False: "✗"}.get(met, "")))
    lines += baseline_lines(metrics, domain)
    lines.append(_block_line("Mean KL Divergence", _format(metrics.get("kl_mean"), "{:.2f}")))
    lines.append(_block_line("Active Dimensions", f"{metrics.get('active_dims', MISSING)}/{metrics.get('latent_dim', '?')}"))
    if "iwae_log_likelihood" in metrics:
        per_dim = metrics.get("iwae_bits_per_dim")
        unit = f" ({per_dim:.4f} bits/dim)" if per_dim is not None else " (unnormalised: up to a constant)"
        lines.append(_block_line(f"log p(x) ≥ IWAE, K={metrics['iwae_samples']}",
                                 f"{metrics['iwae_log_likelihood']:.3f} nats{unit}"))
        lines.append(_block_line("ELBO, same samples", f"{metrics['iwae_elbo']:.3f} nats"))
    lines.append(RULE)
    for target in domain.targets:
        advice = target.advice(metrics.get(target.metric), metrics)
        if advice:
            bound = _format(target.threshold, target.fmt)
            lines.append(f"{target.label} misses the target ({'≥' if target.higher_is_better else '≤'} {bound}). "
                         f"Advice: {advice}")
    return lines + further_lines(metrics, domain)


def baseline_lines(metrics: dict, domain: Domain) -> list[str]:
    """In the block, under the targets: one line per baseline (``Domain.baselines``; the mean training
    frame) with its figures on the targets not repeated beneath the block (there they stand beside it)."""
    shown = [t for t in domain.targets if not t.repeated_beneath]
    lines = []
    for name, scores in metrics.get("baselines", {}).items():
        figures = [f"{t.label} {_format(scores[t.metric], t.fmt)}" for t in shown if t.metric in scores]
        if figures:
            lines.append(_block_line(f"  {name}", " · ".join(figures)))
    return lines


def further_lines(metrics: dict, domain: Domain) -> list[str]:
    """Beneath the seed's block: its targets repeated there, then the further targets with ✓ or ✗, each
    beside the baselines' figures (ARC: the all-background answer's 83 %, 0 %, its exact grids)."""
    shown = [(t, "") for t in domain.targets if t.repeated_beneath]  # their ✓ or ✗ is in the block above
    shown += [(t, {True: "✓", False: "✗"}.get(t.met(metrics.get(t.metric)), "")) for t in domain.further_targets]
    if not shown:
        return []
    names = list(metrics.get("baselines", {}))
    width = max(len(t.label) for t, _ in shown) + 3
    lines = [f"Beside the {' and the '.join(names)} answer{'s' if len(names) > 1 else ''}:" if names
             else "Further figures:"]
    for target, mark in shown:
        notes = [f"{name} {_format(value, target.fmt)}" for name, value in target.baselines(metrics).items()]
        if mark:
            notes.append(f"target {'≥' if target.higher_is_better else '≤'} {_format(target.threshold, target.fmt)}")
        line = f"{target.label + ':':<{width}}{_format(metrics.get(target.metric), target.fmt):>7}  {mark:1}"
        lines.append(f"{line}  ({'; '.join(notes)})" if notes else line.rstrip())
    return lines


def target_outcomes(metrics: dict, domain: Domain) -> list[dict]:
    """Each declared target's value, threshold, ✓/✗ (``met``), advice and baseline, for --json: the
    seed block's targets, then the further ones."""
    return [target.outcome(metrics) for target in [*domain.targets, *domain.further_targets]]


def metrics_table(metrics: dict, domain: Domain, title: str) -> Table:
    table = Table(title=title)
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for label, value in metric_rows(metrics, domain):
        table.add_row(label, value)
    return table


def trained_parameter_count(run: RunDir, config) -> int:
    """Parameters of the run's model, counted from its best checkpoint when there is one (so a
    default changed since the run does not change the count)."""
    model = create_model(config.model.name, config.model.latent_dim, config.model.options)
    if not (run.checkpoints / "vae_best.pth").is_file():
        return count_parameters(model)
    buffer_names = {name for name, _ in model.named_buffers()}
    weights = run.load_checkpoint("vae_best.pth")
    return sum(t.numel() for name, t in weights.items()
               if name not in buffer_names and not name.endswith(BATCHNORM_BUFFERS))


def summarize_run(run: RunDir, with_parameters: bool = True) -> dict:
    """The facts `report` shows for one run, read from its directory alone. Counting parameters
    builds the model; listings that do not show them skip it."""
    config = build_config([(str(run.config_path), load_yaml(run.config_path))])
    domain = get_domain(config.domain)
    records = run.read_metrics()
    results = run.read_results()
    split = "test" if "test" in results else next(iter(results), None)
    metrics = dict(results[split]) if split else {}
    if not metrics and records:
        last = records[-1]
        metrics = {k[len("val_"):]: v for k, v in last.items() if k.startswith("val_")}
        metrics["active_dims"] = last.get("active_dims")
        metrics["latent_dim"] = len(last.get("kl_per_dim", []))
        split = "val (last epoch)"
    finite = [r for r in records if isinstance(r.get("val_loss"), (int, float))]  # non-finite losses are null
    best = min(finite, key=lambda r: r["val_loss"]) if finite else {}
    state = run.train_state()
    parameters = trained_parameter_count(run, config) if with_parameters else None
    sessions = run.read_provenance()
    made = sessions[0] if sessions else {}
    beta = config.beta
    return {
        "run": run.run_id,
        "name": config.name or MISSING,
        "domain": config.domain,
        "model": config.model.name,
        "latent": config.model.latent_dim,
        "model_options": ", ".join(f"{k}={v}" for k, v in config.model.options.items()) or "none",
        "parameters": parameters,
        "objective": objective_summary(config),
        "beta": f"{beta.schedule} (max {beta.max_beta:g})",
        "free_bits": f"{config.loss.free_bits:g} ({config.loss.free_bits_mode})" if config.loss.free_bits else "off",
        "recon_reduction": config.loss.recon_reduction,
        "epochs": f"{len(records)}/{config.train.epochs}",
        "best_epoch": best.get("epoch"),
        "checkpoint_epoch": f"{state['best_epoch']} (by {config.train.selection_metric})" if state else None,
        "wall_seconds": sum(r.get("seconds", 0) for r in records),
        "versions": f"vaekit {made['vaekit']}, torch {made['torch']}" if made else None,
        "git_commit": made.get("git_commit"),
        "device": f"{made['device']} ({made['precision']})" if made else None,
        "command": made.get("command"),
        "resumed": len(sessions) - 1 if sessions else None,
        "split": split,
        "metrics": metrics,
        "domain_obj": domain,
    }


def objective_summary(config) -> str:
    """The objective and its keys' values, e.g. 'btcvae (alpha=1, beta=6, gamma=1, sampling=mws)'."""
    from vaekit.config import objective_options

    options = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in objective_options(config).items() if v is not None)
    return f"{config.objective.name} ({options})" if options else config.objective.name


SUMMARY_ROWS = [("name", "Experiment"), ("domain", "Domain"), ("model", "Model"), ("latent", "Latent d"),
                ("model_options", "Model options"), ("parameters", "Parameters"),
                ("objective", "Objective"), ("beta", "β schedule"), ("free_bits", "Free bits"), ("recon_reduction", "Recon reduction"),
                ("epochs", "Epochs run"), ("best_epoch", "Best epoch (val loss)"),
                ("checkpoint_epoch", "Checkpoint epoch"),
                ("wall_seconds", "Wall time"), ("versions", "Trained with"), ("git_commit", "Git commit"),
                ("device", "Device (precision)"), ("command", "Command"), ("resumed", "Resumed (times)"),
                ("split", "Metrics split")]


def _summary_value(summary: dict, key: str) -> str:
    value = summary.get(key)
    if key == "parameters" and value is not None:
        return f"{value:,}"
    if key == "wall_seconds" and value is not None:
        return f"{value / 60:.1f} min" if value >= 120 else f"{value:.1f} s"
    return MISSING if value is None else str(value)


def report_table(summaries: list[dict]) -> Table:
    """One column per run; the rows are the config summary then every metric any run has."""
    title = f"Run {summaries[0]['run']}" if len(summaries) == 1 else "Runs side by side"
    table = Table(title=title)
    table.add_column("")
    for summary in summaries:
        table.add_column(summary["run"], justify="right")
    for key, label in SUMMARY_ROWS:
        table.add_row(label, *[_summary_value(s, key) for s in summaries])
    table.add_section()
    labels: list[str] = []
    per_run = []
    for summary in summaries:
        rows = dict(metric_rows(summary["metrics"], summary["domain_obj"]))
        per_run.append(rows)
        labels += [label for label in rows if label not in labels]
    for label in labels:
        table.add_row(label, *[rows.get(label, MISSING) for rows in per_run])
    return table


def find_runs(refs: list[str], runs_dir: Path) -> list[RunDir]:
    return [RunDir.find(ref, runs_dir) for ref in refs]


SORTABLE_FACTS = ("run", "latent", "best_epoch", "wall_seconds")


def summary_document(summary: dict) -> dict:
    """A run summary without its Domain object and with null for missing values, for --json."""
    return {key: None if value == MISSING else value for key, value in summary.items() if key != "domain_obj"}


def _sort_value(summary: dict, key: str):
    return summary.get(key) if key in SORTABLE_FACTS else summary["metrics"].get(key)


def list_runs(runs_dir: Path, domain: str | None = None, model: str | None = None, sort: str = "run",
              descending: bool | None = None) -> list[dict]:
    """Summaries of the runs under ``runs_dir``, filtered and sorted (what `vaekit runs` lists).

    A run that cannot be read becomes ``{"run": name, "error": message}``; such entries are kept
    (first) when no filter is given, so one broken run never hides the others.

    Args:
        domain, model: keep only runs of this domain / model (a registered name).
        sort: ``run`` (the id), ``latent``, ``best_epoch``, ``wall_seconds`` or any metric key of
            results/metrics.json (e.g. ``pixel_accuracy``); runs without it go last.
        descending: the order; None means ascending for the run id and descending (highest first)
            for everything else.
    """
    if domain is not None:
        DOMAINS.get(domain)
    if model is not None:
        MODELS.get(model)
    runs_dir = Path(runs_dir)
    found = sorted(p for p in runs_dir.glob("*") if (p / "config.yaml").is_file()) if runs_dir.is_dir() else []
    summaries, broken = [], []
    for path in found:
        try:
            summaries.append(summarize_run(RunDir(path), with_parameters=False))
        except (VaekitError, OSError, ValueError) as error:  # e.g. a damaged checkpoint or config.yaml
            broken.append({"run": path.name, "error": str(error)})
    summaries = [s for s in summaries if (domain is None or s["domain"] == domain)
                 and (model is None or s["model"] == model)]
    if sort not in SORTABLE_FACTS and summaries and all(_sort_value(s, sort) is None for s in summaries):
        known = sorted({key for s in summaries for key, value in s["metrics"].items()
                        if isinstance(value, (int, float)) and not isinstance(value, bool)})
        raise VaekitUsageError(f"--sort '{sort}': no listed run has it; sort by one of "
                               f"{', '.join([*SORTABLE_FACTS, *known])}")
    descending = (sort != "run") if descending is None else descending
    present = [s for s in summaries if _sort_value(s, sort) is not None]
    present.sort(key=lambda s: _sort_value(s, sort), reverse=descending)
    missing = [s for s in summaries if _sort_value(s, sort) is None]
    return (broken if domain is None and model is None else []) + present + missing
