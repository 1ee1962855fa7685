"""Config files written the specification documents' way: flat keys such as ``learning_rate: 1e-3``.

The seed specifications give their hyperparameters as one flat mapping (``latent_dim``, ``batch_size``,
``learning_rate``, ``optimizer: Adam``, ``beta_schedule``, ``use_free_bits`` ...). ``ALIASES`` is the one
declared table from such a key to our dotted config key(s), with a converter where the value needs one;
keys that mean nothing to vaekit are listed with the reason they are ignored, so nothing is dropped
silently. ``translate`` turns a flat file into our nested sections and says what it mapped.
The one-to-one names come from the config fields' own ``aliases`` (``vaekit.config``); this module
adds the keys whose values need converting, the keys that set model options, and the ignored ones.
Only a file with spec-style keys imports it (``vaekit.experiment``); the core config does not.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from vaekit.config import Config, key_aliases, set_dotted, suggest_key
from vaekit.errors import VaekitUsageError

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
    """true: the grid models' focal loss with our γ and α (the document gives none); false: cross-entropy."""
    # imported here, so that the config module (which imports this one) loads without torch
    from vaekit.models.cell_losses import DEFAULT_FOCAL_GAMMA

    if not isinstance(value, bool):
        raise VaekitUsageError(f"use_focal_loss: expected true or false, got {value!r}")
    if not value:
        return {}  # cross-entropy, the default; setting it would refuse the models without the option
    return {"model.options.recon_loss": "focal", "model.options.focal_gamma": DEFAULT_FOCAL_GAMMA,
            "model.options.focal_alpha": None}


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _leading_number(key: str, value: object) -> float:
    """``400 (stopped at 103)`` → 400: the number a seed wrote before its note."""
    match = re.match(rf"\s*({_NUMBER})", str(value))
    if match is None:
        raise VaekitUsageError(f"{key}: cannot read {value!r}; expected a number, optionally followed by a note")
    return float(match.group(1))


def _epochs(value: object, _doc: dict) -> dict:
    return {"train.epochs": int(_leading_number("total_epochs", value))}


def _learning_rate(value: object, _doc: dict) -> dict:
    """``1e-3`` → train.lr; ``0.001 → 0.0005 (epoch 50)`` (the ternary report's steps) → train.lr and a
    multistep schedule with those milestones and values."""
    if isinstance(value, (int, float)):
        return {"train.lr": value}
    text = str(value)
    first, *steps = re.split(r"\s*(?:→|->)\s*", text.strip())
    mapped: dict = {"train.lr": _leading_number("learning_rate", first)}
    milestones, values = [], []
    for step in steps:
        match = re.fullmatch(rf"({_NUMBER})\s*\(\s*epoch\s+(\d+)\s*\)", step)
        if match is None:
            raise VaekitUsageError(f"learning_rate: cannot read {step!r} in {text!r}; expected e.g. "
                                   "'0.001 → 0.0005 (epoch 50)'")
        values.append(float(match.group(1)))
        milestones.append(int(match.group(2)))
    if milestones:
        mapped.update({"train.lr_schedule": "multistep", "train.lr_milestones": milestones,
                       "train.lr_values": values})
    return mapped


def _input_dim(value: object, _doc: dict) -> dict:
    inputs = {9: "values", 27: "one_hot"}
    if value not in inputs:
        raise VaekitUsageError(f"input_dim: {value!r}; expected 9 (the operation's values) or 27 (one-hot)")
    return {"model.options.encoder_input": inputs[value]}


def _statenet(value: object, _doc: dict) -> dict:
    return {"model.name": "ternary_dual", "model.options.statenet": bool(value)}


def _rho_range(_value: object, section: dict) -> dict:
    """rho_min and rho_max are the first and last values of the report's ρ phases (the dual model's
    default knots, epochs 40 and 250)."""
    from vaekit.models import option_default

    knots = [list(knot) for knot in option_default("ternary_dual", "rho_knots")]
    knots[0][1], knots[-1][1] = section.get("rho_min", knots[0][1]), section.get("rho_max", knots[-1][1])
    return {"model.options.rho_knots": knots}


def _pair(option: str, first: str, last: str) -> Alias:
    """``first`` and ``last`` of one section → the model option ``[first, last]``; both are required."""
    def convert(_value: object, section: dict) -> dict:
        missing = [key for key in (first, last) if key not in section]
        if missing:
            raise VaekitUsageError(f"{first}/{last}: '{missing[0]}' is missing; the two set {option} together")
        return {option: [section[first], section[last]]}
    return Alias((option,), convert)


def _pathway(suffix: str) -> dict[str, Alias]:
    """One VAE of the dual ternary model (the report's VAE-A and VAE-B sections)."""
    beta, temperature = _pair(f"model.options.beta_{suffix}", "beta_start", "beta_end"), \
        _pair(f"model.options.temperature_{suffix}", "temp_start", "temp_end")
    return {"beta_start": beta, "beta_end": beta, "temp_start": temperature, "temp_end": temperature,
            "beta_warmup_epochs": _to("model.options.beta_warmup_epochs")}


EPS_KL = ("the ternary report names eps_kl (0.0005) but never says what it does "
          "(docs/domains/ternary.md)")

# The ternary report's Appendix B nests its keys in sections; a key found here wins over ALIASES.
SECTION_ALIASES: dict[str, dict[str, Alias]] = {
    "Model": {
        "input_dim": Alias(("model.options.encoder_input",), _input_dim),
        "rho_min": Alias(("model.options.rho_knots",), _rho_range),
        "rho_max": Alias(("model.options.rho_knots",), _rho_range),
        "lambda3_base": _to("model.options.lambda3_center"),
        "lambda3_amplitude": _to("model.options.lambda3_amplitude"),
        "use_statenet": Alias(("model.name", "model.options.statenet"), _statenet),
    },
    "Training": {"total_epochs": Alias(("train.epochs",), _epochs)},
    "VAE-A": _pathway("a"),
    "VAE-B": _pathway("b"),
    "Regularization": {"eps_kl": _ignored(EPS_KL)},
}

# Keys whose value needs converting, keys that set model options, and keys that mean nothing to vaekit.
_SPECIAL: dict[str, Alias] = {
    "learning_rate": Alias(("train.lr",), _learning_rate),
    "optimizer": _lower("train.optimizer"),
    "lr_schedule": Alias(("train.lr_schedule", "train.cosine_t_max", "train.min_lr"), _lr_schedule),
    "encoder_filters": _to("model.options.encoder_filters"),
    "decoder_filters": _to("model.options.decoder_filters"),
    "free_bits_lambda": Alias(("loss.free_bits",), _free_bits_lambda),
    "use_free_bits": Alias(("loss.free_bits",), _use_free_bits),
    "use_focal_loss": Alias(("model.options.recon_loss", "model.options.focal_gamma", "model.options.focal_alpha"),
                            _use_focal_loss),
    "run_id": _ignored("vaekit names each run itself (runs/<id>/); use name: for a label"),
    "eps_kl": _ignored(EPS_KL),
    "use_wandb": _ignored("vaekit logs to runs/<id>/ and, with train.tensorboard, TensorBoard; no wandb"),
}

# Every seed key: the config fields' one-to-one aliases, then the special ones (which win).
ALIASES: dict[str, Alias] = {**{name: _to(key) for name, key in key_aliases().items()}, **_SPECIAL}


def translate(document: dict, source: str) -> tuple[dict, list[str]]:
    """Map a flat spec-style mapping onto our nested sections.

    Returns:
        The nested config dict and one report line per seed key ("learning_rate → train.lr", or
        "run_id ignored: why"). Our own top-level keys pass through unchanged.

    Raises:
        VaekitUsageError: for a key that is neither ours nor in ``ALIASES``, naming the nearest valid one.
    """
    known = {f.name for f in dataclasses.fields(Config)}
    nested: dict = {}
    lines: list[str] = []
    set_by: dict[str, tuple[str, object]] = {}  # dotted target -> (seed key, value) that set it

    def map_key(key: str, value: object, aliases: dict[str, Alias], scope: dict, label: str) -> None:
        alias = aliases.get(key) or ALIASES.get(key)
        if alias is None:
            hint = suggest_key(str(key))
            suggestion = f" (did you mean '{hint}'?)" if hint else ""
            raise VaekitUsageError(f"{source}: unknown config key '{label}'{suggestion}")
        if alias.ignored_because:
            lines.append(f"{label} ignored: {alias.ignored_because}")
            return
        mapped = alias.apply(value, scope)
        for target, converted in mapped.items():
            earlier = set_by.get(target)
            if earlier is not None and earlier[1] != converted:
                raise VaekitUsageError(f"{source}: '{earlier[0]}' and '{label}' both set {target}, to "
                                       f"{earlier[1]!r} and {converted!r}; give one value")
            set_by.setdefault(target, (label, converted))
            set_dotted(nested, target, converted)
        lines.append(f"{label} → {', '.join(mapped) or '(nothing: ' + repr(value) + ')'}")

    for key, value in document.items():
        if key in known:
            nested[key] = value if not isinstance(value, dict) else {**nested.get(key, {}), **value}
        elif key in SECTION_ALIASES and isinstance(value, dict):
            for inner, inner_value in value.items():
                map_key(inner, inner_value, SECTION_ALIASES[key], value, f"{key}.{inner}")
        else:
            map_key(key, value, {}, document, str(key))
    return nested, lines


def alias_table_markdown() -> str:
    """The alias table as Markdown, for docs/configuration.md."""
    from vaekit.models.cell_losses import DEFAULT_FOCAL_GAMMA

    rows = ["| Seed key | vaekit key | Note |", "|---|---|---|"]
    notes = {"optimizer": "lower-cased: Adam → adam",
             "lr_schedule": "CosineAnnealingLR(T_max=50, eta_min=1e-5) → cosine, cosine_t_max 50, min_lr 1e-5",
             "free_bits_lambda": "0 when use_free_bits is false",
             "use_free_bits": "false alone sets loss.free_bits 0",
             "use_focal_loss": f"true → recon_loss focal, focal_gamma {DEFAULT_FOCAL_GAMMA:g}, focal_alpha none (our "
                               "choice: the document gives no γ or α; docs/training.md); false → cross-entropy, "
                               "the default (nothing set). Grid models only",
             "learning_rate": "a number, or the ternary report's steps: 0.001 → 0.0005 (epoch 50) → lr 1e-3, "
                              "multistep, lr_milestones [50], lr_values [5e-4]",
             "Model.input_dim": "9 → values, 27 → one_hot",
             "Model.use_statenet": "also selects the dual model, ternary_dual",
             "Model.rho_min": "the first ρ knot's value: [[40, rho_min], [120, 0.3], [250, rho_max]]",
             "Model.rho_max": "the last ρ knot's value (see rho_min)",
             "Training.total_epochs": "the leading number: 400 (stopped at 103) → 400",
             **{f"VAE-{p}.{k}": f"the pair [{k.split('_')[0]}_start, {k.split('_')[0]}_end]"
                for p in "AB" for k in ("beta_start", "beta_end", "temp_start", "temp_end")}}
    entries = [*ALIASES.items(), *((f"{section}.{name}", alias) for section, table in SECTION_ALIASES.items()
                                   for name, alias in table.items())]
    for name, alias in entries:
        target = ", ".join(f"`{t}`" for t in alias.targets) or ("ignored" if alias.ignored_because else "—")
        rows.append(f"| `{name}` | {target} | {alias.ignored_because or notes.get(name, '')} |")
    rows.append("")
    rows.append("In a sectioned file (the ternary report's Appendix B: `Model`, `Training`, `VAE-A`, `VAE-B`, "
                "`Regularization`), a key the section's own rows above do not list is read as its flat alias "
                "(e.g. `Regularization.free_bits` as `free_bits`). Two keys that set one vaekit key to "
                "different values are refused.")
    return "\n".join(rows)
