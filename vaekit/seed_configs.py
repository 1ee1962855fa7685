"""Config files written the seed documents' way: flat keys such as ``learning_rate: 1e-3``.

The seed specifications give their hyperparameters as one flat mapping (``latent_dim``, ``batch_size``,
``learning_rate``, ``optimizer: Adam``, ``beta_schedule``, ``use_free_bits`` ...). ``ALIASES`` is the one
declared table from such a key to our dotted config key(s), with a converter where the value needs one;
keys that mean nothing to vaekit are listed with the reason they are ignored, so nothing is dropped
silently. ``translate`` turns a flat file into our nested sections and says what it mapped.
This module imports nothing from ``vaekit.config`` so that the config module can use the table for
its "did you mean" suggestions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vaekit.errors import VaekitUsageError, nearest

Converter = Callable[[object, dict], dict]  # (value, whole document) -> {dotted key: value}


@dataclass(frozen=True)
class Alias:
    """How one seed key maps onto vaekit: ``targets`` are the dotted keys it sets (empty: ignored)."""

    targets: tuple[str, ...]
    convert: Converter | None = None
    ignored_because: str = ""

    def apply(self, value: object, document: dict) -> dict:
        if self.ignored_because:
            return {}
        if self.convert is not None:
            return self.convert(value, document)
        return {self.targets[0]: value}


def _to(key: str) -> Alias:
    return Alias((key,))


def _lower(key: str) -> Alias:
    return Alias((key,), lambda value, _doc: {key: str(value).lower()})


def _ignored(reason: str) -> Alias:
    return Alias((), ignored_because=reason)


_TORCH_SCHEDULERS = {"cosineannealinglr": "cosine", "multisteplr": "multistep", "constantlr": "constant"}
_SCHEDULER_ARGUMENTS = {"t_max": "train.cosine_t_max", "eta_min": "train.min_lr",
                        "milestones": "train.lr_milestones", "gamma": "train.lr_gamma"}


def _lr_schedule(value: object, _doc: dict) -> dict:
    """``CosineAnnealingLR(T_max=50, eta_min=1e-5)`` (or a bare name) → our schedule and its knobs."""
    text = str(value).strip()
    match = re.fullmatch(r"(\w+)\s*(?:\((.*)\))?", text)
    name = match.group(1).lower() if match else ""
    schedule = _TORCH_SCHEDULERS.get(name, name if name in ("cosine", "multistep", "constant") else None)
    if schedule is None:
        raise VaekitUsageError(f"lr_schedule: cannot read {text!r}; expected e.g. 'CosineAnnealingLR(T_max=50, "
                               f"eta_min=1e-5)' or one of cosine, multistep, constant")
    mapped: dict = {"train.lr_schedule": schedule}
    for argument in filter(None, (part.strip() for part in (match.group(2) or "").split(","))):
        key, _, raw = argument.partition("=")
        target = _SCHEDULER_ARGUMENTS.get(key.strip().lower())
        if target is None:
            raise VaekitUsageError(f"lr_schedule: unknown argument {key.strip()!r} in {text!r}; "
                                   f"known: {', '.join(_SCHEDULER_ARGUMENTS)}")
        number = float(raw)
        mapped[target] = int(number) if target == "train.cosine_t_max" else number
    return mapped


def _free_bits_lambda(value: object, document: dict) -> dict:
    return {"loss.free_bits": value if document.get("use_free_bits", True) else 0.0}


def _use_free_bits(value: object, document: dict) -> dict:
    return {} if value or "free_bits_lambda" in document else {"loss.free_bits": 0.0}


def _use_focal_loss(value: object, _doc: dict) -> dict:
    if value:
        raise VaekitUsageError("use_focal_loss: true is not supported: the β-schedule specification names a focal "
                               "loss but does not define it (no γ, no α); vaekit's reconstruction term is the "
                               "domain's likelihood (ARC: cross-entropy). Remove the key or set it to false")
    return {}


ALIASES: dict[str, Alias] = {
    # ARC specification (000) and the Gaussian-splat common block (004)
    "latent_dim": _to("model.latent_dim"),
    "batch_size": _to("train.batch_size"),
    "learning_rate": _to("train.lr"),
    "optimizer": _lower("train.optimizer"),
    "lr_schedule": Alias(("train.lr_schedule", "train.cosine_t_max", "train.min_lr"), _lr_schedule),
    "max_epochs": _to("train.epochs"),
    "epochs": _to("train.epochs"),
    "early_stopping_patience": _to("train.early_stopping_patience"),
    "weight_decay": _to("train.weight_decay"),
    "grad_clip": _to("train.grad_clip"),
    "encoder_filters": _to("model.options.encoder_filters"),
    "decoder_filters": _to("model.options.decoder_filters"),
    # β-schedule specification (001)
    "beta_schedule": _to("beta.schedule"),
    "beta_max": _to("beta.max_beta"),
    "beta_warmup_epochs": _to("beta.warmup_epochs"),
    "beta_ramp_epochs": _to("beta.ramp_epochs"),
    "beta_cycle_length": _to("beta.cycle_length"),
    "free_bits_lambda": Alias(("loss.free_bits",), _free_bits_lambda),
    "use_free_bits": Alias(("loss.free_bits",), _use_free_bits),
    "free_bits": _to("loss.free_bits"),
    "use_focal_loss": Alias((), _use_focal_loss),
    "log_every_n_steps": _to("train.log_every_steps"),
    "run_id": _ignored("vaekit names each run itself (runs/<id>/); use name: for a label"),
    "use_wandb": _ignored("vaekit logs to runs/<id>/ and, with train.tensorboard, TensorBoard; no wandb"),
}


def alias_candidates() -> dict[str, str]:
    """Every alias name → the dotted key a suggestion should show (ignored keys show themselves)."""
    return {name: (alias.targets[0] if alias.targets else name) for name, alias in ALIASES.items()}


def suggest(key: str, dotted_keys: Iterable[str]) -> str | None:
    """The nearest valid spelling of a dotted or bare ``key``.

    An exact alias wins ('train.learning_rate' → 'train.lr'); then the nearest key of the same section;
    then the nearest over every section's keys, their bare names and the aliases.
    """
    dotted = list(dotted_keys)
    section, _, last = key.rpartition(".")
    aliases = alias_candidates()
    if last in aliases:
        return aliases[last]
    if section:
        same_section = {name.rsplit(".", 1)[-1]: name for name in dotted if name.startswith(section + ".")}
        hint = nearest(last, same_section)
        if hint:
            return same_section[hint]
    by_spelling: dict[str, str] = {name: name for name in dotted}
    by_spelling.update({name.split(".", 1)[0]: name.split(".", 1)[0] for name in dotted})
    for name in dotted:
        by_spelling.setdefault(name.rsplit(".", 1)[-1], name)
    for name, target in aliases.items():
        by_spelling.setdefault(name, target)
    hint = nearest(last, by_spelling)
    return by_spelling[hint] if hint else None


def _nest(dotted: str, value: object, into: dict) -> None:
    parts = dotted.split(".")
    cursor = into
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value


def is_seed_style(document: dict, top_level_keys: Iterable[str]) -> bool:
    """True when some top-level key is not one of our fields or sections."""
    known = set(top_level_keys)
    return any(key not in known for key in document)


def translate(document: dict, top_level_keys: Iterable[str], dotted_keys: Iterable[str],
              source: str) -> tuple[dict, list[str]]:
    """Map a flat seed-style mapping onto our nested sections.

    Returns:
        The nested config dict and one report line per seed key ("learning_rate → train.lr", or
        "run_id ignored: why"). Our own top-level keys pass through unchanged.

    Raises:
        VaekitUsageError: for a key that is neither ours nor in ``ALIASES``, naming the nearest valid one.
    """
    known = set(top_level_keys)
    dotted = list(dotted_keys)
    nested: dict = {}
    lines: list[str] = []
    for key, value in document.items():
        if key in known:
            nested[key] = value if not isinstance(value, dict) else {**nested.get(key, {}), **value}
            continue
        alias = ALIASES.get(key)
        if alias is None:
            hint = suggest(str(key), dotted)
            suggestion = f" (did you mean '{hint}'?)" if hint else ""
            raise VaekitUsageError(f"{source}: unknown config key '{key}'{suggestion}")
        if alias.ignored_because:
            lines.append(f"{key} ignored: {alias.ignored_because}")
            continue
        mapped = alias.apply(value, document)
        for target, converted in mapped.items():
            _nest(target, converted, nested)
        lines.append(f"{key} → {', '.join(mapped) or '(nothing: ' + repr(value) + ')'}")
    return nested, lines


def alias_table_markdown() -> str:
    """The alias table as Markdown, for docs/configuration.md."""
    rows = ["| Seed key | vaekit key | Note |", "|---|---|---|"]
    notes = {"optimizer": "lower-cased: Adam → adam",
             "lr_schedule": "CosineAnnealingLR(T_max=50, eta_min=1e-5) → cosine, cosine_t_max 50, min_lr 1e-5",
             "free_bits_lambda": "0 when use_free_bits is false",
             "use_free_bits": "false alone sets loss.free_bits 0",
             "use_focal_loss": "false accepted (cross-entropy, our default); true refused: the document "
                               "does not define its focal loss"}
    for name, alias in ALIASES.items():
        target = ", ".join(f"`{t}`" for t in alias.targets) or ("ignored" if alias.ignored_because else "—")
        rows.append(f"| `{name}` | {target} | {alias.ignored_because or notes.get(name, '')} |")
    return "\n".join(rows)
