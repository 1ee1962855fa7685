"""The methods comparison's table (docs/domains/sprites.md) from the scores scripts/sprites_methods.sh wrote.

    python scripts/sprites_methods_table.py RUNS_DIR STUDY

One row per method: reconstruction (test NLL, nats/image), KL, active dimensions, then MIG, DCI,
SAP and the FactorVAE score on the training split, each the mean ± half the range over the seeds;
then MIG, DCI disentanglement and the FactorVAE score of seed 0's epoch checkpoints (against steps).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import yaml

METHODS = {("elbo", None): "β-VAE (β 4)", ("annealed", None): "AnnealedVAE (C 25, γ 1000)",
           ("btcvae", None): "β-TCVAE (β 6)", ("factorvae", None): "FactorVAE (γ 40)",
           ("dipvae", "i"): "DIP-VAE-I (λ_od 10, λ_d 100)", ("dipvae", "ii"): "DIP-VAE-II (λ_od 10, λ_d 10)"}
SCORES = ("mig", "dci_disentanglement", "dci_completeness", "sap", "factor_vae_score")
TEST = ("recon", "kl", "active_dims", "pixel_accuracy")


def method_of(config: dict) -> str:
    objective = config.get("objective", {"name": "elbo"})
    return METHODS[(objective["name"], objective.get("variant") if objective["name"] == "dipvae" else None)]


def spread(values: list[float]) -> str:
    mean = sum(values) / len(values)
    half = (max(values) - min(values)) / 2
    return f"{mean:.3f} ± {half:.3f}" if abs(mean) < 10 else f"{mean:.1f} ± {half:.1f}"


def main(runs: Path, study: str) -> None:
    rows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    curves: dict[str, dict[int, dict]] = defaultdict(dict)
    for run in sorted(runs.glob(f"{study}-t*")):
        config = yaml.safe_load((run / "config.yaml").read_text())
        method = method_of(config)
        test = json.loads((run / "results" / "metrics.json").read_text())["test"]
        for key in TEST:
            rows[method][key].append(test[key])
        scores_dir = runs / f"{study}_eval"
        final = scores_dir / f"{run.name}.json"
        if final.is_file():
            metrics = json.loads(final.read_text())["metrics"]
            for key in SCORES:
                rows[method][key].append(metrics[key])
        for checkpoint in sorted(scores_dir.glob(f"{run.name}-epoch_*.json")):
            epoch = int(checkpoint.stem.rsplit("_", 1)[1])
            curves[method][epoch] = json.loads(checkpoint.read_text())["metrics"]
        if config["seed"] == 0 and final.is_file():
            curves[method][config["train"]["epochs"]] = json.loads(final.read_text())["metrics"]
        rows[method]["seeds"].append(config["seed"])
    header = ["Method", "Seeds", "Recon (nats/image)", "KL (nats)", "Active dims", "MIG", "DCI disentanglement",
              "DCI completeness", "SAP", "FactorVAE score"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for method in METHODS.values():
        if method not in rows:
            continue
        r = rows[method]
        cells = [method, str(len(r["seeds"])), spread(r["recon"]), spread(r["kl"]),
                 f"{sum(r['active_dims']) / len(r['active_dims']):.1f}",
                 *[spread(r[key]) if r[key] else "—" for key in SCORES]]
        print("| " + " | ".join(cells) + " |")
    print()
    epochs = sorted({e for c in curves.values() for e in c})
    print("| Method (seed 0) | " + " | ".join(f"epoch {e}: MIG / DCI / FactorVAE" for e in epochs) + " |")
    print("|" + "---|" * (len(epochs) + 1))
    for method in METHODS.values():
        if method in curves:
            cells = [f"{c['mig']:.3f} / {c['dci_disentanglement']:.3f} / {c['factor_vae_score']:.2f}"
                     if (c := curves[method].get(e)) else "—" for e in epochs]
            print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
