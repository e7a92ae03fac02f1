"""Verifiable instructions in the one registry, rebuilt from ``{"id", "kwargs"}`` specs.

IFEval (Zhou et al., 2023, arXiv:2311.07911) defines 25 "verifiable instructions", each a
deterministic program with a few parameters ("at least 300 words", "end with 'Peace.'"). A run
stores only the id and the parameters, so :data:`INSTRUCTIONS` (a :class:`harness.registry.Registry`,
the one scorers and generators use) records, per id, how to rebuild the checker and which
parameters it takes, and validates a spec against them before anything is checked: a typo in a spec
fails loudly instead of scoring 0.

Checkers register with :func:`instruction`, on a class (its constructor's parameters are the
kwargs; a frozen dataclass is the natural shape) or on a function ``f(response, *, kwarg...)``.
The built-ins in :mod:`harness.instructions.checks` register exactly as third-party code does;
other packages are found through the ``harness.instructions`` entry-point group, imported lazily
the first time an unknown id is asked for or the full list is wanted.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from harness.errors import InstructionSpecError, UnknownInstructionError
from harness.instructions.text import loose_variants
from harness.registry import Entry, Registry, signature

__all__ = [
    "ENTRY_POINT_GROUP",
    "INSTRUCTIONS",
    "Checker",
    "InstructionResult",
    "Mode",
    "Verdict",
    "build_instruction",
    "check_instructions",
    "get_instruction",
    "instruction",
    "registered_instructions",
    "validate_instruction",
]

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


INSTRUCTIONS: Registry[Checker] = Registry(
    "instruction", builtins_module="harness.instructions.checks", noun="instruction id", context=(PROMPT_KWARG,),
    error=InstructionSpecError, unknown_error=UnknownInstructionError,
)
ENTRY_POINT_GROUP = INSTRUCTIONS.group
"""Entry-point group whose targets are imported to register third-party instructions."""


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


T = TypeVar("T")


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
    what specs are validated against (by pydantic, strictly); a parameter named ``prompt`` receives
    the case's prompt. Registering a taken id from a different object is an error unless
    ``replace=True``. The decorated object is returned unchanged.
    """

    def register(target: T) -> T:
        if not callable(target):
            raise TypeError(f"@instruction({instruction_id!r}) needs a class or a function")
        name = getattr(target, "__qualname__", repr(target))
        if isinstance(target, type):
            if not callable(getattr(target, "check", None)):
                raise TypeError(f"{name} needs a check(response) method")
            INSTRUCTIONS.register(instruction_id, replace=replace)(target)
            return target
        sig = signature(target)
        params = list(sig.parameters.values())
        if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                inspect.Parameter.POSITIONAL_OR_KEYWORD):
            raise TypeError(f"{name} must take the response as its first argument")
        func: Callable[..., Any] = target

        def factory(**kwargs: Any) -> Checker:
            return _FunctionChecker(func, kwargs)

        INSTRUCTIONS.register(instruction_id, replace=replace, sig=sig.replace(parameters=params[1:]),
                              described_by=target)(factory)
        return target

    return register


def get_instruction(instruction_id: str) -> Entry[Checker]:
    """The registry entry for ``instruction_id``; plugins are imported on the first miss.

    Raises :class:`~harness.errors.UnknownInstructionError` naming the closest registered ids.
    """
    return INSTRUCTIONS.entry(instruction_id)


def registered_instructions() -> dict[str, Entry[Checker]]:
    """All registered instructions, plugins included, sorted by id."""
    return INSTRUCTIONS.entries()


def _present(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``None`` values count as absent: the Hugging Face release of IFEval stores every parameter
    name on every instruction, most of them null."""
    return {k: v for k, v in (kwargs or {}).items() if v is not None}


def validate_instruction(
    instruction_id: str, kwargs: Mapping[str, Any] | None, prompt: str | None = None, where: str | None = None
) -> dict[str, Any]:
    """The validated kwargs of one instruction (``prompt`` filled in if it takes one), or
    :class:`~harness.errors.InstructionSpecError` naming the bad kwarg."""
    return get_instruction(instruction_id).validate(_present(kwargs), where, {PROMPT_KWARG: prompt})


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
    return INSTRUCTIONS.construct(instruction_id, _present(kwargs), context={PROMPT_KWARG: prompt}).product


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
    raises :class:`~harness.errors.InstructionSpecError`, while a checker that raises yields a
    result with ``error`` set.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, got {type(response).__name__}")
    built: list[tuple[str, dict[str, Any], Checker]] = []
    for index, spec in enumerate(instructions):
        where = f"instruction {index}"
        instruction_id, kwargs = _spec_parts(spec, where)
        one = INSTRUCTIONS.construct(instruction_id, _present(kwargs), f"{where} ({instruction_id})",
                                     {PROMPT_KWARG: prompt})
        built.append((instruction_id, one.args, one.product))

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
