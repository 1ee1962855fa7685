"""What a sweep found: its trials with their values and their runs' evaluations, plots, the Pareto
front of two test metrics, and the studies a storage holds."""

from __future__ import annotations

import math
from pathlib import Path

import optuna

from vaekit.domains import Domain, get_domain
from vaekit.errors import VaekitUsageError, unknown_name_error
from vaekit.sweeps.heartbeat import grace_seconds
from vaekit.sweeps.objective import metric_direction
from vaekit.sweeps.storage import open_storage, storage_errors, storage_url
from vaekit.sweeps.study import SETTINGS_ATTR
from vaekit.sweeps.trial import run_of

KL_METRIC = "kl"  # every domain's evaluation has it: the rate, in nats


def main_metrics(domain_name: str) -> list[str]:
    """The metrics a sweep's table shows of each run's evaluation: the domain's ``table_metrics``
    (else its first two headline metrics), and the KL in nats."""
    domain = get_domain(domain_name)
    return [*(domain.table_metrics or [key for key, _, _ in domain.headline_metrics[:2]]), KL_METRIC]


def _load(name: str, runs_dir: Path, storage: str | None) -> tuple[optuna.Study, dict, str]:
    url = storage_url(storage, runs_dir)
    backend = open_storage(url, create=False)
    names = [s.study_name for s in optuna.get_all_study_summaries(backend, include_best_trial=False)]
    if name not in names:
        raise unknown_name_error("study", name, names) if names else \
            VaekitUsageError(f"no studies in {url}")
    study = optuna.load_study(study_name=name, storage=backend)
    return study, study.user_attrs.get(SETTINGS_ATTR, {}), url


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def failure_reason(frozen: optuna.trial.FrozenTrial, retry: optuna.trial.FrozenTrial | None) -> str | None:
    """Why a FAIL trial failed: its recorded error, else what the study shows (a worker that went silent,
    a retry); None for other states."""
    if frozen.state != optuna.trial.TrialState.FAIL:
        return None
    if frozen.user_attrs.get("error"):
        return frozen.user_attrs["error"]
    if retry is not None and retry.user_attrs.get("lost_worker"):
        return f"its worker went silent (no heartbeat for {grace_seconds()} s); queued again as trial {retry.number}"
    if retry is not None:
        return f"failed from outside (not by its values); queued again as trial {retry.number}"
    return "failed without a recorded reason (its worker stopped, or another tool failed it)"


def _trial_row(frozen: optuna.trial.FrozenTrial, retry: optuna.trial.FrozenTrial | None, runs_dir: Path,
               metrics: list[str]) -> dict:
    run = run_of(runs_dir, frozen)
    # a trial that was queued again shares its run directory with its retry: the results are the retry's
    results = run.read_results() if run and retry is None and not frozen.user_attrs.get("interrupted") else {}
    return {"number": frozen.number, "state": frozen.state.name, "params": frozen.params,
            "value": _finite(frozen.value) if frozen.values else None,
            "run_id": frozen.user_attrs.get("run_id"), "error": failure_reason(frozen, retry),
            "results": {split: {m: results[split].get(m) for m in metrics if m in results[split]}
                        for split in ("test", "val", "train") if split in results}}


def pareto_front(rows: list[dict], x: str, y: str, domain: Domain) -> list[dict]:
    """The trials no other trial beats on both test metrics (in their declared directions)."""
    sign = {m: 1.0 if metric_direction(domain, m) == "max" else -1.0 for m in (x, y)}
    scored = [(r, sign[x] * r["results"]["test"][x], sign[y] * r["results"]["test"][y]) for r in rows
              if _finite(r["results"].get("test", {}).get(x)) is not None
              and _finite(r["results"].get("test", {}).get(y)) is not None]
    return [r for r, a, b in scored
            if not any(a2 >= a and b2 >= b and (a2 > a or b2 > b) for _, a2, b2 in scored)]


def _plots(document: dict, out: Path, pareto: tuple[str, str] | None) -> list[str]:
    from vaekit.plots import objective_against, pareto_plot

    out.mkdir(parents=True, exist_ok=True)
    scored = [t for t in document["trials"] if t["value"] is not None]
    files = []
    for key in document["space"]:
        rows = [t for t in scored if key in t["params"]]
        if rows:
            path = out / f"{document['objective']}_vs_{key}.png"
            files.append(objective_against([t["params"][key] for t in rows], [t["value"] for t in rows], path, key,
                                           f"val {document['objective']}", [t["state"] for t in rows]))
    if pareto:
        x, y = pareto
        rows = [t for t in document["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
        points = [(t["results"]["test"][x], t["results"]["test"][y], t["run_id"]) for t in rows
                  if _finite(t["results"].get("test", {}).get(x)) is not None
                  and _finite(t["results"].get("test", {}).get(y)) is not None]
        front = [(t["results"]["test"][x], t["results"]["test"][y], t["run_id"]) for t in document["pareto"]]
        if points:
            files.append(pareto_plot(points, front, out / f"pareto_{x}_{y}.png", f"test {x}", f"test {y}"))
    return [str(f) for f in files]


def parse_pareto(text: str | None) -> tuple[str, str] | None:
    """'A,B' -> ('A', 'B')."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise VaekitUsageError(f"--pareto '{text}': expected two metric names, e.g. pixel_accuracy,kl")
    return parts[0], parts[1]


def sweep_report(name: str, runs_dir: Path, storage: str | None = None, pareto: str | None = None,
                 plots: bool = True) -> dict:
    """The report document of a study: its settings and a row per trial sorted by the objective (best
    first; trials without a value last), each with its run's main evaluation metrics; with ``pareto``
    the trials on the front of two test metrics; with ``plots`` the PNG files written under
    RUNS_DIR/sweeps/<study>/.

    Raises:
        VaekitUsageError: no such storage or study, a damaged one, or a --pareto metric no trial's
            evaluation has.
        DiskError: the storage's file system refused.
    """
    axes = parse_pareto(pareto)
    with storage_errors(storage_url(storage, runs_dir)):
        return _report_document(name, runs_dir, storage, axes, plots)


def _report_document(name: str, runs_dir: Path, storage: str | None, axes: tuple[str, str] | None,
                     plots: bool) -> dict:
    study, settings, url = _load(name, runs_dir, storage)
    domain = settings.get("domain", "")
    metrics = main_metrics(domain) if domain else [KL_METRIC]
    metrics += [m for m in (axes or ()) if m not in metrics]
    metrics += [settings["objective"]] if settings.get("objective") and settings["objective"] not in metrics else []
    trials = study.get_trials(deepcopy=False)
    retries = {t.user_attrs["retry_of"]: t for t in trials if "retry_of" in t.user_attrs}
    rows = [_trial_row(t, retries.get(t.number), runs_dir, metrics) for t in trials]
    direction = settings.get("direction", "max")
    sign = -1.0 if direction == "max" else 1.0
    rows.sort(key=lambda r: (r["value"] is None, sign * (r["value"] or 0.0), r["number"]))
    document = {"study": name, "domain": domain, "storage": url, "objective": settings.get("objective"),
                "direction": direction, "sampler": settings.get("sampler"), "space": list(settings.get("space", {})),
                "metrics": metrics, "trials": rows}
    if axes:
        tested = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]
        for metric in axes:
            if not any(metric in r["results"].get("test", {}) for r in tested):
                raise VaekitUsageError(f"--pareto: no trial's test evaluation has '{metric}'; "
                                       f"the table's metrics are {', '.join(metrics)}")
        document["pareto"] = pareto_front(tested, *axes, get_domain(domain))
    if plots:
        document["plots"] = _plots(document, Path(runs_dir) / "sweeps" / name, axes)
    return document


def list_studies(runs_dir: Path, storage: str | None = None) -> dict:
    """The studies in a storage with their trial counts by state and their best value.

    Raises:
        VaekitUsageError: no such storage, or a damaged one.
        DiskError: the storage's file system refused.
    """
    url = storage_url(storage, runs_dir)
    with storage_errors(url):
        return {"storage": url, "studies": _study_rows(open_storage(url, create=False))}


def _study_rows(backend) -> list[dict]:
    """A row per study of ``backend``: its settings, trial counts by state, best value and run."""
    studies = []
    for summary in optuna.get_all_study_summaries(backend, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=backend)
        settings = study.user_attrs.get(SETTINGS_ATTR, {})
        trials = study.get_trials(deepcopy=False)
        states: dict[str, int] = {}
        for trial in trials:
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
        values = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
        best = (max if settings.get("direction", "max") == "max" else min)(values, key=lambda t: t.value) \
            if values else None
        studies.append({"study": summary.study_name, "domain": settings.get("domain"),
                        "objective": settings.get("objective"), "direction": settings.get("direction"),
                        "sampler": settings.get("sampler"), "trials": len(trials), "states": states,
                        "best_value": best.value if best else None,
                        "best_run_id": best.user_attrs.get("run_id") if best else None})
    return studies
