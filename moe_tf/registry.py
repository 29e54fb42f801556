"""A tiny name → component registry, one per pluggable axis.

Usage::

    GATES = Registry("gate")

    @GATES.register("softmax")
    class SoftmaxGate(...): ...

    GATES.get("softmax")
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from moe_tf.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps string keys to components of one kind (e.g. gates)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, key: str) -> Callable[[T], T]:
        def decorator(component: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = component
            return component

        return decorator

    def get(self, key: str, path: str | None = None) -> T:
        if key not in self._items:
            known = ", ".join(sorted(self._items)) or "(none)"
            hint = difflib.get_close_matches(key, self._items, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            where = f"{path}: " if path else ""
            raise ConfigError(f"{where}unknown {self.kind} {key!r}{did_you_mean}; known: {known}")
        return self._items[key]

    def keys(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items
