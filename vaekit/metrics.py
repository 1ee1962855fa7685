"""Every metric vaekit reports, declared once: its key, label, format and which direction is better.

A domain lists its own metrics (``Domain.metrics``); the metrics every VAE has are ``COMMON``. From
these declarations come what `train.selection_metric` may name and which way it ranks, the rows of
`eval` and `report`, the evaluation block's targets and their advice, the training curves' quality
panel, what `vaekit sweep run --metric` may
optimise and its direction, and the Pareto front of `sweep report` (torchmetrics' ``Metric`` carries
``higher_is_better`` the same way, Lightning's ``ModelCheckpoint`` reads ``mode`` from one place).
"""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.targets import Target, TargetCheck


@dataclass(frozen=True)
class Metric:
    """One metric of an evaluation.

    Attributes:
        key: its name in the metrics dict (``pixel_accuracy``); validation records prefix ``val_``.
        label: what a table calls it.
        fmt: how a value is shown (``{:.2%}``).
        higher_is_better: the direction every ranking uses (checkpoint selection, sweeps, Pareto
            fronts); False for a loss, an error or a rate.
        selectable: `train.selection_metric` may name it (a validation metric with a direction).
        headline: a row of the `eval` and `report` tables.
        curve: drawn in the quality panel of training_curves.png.
        target: a line of the evaluation block, with its pass mark and advice where a specification
            states one (``vaekit.targets.Target``).
    """

    key: str
    label: str
    fmt: str = "{:.4f}"
    higher_is_better: bool = True
    selectable: bool = True
    headline: bool = True
    curve: bool = False
    target: Target | None = None

    def target_check(self) -> TargetCheck:
        """The evaluation block's check of this metric against its target."""
        t = self.target or Target()
        return TargetCheck(self.key, t.label or self.label, t.fmt or self.fmt, t.threshold, self.higher_is_better, t.source,
                           t.fallbacks, t.repeated_beneath)

    @property
    def direction(self) -> str:
        """'max' or 'min', as `vaekit sweep run --direction` spells it."""
        return "max" if self.higher_is_better else "min"

    def score(self, value: float) -> float:
        """``value`` as a score where higher is better (lower-is-better metrics negated)."""
        return float(value) if self.higher_is_better else -float(value)


def _info(key: str, label: str, fmt: str = "{}") -> Metric:
    """A fact shown in the tables that nothing ranks (a count, an estimator's name)."""
    return Metric(key, label, fmt, selectable=False)


# The metrics every VAE's evaluation has, shown after the domain's own; selectable ones first.
COMMON: tuple[Metric, ...] = (
    Metric("loss", "Loss (the training objective)", "{:.4f}", higher_is_better=False, headline=False),
    Metric("kl_min", "KL of the least informative dimension (nats)", "{:.3f}", headline=False),
    Metric("kl", "KL Divergence, all dimensions (nats)", "{:.3f}", higher_is_better=False, selectable=False),
    Metric("kl_mean", "Mean KL Divergence per dimension (nats)", "{:.3f}", higher_is_better=False, selectable=False),
    Metric("active_dims", "Active Dimensions", "{}"),
    Metric("elbo", "ELBO (nats/sample)", "{:.3f}"),
    Metric("recon", "Reconstruction loss", "{:.4f}", higher_is_better=False, selectable=False),
    Metric("iwae_log_likelihood", "log p(x) ≥ IWAE (nats/sample)", "{:.3f}", selectable=False),
    Metric("iwae_bits_per_dim", "IWAE bits per dimension", "{:.4f}", higher_is_better=False, selectable=False),
    Metric("iwae_elbo", "ELBO over the IWAE samples (nats/sample)", "{:.3f}", selectable=False),
    _info("iwae_samples", "IWAE samples K"),
    # vaekit eval --disentanglement (vaekit.disentanglement; docs/disentanglement.md)
    Metric("mig", "MIG (Chen et al. 2018)", "{:.3f}", selectable=False),
    Metric("dci_disentanglement", "DCI disentanglement (Eastwood & Williams 2018)", "{:.3f}", selectable=False),
    Metric("dci_completeness", "DCI completeness", "{:.3f}", selectable=False),
    Metric("dci_informativeness", "DCI informativeness (held-out accuracy)", "{:.3f}", selectable=False),
    _info("dci_estimator", "DCI classifier"),
    Metric("sap", "SAP (Kumar et al. 2018)", "{:.3f}", selectable=False),
    _info("disentanglement_items", "Codes scored by MIG, DCI, SAP", "{:,}"),
    Metric("factor_vae_score", "FactorVAE score (Kim & Mnih 2018)", "{:.3f}", selectable=False),
    _info("factor_vae_votes", "FactorVAE evaluation votes", "{:,}"),
    _info("factor_vae_active_dims", "FactorVAE active dimensions (σ ≥ 0.05)"),
)

# Validation metrics a sweep may optimise besides the selectable ones: the rate and the distortion.
SWEEPABLE_COMMON = ("recon", "kl")


def common_metric(key: str) -> Metric | None:
    """The declaration of a metric every VAE has, or None."""
    return next((m for m in COMMON if m.key == key), None)
