"""One name → component registry per pluggable axis, and the five axes.

A component registers itself into its axis's registry when its module is imported::

    from moe_tf.registry import GATES

    @GATES.register("softmax")
    class SoftmaxGate(...): ...

Each registry names the package that fills it (one file per component, file name = key) and, on its first lookup,
imports every module in that package's folder, so `GATES.get("softmax")` always finds every gate — adding one is a
new file with its `@GATES.register` line, nothing else — while importing this module (as the config schema does)
imports no component and no TensorFlow.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from moe_tf.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps string keys to components of one kind (e.g. gates).

    Args:
        kind: what a component is, for messages ("gate").
        package: the package whose modules register the components (None: components register explicitly).
    """

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package
        self._items: dict[str, T] = {}
        self._loaded = package is None

    def register(self, key: str) -> Callable[[T], T]:
        def decorator(component: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = component
            return component

        return decorator

    def _load(self) -> None:
        if not self._loaded and self.package is not None:
            self._loaded = True  # before the import: the package's modules register while it runs
            try:
                package = importlib.import_module(self.package)
                for module in pkgutil.iter_modules(package.__path__):
                    importlib.import_module(f"{self.package}.{module.name}")
            except BaseException:
                self._loaded = False
                raise

    def get(self, key: str, path: str | None = None) -> T:
        self._load()
        if key not in self._items:
            known = ", ".join(sorted(self._items)) or "(none)"
            hint = difflib.get_close_matches(key, self._items, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            where = f"{path}: " if path else ""
            raise ConfigError(f"{where}unknown {self.kind} {key!r}{did_you_mean}; known: {known}")
        return self._items[key]

    def keys(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._items.items())

    def __contains__(self, key: str) -> bool:
        self._load()
        return key in self._items


DATASETS: Registry = Registry("dataset", "moe_tf.data")
STEMS: Registry = Registry("stem", "moe_tf.models.stems")
GATES: Registry = Registry("gate", "moe_tf.models.gates")
ARCHITECTURES: Registry = Registry("architecture", "moe_tf.models.architectures")
WEIGHTINGS: Registry = Registry("weighting", "moe_tf.training.weightings")
