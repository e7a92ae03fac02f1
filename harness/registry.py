"""One registry for everything a run rebuilds by name: scorers, generators, instructions.

Anything registered is rebuilt from the ``{"name", "args"}`` spec stored in a run (DESIGN
principle 7). A factory (a class or a function) registers with :meth:`Registry.register`; its
keyword parameters, with their annotations and defaults, are the arguments a spec may give, and
pydantic validates them (strictly: ``"10"`` is not an int, ``True`` is not a number) before the
factory runs, so a typo or a wrong type in a spec is one line naming the kind, the name and the
argument, never a crash or a silently different run. A factory taking ``**kwargs`` checks the
extra arguments itself.

Built-ins register exactly as third-party plugins do, with the same decorator: the built-ins
module is imported the first time a registry is used, plugins (entry-point group
``harness.<kind>s``) the first time a name is missing or the full list is wanted.
:meth:`Registry.build` records the spec on the product (``product.spec``) and fails loudly if it
cannot; :meth:`Registry.construct` returns a :class:`Built` record instead, for products that keep
no spec (instruction checkers: their results record id and kwargs).
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
import importlib.metadata
import inspect
import threading
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from harness.errors import RegistryError, UnknownNameError

__all__ = ["Built", "Entry", "Param", "Registry", "signature", "type_name"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_MISSING: Any = inspect.Parameter.empty


def type_name(annotation: Any) -> str:
    """How a parameter's type reads in a message: ``int``, ``'less than' | 'at least'``, ``list[str]``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', repr(origin))}[{args}]" if args else getattr(origin, "__name__", "?")
    if annotation is type(None):
        return "None"
    if annotation is Any or annotation is _MISSING:
        return "Any"
    return getattr(annotation, "__name__", repr(annotation))


class _Schema(GenerateJsonSchema):
    """JSON Schema of a parameter; a ``Literal`` is just its ``enum`` (the values say the type)."""

    def literal_schema(self, schema: core_schema.LiteralSchema) -> JsonSchemaValue:
        return {"enum": list(schema["expected"])}


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


@dataclass(frozen=True)
class Param:
    """One keyword argument of a registered factory: its name, type annotation and default (if optional)."""

    name: str
    annotation: Any = Any
    default: Any = _MISSING

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def json_schema(self) -> dict[str, Any]:
        if self.annotation is Any:
            return {}
        return _adapter(self.annotation).json_schema(schema_generator=_Schema)

    def validate(self, value: Any, where: str, error: type[RegistryError]) -> Any:
        """A validated copy of ``value`` (never the caller's object), or ``error`` naming the argument."""
        if self.annotation is Any:
            return copy.deepcopy(value)
        try:
            return _adapter(self.annotation).validate_python(copy.deepcopy(value), strict=True)
        except ValidationError:
            raise error(f"{where}: kwarg {self.name!r} must be {type_name(self.annotation)}, got {value!r}") from None


@dataclass(frozen=True)
class Built(Generic[T]):
    """A product with the spec that rebuilds it and the validated arguments it was built with."""

    spec: dict[str, Any]
    args: dict[str, Any]
    product: T


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered name: its factory, the keyword arguments it takes, where it comes from."""

    kind: str
    name: str
    factory: Callable[..., T]
    kwargs: tuple[Param, ...]
    open: bool
    """The factory takes ``**kwargs``: arguments beyond :attr:`kwargs` are the factory's to check."""
    description: str
    origin: str
    context: tuple[str, ...] = ()
    """Arguments the caller fills in from the case when a spec leaves them out (an instruction's prompt)."""
    error: type[RegistryError] = field(default=RegistryError, repr=False)

    def signature(self) -> str:
        """Human-readable parameter list, e.g. ``(num_words: int, relation: 'less than' | 'at least')``."""
        parts = []
        for k in self.kwargs:
            text = f"{k.name}: {type_name(k.annotation)}"
            parts.append(text if k.required else f"{text} = {k.default!r}")
        if self.open:
            parts.append("**kwargs")
        return f"({', '.join(parts)})"

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of a spec's arguments object, for validators/ files and editors."""
        return {
            "type": "object",
            "properties": {k.name: k.json_schema() for k in self.kwargs},
            "required": [k.name for k in self.kwargs if k.required and k.name not in self.context],
            "additionalProperties": self.open,
        }

    def validate(
        self, args: Mapping[str, Any] | None, where: str | None = None, context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Validated copies of ``args`` (``context`` filling what they leave out): unknown, missing and
        mistyped arguments are one-line errors."""
        where = where or f"{self.kind} {self.name!r}"
        given = dict(args or {})
        known = {k.name: k for k in self.kwargs}
        unknown = sorted(set(given) - set(known))
        if unknown and not self.open:
            raise self.error(f"{where}: unknown kwarg(s) {', '.join(map(repr, unknown))}; "
                             f"{self.name} takes {self.signature()}")
        for name, value in (context or {}).items():
            if name in self.context and name not in given and value is not None:
                given[name] = value
        missing = [k.name for k in self.kwargs if k.required and k.name not in given]
        if missing:
            raise self.error(f"{where}: missing kwarg(s) {', '.join(map(repr, missing))}; "
                             f"{self.name} takes {self.signature()}")
        return {name: known[name].validate(value, where, self.error) if name in known else copy.deepcopy(value)
                for name, value in given.items()}


def signature(target: Callable[..., Any]) -> inspect.Signature:
    """``target``'s signature with its annotations evaluated (the types arguments are validated against)."""
    try:
        return inspect.signature(target, eval_str=True)
    except Exception as exc:
        raise TypeError(f"cannot resolve the parameter annotations of {getattr(target, '__qualname__', target)}: "
                        f"{exc}; the registry validates arguments against them") from exc


def _params(sig: inspect.Signature, what: str) -> tuple[tuple[Param, ...], bool]:
    params, open_ = [], False
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            open_ = True
        elif p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise TypeError(f"{what}: arguments come by name from a spec; {p.name!r} cannot be given by name")
        else:
            annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
            params.append(Param(p.name, annotation, p.default))
    return tuple(params), open_


class Registry(Generic[T]):
    """Named factories of one kind, built from ``{"name", "args"}`` specs with validated arguments."""

    def __init__(
        self,
        kind: str,
        *,
        builtins_module: str,
        noun: str | None = None,
        context: tuple[str, ...] = (),
        error: type[RegistryError] = RegistryError,
        unknown_error: type[UnknownNameError] = UnknownNameError,
    ) -> None:
        self.kind = kind
        self.noun = noun or kind
        self.group = f"harness.{kind}s"
        """Entry-point group whose targets are imported to register third-party factories."""
        self._builtins = builtins_module
        self._context = context
        self._error = error
        self._unknown_error = unknown_error
        self._entries: dict[str, Entry[T]] = {}
        self._lock = threading.RLock()
        self._builtins_loaded = False
        self._plugins_loaded = False

    def register(
        self, name: str, *, replace: bool = False, sig: inspect.Signature | None = None,
        described_by: object | None = None,
    ) -> Callable[[F], F]:
        """Register a factory under ``name``; the decorated factory is returned unchanged.

        Its keyword parameters (or those of ``sig``, for an adapter) are the arguments a spec may give.
        ``described_by`` is what the entry's origin and description come from (default: the factory).
        Registering a taken name from a different origin is an error (also when the built-ins load
        after it) unless ``replace=True``.
        """
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind} name must be non-empty, without surrounding spaces: {name!r}")

        def deco(factory: F) -> F:
            if not callable(factory):
                raise TypeError(f"{self.kind} {name!r}: needs a class or a function")
            source = factory if described_by is None else described_by
            qualname = getattr(source, "__qualname__", repr(source))
            origin = f"{getattr(source, '__module__', '?')}:{qualname}"
            params, open_ = _params(signature(factory) if sig is None else sig, qualname)
            doc = inspect.getdoc(source) or ""
            if replace:  # an override comes after what it overrides
                self._load_builtins()
            context = tuple(k.name for k in params if k.name in self._context)
            entry: Entry[T] = Entry(self.kind, name, factory, params, open_, doc.split("\n\n")[0], origin, context,
                                    self._error)
            with self._lock:
                existing = self._entries.get(name)
                if existing is not None and existing.origin != origin and not replace:
                    raise RegistryError(f"{self.kind} {name!r} is already registered by {existing.origin}; "
                                     f"pass replace=True to override it from {origin}")
                self._entries[name] = entry
            return factory

        return deco

    def _load_builtins(self) -> None:
        with self._lock:
            if not self._builtins_loaded:
                self._builtins_loaded = True
                importlib.import_module(self._builtins)

    def _load_plugins(self) -> None:
        self._load_builtins()
        with self._lock:
            if self._plugins_loaded:
                return
            self._plugins_loaded = True
            for ep in importlib.metadata.entry_points(group=self.group):
                try:
                    ep.load()
                except Exception as exc:
                    warnings.warn(f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                                  f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=4)

    def entries(self) -> dict[str, Entry[T]]:
        """Every registered entry, plugins included, sorted by name."""
        self._load_plugins()
        with self._lock:
            return dict(sorted(self._entries.items()))

    def names(self) -> list[str]:
        return list(self.entries())

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``; plugins are imported on the first miss; unknown names get a did-you-mean."""
        self._load_builtins()
        found = self._entries.get(name)
        if found is None:
            self._load_plugins()
            found = self._entries.get(name)
        if found is None:
            known = sorted(self._entries)
            close = difflib.get_close_matches(str(name), known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
            raise self._unknown_error(f"unknown {self.noun} {name!r}", hint=hint)
        return found

    def factory(self, name: str) -> Callable[..., T]:
        return self.entry(name).factory

    def construct(
        self, name: str, args: Mapping[str, Any] | None = None, where: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Built[T]:
        """Validate ``args`` against ``name``'s parameters and build it; the spec is in the record."""
        entry = self.entry(name)
        valid = entry.validate(args, where, context)
        return Built({"name": name, "args": copy.deepcopy(dict(args or {}))}, valid, entry.factory(**valid))

    def build(self, name: str, args: Mapping[str, Any] | None = None) -> T:
        """:meth:`construct`, with the spec recorded as ``product.spec``; a product that cannot hold it is a bug."""
        built = self.construct(name, args)
        try:
            built.product.spec = built.spec  # type: ignore[attr-defined]
        except AttributeError as exc:
            raise TypeError(f"{self.kind} {name!r}: {type(built.product).__qualname__} cannot record the spec "
                            f"that rebuilds it ({exc}); a registered {self.kind} needs a writable `spec`") from exc
        return built.product
