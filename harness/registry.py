"""Registries whose decorators record their arguments (DESIGN principle 7).

Anything registered can be rebuilt from the ``{"name", "args"}`` spec stored in a run. Built-ins
register exactly like third-party plugins, which are found through entry points (group
``harness.<kind>``) the first time a name is missing.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins_module: str | None = None) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._builtins_module = builtins_module
        self._loaded_builtins = False
        self._loaded_plugins = False

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and self._factories[name] is not factory:
                raise HarnessError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def _ensure(self) -> None:
        if not self._loaded_builtins and self._builtins_module:
            self._loaded_builtins = True
            __import__(self._builtins_module)

    def _load_plugins(self) -> None:
        if self._loaded_plugins:
            return
        self._loaded_plugins = True
        for ep in entry_points(group=f"harness.{self.kind}s"):
            if ep.name not in self._factories:
                ep.load()

    def names(self) -> list[str]:
        self._ensure()
        self._load_plugins()
        return sorted(self._factories)

    def factory(self, name: str) -> Callable[..., T]:
        self._ensure()
        if name not in self._factories:
            self._load_plugins()
        if name not in self._factories:
            close = difflib.get_close_matches(name, self._factories, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(self._factories))}"
            raise HarnessError(f"unknown {self.kind} {name!r}", hint=hint)
        return self._factories[name]

    def build(self, name: str, args: dict[str, Any] | None = None) -> T:
        factory = self.factory(name)
        args = dict(args or {})
        try:
            inspect.signature(factory).bind(**args)
        except TypeError as exc:
            raise HarnessError(f"{self.kind} {name!r}: bad arguments {args}: {exc}") from None
        obj = factory(**args)
        with contextlib.suppress(AttributeError):
            obj.spec = {"name": name, "args": args}  # type: ignore[attr-defined]
        return obj
