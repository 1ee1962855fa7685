"""Typed experiment configuration.

One ``Config`` describes an experiment. It is built in layers, each one strict (an unknown key is an
error naming the nearest valid key): dataclass defaults < the domain's defaults < a YAML file < CLI
flags < ``--set section.key=value``. The resolved result is written to the run's ``config.yaml``,
which is all that ``eval``, ``sample`` and ``report`` need to rebuild the experiment.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaekit import objectives
from vaekit.errors import VaekitUsageError, nearest
from vaekit.files import atomic_write_bytes


def _help(text: str, default: Any = dataclasses.MISSING, flag: str = "", aliases: tuple[str, ...] = (),
          **kwargs: Any) -> Any:
    """A dataclass field carrying its own help text and, where it has them, its `vaekit train` flag
    (``--latent``; ``--compile/--no-compile`` for a switch) and its aliases: the names the seed
    documents' flat files give it (``learning_rate`` for train.lr), which ``vaekit.spec_configs``
    maps and unknown-key suggestions search. All surface through ``vaekit.config_fields``."""
    metadata = {"help": text, "flag": flag, "aliases": aliases}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata, **kwargs)


@dataclass
class DataConfig:
    path: str = _help("Corpus .npz made by `vaekit collect`; empty means the domain's default path.", "",
                      flag="--data")
    augment: bool = _help("Apply the domain's training augmentation (ARC: random rot90 and flips).", True)
    options: dict = _help("Domain-specific settings (ternary: prior_samples, the N of the final prior "
                          "coverage, and epoch_prior_samples, the N logged each epoch).", {})


@dataclass
class ModelConfig:
    name: str = _help("Registered model name (`vaekit models` lists them); empty means the domain's default.", "",
                      flag="--model")
    latent_dim: int = _help("Latent dimension d.", 10, flag="--latent", aliases=("latent_dim",))
    options: dict = _help("Family-specific constructor arguments, checked against the model's signature.", {})


@dataclass
class BetaConfig:
    schedule: str = _help("β schedule: three_phase, linear_warmup, aggressive, constant, ultra_conservative, "
                          "cyclical.", "three_phase", flag="--beta-schedule", aliases=("beta_schedule",))
    max_beta: float | None = _help("Final (or peak) β; None takes the schedule's default.", None, flag="--beta-max",
                                   aliases=("beta_max",))
    warmup_epochs: int | None = _help("Epochs of the first phase; None takes the schedule's default.", None,
                                      flag="--warmup-epochs", aliases=("beta_warmup_epochs",))
    ramp_epochs: int | None = _help("Epochs of the ramp after warm-up; None takes the schedule's default.", None,
                                    aliases=("beta_ramp_epochs",))
    cycle_length: int | None = _help("Cyclical schedule period in epochs; None takes the schedule's default.", None,
                                     aliases=("beta_cycle_length",))


@dataclass
class LossConfig:
    recon_reduction: str = _help(
        "Reconstruction term per sample: 'sum' over elements (the ELBO) or 'mean' over elements.", "sum",
        flag="--recon-reduction")
    free_bits: float = _help("Free bits in nats per latent dimension (0 disables).", 0.0, flag="--free-bits",
                             aliases=("free_bits", "free_bits_lambda", "use_free_bits"))
    free_bits_mode: str = _help(
        "'per_sample' clamps each sample's per-dimension KL; 'batch_mean' clamps the batch-mean KL "
        "per dimension (Kingma et al. 2016).",
        "per_sample", flag="--free-bits-mode")
    options: dict = _help("Domain-specific training-loss options; a domain refuses keys it does not declare "
                          "(atari, images: foreground_weight, the weight of foreground pixels' NLL, ≥ 0, default 1, and "
                          "foreground_weight_on, target or either; docs/domains/atari.md).", {})


def _objective_config() -> type:
    """``ObjectiveConfig``, generated from the objectives' own key declarations (vaekit.objectives):
    ``name`` and every key any objective declares, each None by default (the chosen objective's
    default; the run's config.yaml records the resolved values). A key shared by several objectives
    (gamma) carries each one's help."""
    fields = [("name", str, _help(
        "Training objective: " + ", ".join(objectives.OBJECTIVES.names()) + " (docs/objectives.md; `vaekit models` "
        "lists them with their keys). The β schedule and free bits apply to elbo; the others weigh their terms "
        "with their own objective.* keys.", objectives.DEFAULT_OBJECTIVE, flag="--objective"))]
    for key in objectives.objective_key_names():
        declared = objectives.key_declarations(key)
        kind = next(iter(declared.values())).value_type
        text = " ".join(d.help + ("" if d.default is None else f" (default {d.default})") for d in declared.values())
        fields.append((key, typing.Optional[kind], _help(text + " Null takes the objective's default.", None)))
    generated = dataclasses.make_dataclass("ObjectiveConfig", fields)
    generated.__module__ = __name__
    return generated


ObjectiveConfig = _objective_config()


PRECISIONS = ("fp32", "bf16", "fp16", "auto")


@dataclass
class TrainConfig:
    epochs: int = _help("Maximum number of epochs.", 50, flag="--epochs", aliases=("max_epochs", "epochs"))
    batch_size: int = _help("Mini-batch size (per worker when run under torchrun).", 128, flag="--batch-size",
                            aliases=("batch_size",))
    lr: float = _help("Initial learning rate.", 1e-3, flag="--lr", aliases=("learning_rate",))
    optimizer: str = _help("'adam' or 'adamw'.", "adam", aliases=("optimizer",))
    weight_decay: float = _help("Weight decay passed to the optimizer.", 0.0, aliases=("weight_decay",))
    lr_schedule: str = _help("'cosine' (CosineAnnealingLR), 'multistep' or 'constant'.", "cosine",
                             aliases=("lr_schedule",))
    cosine_t_max: int | None = _help(
        "T_max of CosineAnnealingLR, in epochs; None (the default) takes the run's train.epochs, so the lr "
        "reaches min_lr at the last epoch. `--resume --epochs N` redraws an unset one over N epochs "
        "(docs/training.md).", None)
    min_lr: float = _help("eta_min of CosineAnnealingLR.", 1e-5)
    lr_milestones: list = _help("Epochs at which 'multistep' multiplies the lr by lr_gamma.", [])
    lr_gamma: float = _help("Factor applied at each 'multistep' milestone.", 0.5)
    lr_values: list = _help(
        "Learning rates 'multistep' sets at each of lr_milestones, in order (instead of multiplying by "
        "lr_gamma); same length as lr_milestones, or empty.", [])
    early_stopping_patience: int = _help("Stop after this many epochs without a better val loss (0 disables).", 10,
                                         aliases=("early_stopping_patience",))
    early_stopping_start: int = _help(
        "Epoch from which early stopping may trigger, counting patience from the best val loss since that "
        "epoch; lets a rising β schedule finish first.", 1
    )
    selection_metric: str = _help(
        "Validation metric that picks checkpoints/vae_best.pth, ranked in its declared direction: 'loss' "
        "(lowest), a quality metric such as 'pixel_accuracy' (highest) or a domain's loss such as the splats' "
        "'recon_rot' (lowest). A comma-separated list breaks ties in order, e.g. "
        "'reconstruction_coverage,prior_coverage'; the validation loss breaks ties left after the named metrics.", "loss")
    checkpoint_every: int = _help(
        "Keep the weights after every N-th epoch as checkpoints/epoch_NNN.pt (0 keeps none); `eval`, `sample`, "
        "`encode`, `traverse` and `interpolate` read them with --checkpoint epoch_NNN.", 0)
    keep_checkpoints: int = _help("Keep only the newest K of those epoch_NNN.pt files (0 keeps all).", 0)
    checkpoint_every_steps: int = _help(
        "Also write checkpoints/last.pt every N optimizer steps, in the middle of an epoch (0: only after each "
        "epoch and on SIGTERM/SIGINT); --resume continues at the next step.", 0)
    checkpoint_every_minutes: float = _help(
        "Also write checkpoints/last.pt when this many minutes have passed since the last one, in the middle "
        "of an epoch (0 disables); for epochs long enough that a crash other than a signal would cost much.", 0.0)
    nonfinite: str = _help(
        "What a non-finite loss or gradient does: 'stop' ends training with exit code 65 naming the epoch, "
        "step and term (checkpoints keep the last good weights; --resume continues), 'skip' skips the batch "
        "and counts it as train_skipped_steps in metrics.jsonl.", "stop")
    pictures_every: int = _help(
        "Every N epochs, draw the same validation items and their reconstructions as "
        "results/reconstructions_epoch_NNN.png (and, with tensorboard, log them and prior samples); 0 disables.", 0)
    tensorboard: bool = _help(
        "Write TensorBoard event files to runs/<id>/logs/ (per-epoch losses, β, lr, KL per dimension, and the "
        "pictures of train.pictures_every); needs pip install 'vaekit[tensorboard]'.", False,
        flag="--tensorboard/--no-tensorboard")
    mlflow: bool = _help(
        "Track the run in MLflow: one MLflow run per vaekit run (named by its run id) with the config as "
        "parameters, per-epoch and final metrics, and the pictures and config.yaml as artifacts; needs pip "
        "install 'vaekit[mlflow]'.", False, flag="--mlflow/--no-mlflow")
    mlflow_uri: str = _help(
        "MLflow tracking URI for train.mlflow; empty means the SQLite store RUNS_DIR/mlflow.db beside the run "
        "directories (then: mlflow ui --backend-store-uri sqlite:///runs/mlflow.db).", "")
    log_every_steps: int = _help(
        "Every N optimizer steps (counted from the start of the run), log the training batch's loss, "
        "reconstruction and KL, and its unclamped KL per latent dimension (min, max, mean and each value) "
        "to steps.jsonl and, with tensorboard, as train/kl_per_dim/*; 0 disables. The default 50 gives 12 "
        "lines an epoch on ARC's default corpus (80,000 training grids, batch 128) and 4 on the ternary "
        "one (15,746 operations, batch 64), for one device-to-host read per logged step.", 50,
            aliases=("log_every_n_steps",))
    grad_clip: float = _help("Clip the gradient norm to this value (0 disables).", 0.0, aliases=("grad_clip",))
    collapse_threshold: float = _help("Warn when a latent dimension's mean KL (nats) falls below this.", 0.05)
    precision: str = _help(
        "Autocast precision of training, evaluation and sampling: 'fp32', 'bf16', 'fp16' (CUDA only, with "
        "loss scaling) or 'auto' (bf16 where the hardware runs it natively, else fp32). Weights, optimizer "
        "state and checkpoints stay fp32. The run's config.yaml records the resolved value, never 'auto'. "
        "The default 'auto' matched fp32's quality on every domain's shipped config (docs/training.md).",
        "auto", flag="--precision")
    compile: bool = _help(
        "Compile the training step (forward and backward) with torch.compile; falls back to eager with a "
        "warning where it fails. Costs seconds to a minute once per process, reported as compile_seconds.",
        False, flag="--compile/--no-compile")


@dataclass
class Config:
    name: str = _help("Experiment name shown by `report`; empty takes the --config file's name.", "")
    domain: str = _help("Data domain: a registered name (`vaekit models` lists them).", "arc")
    seed: int = _help("Seed for initialisation, shuffling and augmentation.", 0, flag="--seed")
    device: str = _help("auto, cpu, cuda or mps.", "auto", flag="--device")
    threads: int = _help("CPU threads for torch: 0 keeps torch's default, one per core (the ternary "
                         "domain defaults to 1). Set 1 when other runs or jobs share the cores: on 2 "
                         "shared cores a second thread made conv2d steps 3x and ternary epochs 10-20x "
                         "slower. Keep 0 on a machine of its own.", 0, flag="--threads")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    beta: BetaConfig = field(default_factory=BetaConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- building


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field annotation, converting where it is lossless."""
    args = typing.get_args(annotation)
    if value is None and type(None) in args:
        return None
    base = next((a for a in args if a is not type(None)), annotation) if args else annotation
    origin = typing.get_origin(base) or base
    if origin is bool:
        if isinstance(value, bool):
            return value
    elif origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif origin is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif origin is str:
        if isinstance(value, str):
            return value
    elif origin in (dict, list):
        if isinstance(value, origin):
            return value
    raise VaekitUsageError(f"{where}: expected {getattr(origin, '__name__', origin)}, got {value!r}")


def apply_overrides(obj: Any, overrides: dict, source: str, prefix: str = "") -> None:
    """Write a nested dict onto a config dataclass, refusing unknown keys and wrong types."""
    if not isinstance(overrides, dict):
        raise VaekitUsageError(f"{source}: '{prefix.rstrip('.') or 'top level'}' must be a mapping")
    types = _field_types(type(obj))
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if key not in types:
            hint = suggest_key(path)
            suggestion = f" (did you mean '{hint}'?)" if hint else ""
            raise VaekitUsageError(f"{source}: unknown config key '{path}'{suggestion}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            apply_overrides(current, value, source, prefix=f"{path}.")
        elif isinstance(current, dict) and isinstance(value, dict):
            setattr(obj, key, {**current, **value})
        else:
            setattr(obj, key, _coerce(value, types[key], f"{source}: '{path}'"))


def leaf_fields(cls: type | None = None, prefix: str = "") -> list[tuple[str, dataclasses.Field, type]]:
    """Every settable field as (dotted key, field, the dataclass that declares it), sections entered:
    the one walk over the config's dataclasses that keys, aliases and ``vaekit.config_fields`` share."""
    leaves = []
    for f in dataclasses.fields(cls or Config):
        if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            leaves += leaf_fields(f.default_factory, f"{prefix}{f.name}.")
        else:
            leaves.append((f"{prefix}{f.name}", f, cls or Config))
    return leaves


def dotted_keys() -> list[str]:
    """Every config key as 'section.key' (top-level fields without a dot)."""
    return [key for key, _, _ in leaf_fields()]


def key_aliases() -> dict[str, str]:
    """Every alias a field declares (its seed-document names) -> the field's dotted key."""
    return {alias: key for key, f, _ in leaf_fields() for alias in f.metadata.get("aliases", ())}


def suggest_key(key: str) -> str | None:
    """The nearest valid spelling of an unknown dotted or bare ``key``, searching every key, its bare
    name and its aliases alike.

    An exact alias wins ('train.learning_rate' → 'train.lr'); then the nearest name or alias of the
    key's own section ('train.learnng_rate' → 'train.lr'); then the nearest over all sections.
    """
    keys, aliases = dotted_keys(), key_aliases()
    section, _, last = key.rpartition(".")
    if last in aliases:
        return aliases[last]
    spellings: dict[str, str] = {name.rsplit(".", 1)[-1]: name for name in keys}
    spellings.update(aliases)
    if section:
        in_section = {spelling: target for spelling, target in spellings.items()
                      if target.startswith(section + ".")}
        hint = nearest(last, in_section)
        if hint:
            return in_section[hint]
    everywhere = {name: name for name in keys}
    everywhere.update({name.split(".", 1)[0]: name.split(".", 1)[0] for name in keys})
    for spelling, target in spellings.items():
        everywhere.setdefault(spelling, target)
    hint = nearest(last, everywhere)
    return everywhere[hint] if hint else None


def is_spec_style(document: dict) -> bool:
    """True when a config file has a top-level key that is none of our fields or sections: it is
    written the specification documents' flat way and goes through ``vaekit.spec_configs``."""
    ours = {f.name for f in dataclasses.fields(Config)}
    return any(key not in ours for key in document)


class _DuplicateKey(Exception):
    def __init__(self, key, first: int, second: int):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        lines: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in lines:
                raise _DuplicateKey(key, lines[key], line)
            lines[key] = line
        return super().construct_mapping(node, deep)


def load_yaml(path: Path) -> dict:
    """Read a config (or space) YAML file into a dict, with errors naming the file; a key written twice
    in one mapping is refused with both line numbers."""
    if not path.is_file():
        raise VaekitUsageError(f"config file not found: {path}")
    try:
        loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as twice:
        raise VaekitUsageError(f"{path}: '{twice.key}' is written twice (lines {twice.first} and {twice.second}); "
                               "keep one") from None
    except yaml.YAMLError as err:
        raise VaekitUsageError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise VaekitUsageError(f"{path}: expected a mapping of config sections at the top level")
    return loaded


def parse_set_option(assignment: str) -> dict:
    """Turn ``section.key=value`` into a nested dict; the value is parsed as YAML."""
    if "=" not in assignment:
        raise VaekitUsageError(f"--set '{assignment}': expected key=value, e.g. train.lr=3e-4")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    nested: dict = {}
    set_dotted(nested, key.strip(), value)
    return nested


def set_dotted(nested: dict, dotted: str, value: Any) -> None:
    """Set ``section.key`` (or a top-level key) in a nested dict of config overrides, making the
    sections it needs: the one spelling of a dotted key as a layer, for --set, flags, the API and
    seed files alike."""
    *sections, key = dotted.split(".")
    for section in sections:
        nested = nested.setdefault(section, {})
    nested[key] = value


def build_config(layers: list[tuple[str, dict]]) -> Config:
    """Apply (source, overrides) layers in order onto the defaults, then validate."""
    config = Config()
    for source, overrides in layers:
        apply_overrides(config, overrides, source)
    validate(config)
    for key, value in objective_options(config).items():  # config.yaml records what the objective trains with
        setattr(config.objective, key, value)
    return config


def objective_keys_set(config: Config) -> dict:
    """Every objective.* key but the name, as the config holds it (None where unset)."""
    return {f.name: getattr(config.objective, f.name) for f in dataclasses.fields(config.objective) if f.name != "name"}


def objective_options(config: Config) -> dict:
    """The chosen objective's keys with their values (the config's, else the objective's defaults);
    refuses an unknown objective, another objective's key and a value out of range (exit 2)."""
    return objectives.resolved_options(config.objective.name, objective_keys_set(config))


MAX_SEED = 2**63 - 1  # torch and numpy both take any seed in [0, 2**63)


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def validate(config: Config) -> None:
    """Check value ranges and names that a type check alone cannot; the error echoes the value."""
    train, loss = config.train, config.loss
    checks = [  # (key, value, ok, what a valid value is)
        ("seed", config.seed, 0 <= config.seed <= MAX_SEED, "an integer from 0 to 2**63 - 1"),
        ("threads", config.threads, config.threads >= 0, "0 (torch's default) or a positive count"),
        ("device", config.device, config.device in ("auto", "cpu", "cuda", "mps") or config.device.startswith("cuda:"),
         "auto, cpu, cuda, cuda:N or mps"),
        ("model.latent_dim", config.model.latent_dim, config.model.latent_dim >= 1, "at least 1"),
        ("train.epochs", train.epochs, train.epochs >= 1, "at least 1"),
        ("train.batch_size", train.batch_size, train.batch_size >= 1, "at least 1"),
        ("train.lr", train.lr, _finite_number(train.lr) and train.lr > 0, "positive"),
        ("train.weight_decay", train.weight_decay, _finite_number(train.weight_decay) and train.weight_decay >= 0,
         "non-negative"),
        ("train.min_lr", train.min_lr, _finite_number(train.min_lr) and train.min_lr >= 0, "non-negative"),
        ("train.cosine_t_max", train.cosine_t_max, train.cosine_t_max is None or train.cosine_t_max >= 1,
         "at least 1, or null (the run's epochs)"),
        ("train.lr_gamma", train.lr_gamma, _finite_number(train.lr_gamma) and train.lr_gamma > 0, "positive"),
        ("train.lr_milestones", train.lr_milestones,
         all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in train.lr_milestones),
         "a list of epochs (integers ≥ 1)"),
        ("train.lr_values", train.lr_values,
         not train.lr_values or (len(train.lr_values) == len(train.lr_milestones)
                                 and all(_finite_number(v) and v > 0 for v in train.lr_values)
                                 and list(train.lr_milestones) == sorted(set(train.lr_milestones))),
         f"empty or {len(train.lr_milestones)} positive learning rates, one per train.lr_milestones entry "
         "(milestones increasing)"),
        ("train.grad_clip", train.grad_clip, _finite_number(train.grad_clip) and train.grad_clip >= 0,
         "non-negative (0 disables)"),
        ("train.early_stopping_patience", train.early_stopping_patience, train.early_stopping_patience >= 0,
         "non-negative (0 disables)"),
        ("train.log_every_steps", train.log_every_steps, train.log_every_steps >= 0, "0 (off) or a number of steps"),
        ("train.collapse_threshold", train.collapse_threshold, train.collapse_threshold >= 0, "non-negative"),
        ("train.optimizer", train.optimizer, train.optimizer in ("adam", "adamw"), "'adam' or 'adamw'"),
        ("train.precision", train.precision, train.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
        ("train.lr_schedule", train.lr_schedule, train.lr_schedule in ("cosine", "multistep", "constant"),
         "'cosine', 'multistep' or 'constant'"),
        ("loss.free_bits", loss.free_bits, _finite_number(loss.free_bits) and loss.free_bits >= 0, "non-negative"),
        ("loss.recon_reduction", loss.recon_reduction, loss.recon_reduction in ("sum", "mean"), "'sum' or 'mean'"),
        ("loss.free_bits_mode", loss.free_bits_mode, loss.free_bits_mode in ("per_sample", "batch_mean"),
         "'per_sample' or 'batch_mean'"),
    ]
    for key, value, ok, expected in checks:
        if not ok:
            raise VaekitUsageError(f"{key} must be {expected}, got {value!r}")
    objective_options(config)


def save_config(config: Config, path: Path) -> None:
    """Write ``config.yaml`` atomically: a crash or a full disk leaves the previous one intact."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))
