"""A small name -> object registry, shared by models, domains and beta schedules."""

from collections.abc import Callable
from typing import Generic, TypeVar

from vaekit.errors import unknown_name_error

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; an unknown name raises an error listing the valid ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
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
