"""Registry of verifiable instructions, rebuilt from ``{"id", "kwargs"}`` specs.

IFEval (Zhou et al., 2023, arXiv:2311.07911) defines 25 "verifiable instructions", each a
deterministic program with a few parameters ("at least 300 words", "end with 'Peace.'"). A run
stores only the id and the parameters, so the registry records, per id, how to rebuild the checker
and which parameters it takes (name, type, required or not), and validates a spec against that
before anything is checked: a typo in a spec fails loudly instead of scoring 0.

Checkers register with :func:`instruction`, on a class (its constructor's parameters are the
kwargs; a frozen dataclass is the natural shape) or on a function ``f(response, *, kwarg...)``.
The built-ins in :mod:`harness.instructions.checks` register exactly as third-party code does;
other packages are found through the ``harness.instructions`` entry-point group, imported lazily
the first time an unknown id is asked for or the full list is wanted.
"""

from __future__ import annotations

import copy
import difflib
import importlib.metadata
import inspect
import threading
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from harness.errors import InstructionSpecError, UnknownInstructionError
from harness.instructions.text import loose_variants

__all__ = [
    "ENTRY_POINT_GROUP",
    "Checker",
    "InstructionResult",
    "InstructionSpecError",
    "KwargSpec",
    "Mode",
    "RegisteredInstruction",
    "UnknownInstructionError",
    "Verdict",
    "build_instruction",
    "check_instructions",
    "get_instruction",
    "instruction",
    "registered_instructions",
]

ENTRY_POINT_GROUP = "harness.instructions"
"""Entry-point group whose targets are imported to register third-party instructions."""

PROMPT_KWARG = "prompt"
"""A checker parameter with this name receives the case's prompt unless the spec sets it."""

Mode = Literal["strict", "loose"]
_MODES: tuple[str, ...] = ("strict", "loose")


class Verdict(NamedTuple):
    """What a checker says about one response: followed or not, and why (numbers included)."""

    followed: bool
    explanation: str


@runtime_checkable
class Checker(Protocol):
    """A built instruction: parameters bound, ready to judge responses."""

    def check(self, response: str) -> Verdict: ...


@dataclass(frozen=True)
class InstructionResult:
    """The verdict on one instruction for one response.

    ``kwargs`` are the validated parameters the checker ran with (a copy, never the caller's
    dict). ``error`` is set, and ``followed`` is False, when the checker itself raised: the
    failure is kept as a value so it is counted rather than lost.
    """

    id: str
    kwargs: dict[str, Any] = field(hash=False)
    followed: bool
    explanation: str
    error: str | None = None


_MISSING: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class KwargSpec:
    """One parameter of an instruction: its name, type annotation and default (if optional)."""

    name: str
    annotation: Any
    default: Any = _MISSING

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def validate(self, value: Any, where: str) -> Any:
        """Return ``value`` (lists copied) if it matches the annotation, else raise."""
        return _conform(value, self.annotation, f"{where}: kwarg {self.name!r}")

    def json_schema(self) -> dict[str, Any]:
        return _json_schema(self.annotation)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return f"list[{_type_name(item)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", repr(annotation))


def _conform(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is _MISSING:
        return copy.deepcopy(value)
    if origin is Literal:
        if value in typing.get_args(annotation) and not isinstance(value, bool):
            return value
    elif origin in (types.UnionType, typing.Union):
        for option in typing.get_args(annotation):
            try:
                return _conform(value, option, where)
            except InstructionSpecError:
                continue
    elif origin in (list, Sequence):
        (item,) = typing.get_args(annotation) or (Any,)
        if isinstance(value, list | tuple):
            return [_conform(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif annotation is type(None):
        if value is None:
            return None
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
    else:
        return copy.deepcopy(value)
    raise InstructionSpecError(f"{where} must be {_type_name(annotation)}, got {value!r}")


def _json_schema(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {"enum": list(typing.get_args(annotation))}
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_json_schema(a) for a in typing.get_args(annotation)]}
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return {"type": "array", "items": _json_schema(item)}
    simple = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}
    if annotation in simple:
        return {"type": simple[annotation]}
    return {}


@dataclass(frozen=True)
class RegisteredInstruction:
    """A registry entry: the id, the kwargs it takes, and how to build its checker."""

    id: str
    kwargs: tuple[KwargSpec, ...]
    factory: Callable[..., Checker]
    description: str
    origin: str

    @property
    def uses_prompt(self) -> bool:
        return any(k.name == PROMPT_KWARG for k in self.kwargs)

    def validate_kwargs(
        self, kwargs: Mapping[str, Any] | None, prompt: str | None = None, where: str | None = None
    ) -> dict[str, Any]:
        """Check ``kwargs`` against the declared parameters and return a validated copy.

        ``None`` values count as absent: the Hugging Face release of IFEval stores every
        parameter name on every instruction, most of them null.
        """
        where = where or self.id
        given = {k: v for k, v in (kwargs or {}).items() if v is not None}
        known = {k.name: k for k in self.kwargs}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise InstructionSpecError(
                f"{where}: unknown kwarg(s) {', '.join(map(repr, unknown))}; "
                f"{self.id} takes {self.signature()}"
            )
        if self.uses_prompt and PROMPT_KWARG not in given and prompt is not None:
            given[PROMPT_KWARG] = prompt
        missing = [k.name for k in self.kwargs if k.required and k.name not in given]
        if missing:
            raise InstructionSpecError(
                f"{where}: missing kwarg(s) {', '.join(map(repr, missing))}; "
                f"{self.id} takes {self.signature()}"
            )
        return {name: known[name].validate(value, where) for name, value in given.items()}

    def build(
        self, kwargs: Mapping[str, Any] | None = None, prompt: str | None = None, where: str | None = None
    ) -> Checker:
        """Validate ``kwargs`` and return the bound checker."""
        return self.factory(**self.validate_kwargs(kwargs, prompt, where))

    def signature(self) -> str:
        """Human-readable parameter list, e.g. ``(num_words: int, relation: 'less than' | 'at least')``."""
        parts = []
        for k in self.kwargs:
            text = f"{k.name}: {_type_name(k.annotation)}"
            parts.append(text if k.required else f"{text} = {k.default!r}")
        return f"({', '.join(parts)})"

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the kwargs object, for validators/ files and editors."""
        return {
            "type": "object",
            "properties": {k.name: k.json_schema() for k in self.kwargs},
            "required": [k.name for k in self.kwargs if k.required and k.name != PROMPT_KWARG],
            "additionalProperties": False,
        }


_registry: dict[str, RegisteredInstruction] = {}
_lock = threading.RLock()
_entry_points_loaded = False

T = TypeVar("T")


def _kwarg_specs(target: Callable[..., Any], skip_first: bool) -> tuple[KwargSpec, ...]:
    sources: list[Any] = [target, target.__init__] if isinstance(target, type) else [target]  # type: ignore[misc]
    hints: dict[str, Any] = {}
    for source in sources:
        try:
            hints.update(typing.get_type_hints(source))
        except Exception as exc:
            raise TypeError(
                f"cannot resolve the parameter annotations of {target.__qualname__}: {exc}; "
                "the registry validates kwargs against them"
            ) from exc
    params = list(inspect.signature(target).parameters.values())
    if skip_first:
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise TypeError(f"{target.__qualname__} must take the response as its first argument")
        params = params[1:]
    specs = []
    for p in params:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"{target.__qualname__}: *args/**kwargs cannot be validated; name each kwarg")
        specs.append(KwargSpec(p.name, hints.get(p.name, Any), p.default))
    return tuple(specs)


class _FunctionChecker:
    """Adapts ``f(response, **kwargs) -> bool | (bool, str) | Verdict`` to :class:`Checker`."""

    def __init__(self, func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        self._func = func
        self._kwargs = kwargs

    def check(self, response: str) -> Verdict:
        return _as_verdict(self._func(response, **self._kwargs))


def _as_verdict(outcome: Any) -> Verdict:
    if isinstance(outcome, Verdict):
        return outcome
    if isinstance(outcome, bool):
        return Verdict(outcome, "followed" if outcome else "not followed")
    if isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[0], bool):
        return Verdict(outcome[0], str(outcome[1]))
    raise TypeError(f"a checker must return bool, (bool, str) or Verdict, got {outcome!r}")


def instruction(instruction_id: str, *, replace: bool = False) -> Callable[[T], T]:
    """Register a checker class or function under ``instruction_id`` ("group:name").

    A class is built with the kwargs as constructor arguments and must have
    ``check(response) -> Verdict``. A function is called as ``f(response, **kwargs)`` and returns
    a bool, ``(bool, explanation)`` or a :class:`Verdict`. Type annotations on the parameters are
    the schema specs are validated against (``int``, ``str``, ``float``, ``bool``, ``list[str]``,
    ``Literal[...]``, ``X | None``); a parameter named ``prompt`` receives the case's prompt.
    Registering a taken id from a different object is an error unless ``replace=True``.
    The decorated object is returned unchanged.
    """
    if not isinstance(instruction_id, str) or not instruction_id or instruction_id != instruction_id.strip():
        raise ValueError(f"instruction id must be non-empty, without surrounding spaces: {instruction_id!r}")

    def register(target: T) -> T:
        if not callable(target):
            raise TypeError(f"@instruction({instruction_id!r}) needs a class or a function")
        name = getattr(target, "__qualname__", repr(target))
        is_class = isinstance(target, type)
        if is_class and not callable(getattr(target, "check", None)):
            raise TypeError(f"{name} needs a check(response) method")
        kwargs = _kwarg_specs(target, skip_first=not is_class)
        doc = inspect.getdoc(target) or ""
        origin = f"{getattr(target, '__module__', '?')}:{name}"
        if is_class:
            factory: Callable[..., Checker] = target
        else:

            def factory(**kw: Any) -> Checker:
                return _FunctionChecker(target, kw)

        entry = RegisteredInstruction(instruction_id, kwargs, factory, doc.split("\n\n")[0], origin)
        with _lock:
            existing = _registry.get(instruction_id)
            if existing is not None and existing.origin != origin and not replace:
                raise ValueError(
                    f"instruction id {instruction_id!r} is already registered by {existing.origin}; "
                    f"pass replace=True to override it from {origin}"
                )
            _registry[instruction_id] = entry
        return target

    return register


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:
                warnings.warn(
                    f"instruction plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                    f"{type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )


def get_instruction(instruction_id: str) -> RegisteredInstruction:
    """The registry entry for ``instruction_id``; plugins are imported on the first miss.

    Raises :class:`UnknownInstructionError` naming the closest registered ids.
    """
    entry = _registry.get(instruction_id)
    if entry is None:
        _load_entry_points()
        entry = _registry.get(instruction_id)
    if entry is None:
        known = sorted(_registry)
        close = difflib.get_close_matches(str(instruction_id), known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"{len(known)} ids are registered"
        raise UnknownInstructionError(f"unknown instruction id {instruction_id!r}; {hint}")
    return entry


def registered_instructions() -> dict[str, RegisteredInstruction]:
    """All registered instructions, plugins included, sorted by id."""
    _load_entry_points()
    with _lock:
        return dict(sorted(_registry.items()))


def _spec_parts(spec: Mapping[str, Any], where: str) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(spec, Mapping):
        raise InstructionSpecError(f'{where}: expected {{"id": str, "kwargs": {{...}}}}, got {spec!r}')
    extra = sorted(set(spec) - {"id", "kwargs"})
    if extra:
        keys = ", ".join(map(repr, extra))
        raise InstructionSpecError(f"{where}: unknown key(s) {keys}; expected only id and kwargs")
    instruction_id = spec.get("id")
    if not isinstance(instruction_id, str):
        raise InstructionSpecError(f'{where}: "id" must be a string, got {instruction_id!r}')
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise InstructionSpecError(f'{where}: "kwargs" must be an object, got {kwargs!r}')
    return instruction_id, kwargs


def build_instruction(spec: Mapping[str, Any], prompt: str | None = None) -> Checker:
    """Rebuild a checker from its stored ``{"id": ..., "kwargs": {...}}`` form."""
    instruction_id, kwargs = _spec_parts(spec, "instruction")
    return get_instruction(instruction_id).build(kwargs, prompt)


def check_instructions(
    response: str,
    instructions: Iterable[Mapping[str, Any]],
    prompt: str | None = None,
    mode: Mode = "strict",
) -> list[InstructionResult]:
    """Judge ``response`` against each ``{"id", "kwargs"}`` spec, in order.

    ``mode="strict"`` checks the response as given; ``mode="loose"`` is IFEval's loose accuracy
    (Zhou et al., 2023): an instruction counts as followed if any of the eight variants from
    :func:`~harness.instructions.text.loose_variants` passes. As in IFEval, a blank response (or a
    blank variant) follows nothing. Every spec is validated before any check runs; a bad spec
    raises :class:`InstructionSpecError`, while a checker that raises yields a result with
    ``error`` set.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, got {type(response).__name__}")
    built: list[tuple[str, dict[str, Any], Checker]] = []
    for index, spec in enumerate(instructions):
        where = f"instruction {index}"
        instruction_id, kwargs = _spec_parts(spec, where)
        entry = get_instruction(instruction_id)
        valid = entry.validate_kwargs(kwargs, prompt, f"{where} ({instruction_id})")
        built.append((instruction_id, valid, entry.factory(**valid)))

    variants = loose_variants(response) if mode == "loose" else [("as given", response)]
    results = []
    for instruction_id, valid, checker in built:
        verdict, error = _first_passing(checker, variants)
        results.append(InstructionResult(instruction_id, copy.deepcopy(valid), verdict.followed,
                                         verdict.explanation, error))
    return results


def _judge(checker: Checker, text: str) -> tuple[Verdict, str | None]:
    if not text.strip():
        return Verdict(False, "empty response"), None
    try:
        return _as_verdict(checker.check(text)), None
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        return Verdict(False, f"checker failed: {message}"), message


def _first_passing(checker: Checker, variants: Sequence[tuple[str, str]]) -> tuple[Verdict, str | None]:
    """The first variant's verdict, unless a later variant passes (then that one, labelled)."""
    first = _judge(checker, variants[0][1])
    if first[0].followed:
        return first
    for name, text in variants[1:]:
        verdict, _ = _judge(checker, text)
        if verdict.followed:
            return Verdict(True, f"{verdict.explanation} (loose: {name})"), None
    return first
