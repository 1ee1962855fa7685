"""Training objectives: a registry of plug-ins, one file each, any model with a Gaussian posterior.

    @register_objective("btcvae")
    class BetaTCVAE(Objective):          # its docstring's first line is its line in `vaekit models`
        keys = {"beta": Key(6.0, "Weight of the total correlation.", "positive", positive), ...}

        def forward(self, model, batch, beta, loss_cfg) -> Loss: ...

Each objective's keys become config keys under ``objective.*`` (``vaekit.config.ObjectiveConfig``
is generated from this registry), so `--set objective.beta=6`, the API's keywords and
docs/configuration.md come from the one declaration in the objective's file. docs/objectives.md has
each objective's formula and paper.
"""

from __future__ import annotations

from vaekit.errors import VaekitUsageError
from vaekit.objectives.base import Key, Loss, Objective, ObjectiveContext
from vaekit.registry import Registry, import_submodules


def check_objective_class(name: str, cls: type) -> None:
    """A registered objective subclasses Objective, has a docstring, and every key a default and help."""
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise TypeError(f"objective '{name}' must subclass vaekit.objectives.base.Objective")
    if not (cls.__doc__ or "").strip():
        raise TypeError(f"objective '{name}' ({cls.__name__}) needs a docstring: its line in `vaekit models`")
    for key_name, key in cls.keys.items():
        if not isinstance(key, Key) or not key.help:
            raise TypeError(f"objective '{name}': key '{key_name}' must be a Key with a help text")


OBJECTIVES: Registry[type[Objective]] = Registry("objective", check_objective_class)
register_objective = OBJECTIVES.register
DEFAULT_OBJECTIVE = "elbo"


def objective_key_names() -> list[str]:
    """Every key any objective declares, in registration order (the fields of ObjectiveConfig)."""
    names: list[str] = []
    for name in OBJECTIVES.names():
        names += [key for key in OBJECTIVES.get(name).keys if key not in names]
    return names


def key_declarations(key: str) -> dict[str, Key]:
    """The objectives that declare ``key``, each with its declaration."""
    return {name: OBJECTIVES.get(name).keys[key] for name in OBJECTIVES.names() if key in OBJECTIVES.get(name).keys}


def resolved_options(name: str, given: dict) -> dict:
    """The keys of objective ``name`` with their values: ``given``'s where set (not None), else the
    defaults; refuses a key the objective does not take and a value out of range (exit 2)."""
    cls = OBJECTIVES.get(name)
    foreign = [key for key, value in given.items() if value is not None and key not in cls.keys]
    if foreign:
        takes = ", ".join(f"objective.{key}" for key in cls.keys) or "no keys"
        raise VaekitUsageError(f"objective.{foreign[0]} is not a key of objective '{name}'; it takes: {takes}")
    options = {key: (given.get(key) if given.get(key) is not None else declared.default)
               for key, declared in cls.keys.items()}
    for key, value in options.items():
        if not cls.keys[key].valid(value):
            raise VaekitUsageError(f"objective.{key} must be {cls.keys[key].expected} for objective '{name}', "
                                   f"got {value!r}")
    return options


def takes_objective(model_name: str, name: str) -> bool:
    """True when the registered model ``model_name`` can train with objective ``name``."""
    from vaekit.models import MODELS

    return _takes(MODELS.get(model_name), name)


def _takes(model_cls: type, name: str) -> bool:
    return not OBJECTIVES.get(name).needs_gaussian_posterior or getattr(model_cls, "gaussian_posterior", False)


def check_model_takes(name: str, model_name: str, model_cls: type) -> None:
    """Refuse an objective the model cannot train with, naming the objectives it takes."""
    if not _takes(model_cls, name):
        takes = ", ".join(n for n in OBJECTIVES.names() if not OBJECTIVES.get(n).needs_gaussian_posterior)
        raise VaekitUsageError(f"model '{model_name}' cannot train with objective '{name}' (its posterior is not one "
                               f"diagonal Gaussian with the standard terms); it takes: {takes}")


def create_objective(name: str, given: dict, context: ObjectiveContext) -> Objective:
    """Build a registered objective from its config keys (unset ones take the defaults)."""
    return OBJECTIVES.get(name)(resolved_options(name, given), context)


def describe(name: str) -> str:
    """The first line of an objective's docstring."""
    return (OBJECTIVES.get(name).__doc__ or "").strip().splitlines()[0]


import_submodules(__name__, __path__)  # each module but base registers one objective

__all__ = ["OBJECTIVES", "DEFAULT_OBJECTIVE", "Key", "Loss", "Objective", "ObjectiveContext", "create_objective",
           "register_objective", "resolved_options", "check_model_takes", "objective_key_names", "key_declarations"]
