"""A small name -> object registry, shared by models, domains, objectives and beta schedules."""

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from vaekit.errors import unknown_name_error

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; an unknown name raises an error listing the valid ones.

    ``check(name, obj)``, when given, runs at registration and raises TypeError naming what an entry
    lacks: a contract broken by a new model or domain shows at import, not in a user's run.
    """

    def __init__(self, kind: str, check: Callable[[str, T], None] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._check = check

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            if self._check is not None:
                self._check(name, obj)
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise unknown_name_error(self.kind, name, self._entries)
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def import_submodules(package: str, path) -> None:
    """Import every module of a package (``__name__``, ``__path__``) whose name does not start with
    '_', so that each registers what it defines: adding a model, a domain or an objective is adding
    one file (helper modules that register nothing are imported harmlessly)."""
    for module in pkgutil.iter_modules(path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
