"""The generation stage's types: requests, results, the generator protocol, typed errors, the registry.

A generator turns one rendered request into text. Everything that changes its output is split in
two so the cache key can be built from exactly that (DESIGN principles 1 and 8):
``identity()`` (the generator's side: kind, model, endpoint, every sampling parameter) and
``request_key_parts(req)`` (the request's side: the rendered messages, plus passages or the contract
for offline generators that read them). Secrets are never part of either.

Failures are raised as :class:`GenerationError` with a ``kind`` the engine uses to decide whether to
retry; the engine turns the final failure into a :class:`GenerationResult` with ``error`` set, so an
error is a counted value per case, never a dropped case (principle 10).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from harness.registry import Registry
from harness.types import Frozen

__all__ = [
    "FATAL_KINDS",
    "GENERATORS",
    "RETRYABLE_KINDS",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
]

# Error kinds. Retryable ones are transient by nature; the others fail the case at once.
RATE_LIMIT = "rate_limit"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
CONNECTION = "connection"
MALFORMED = "malformed_response"
AUTH = "auth"
CONFIG = "config"
BAD_REQUEST = "bad_request"
NOT_FOUND = "not_found"
REFUSAL = "refusal"
QUOTA = "quota"
INTERNAL = "internal"
EMPTY = "empty_response"  # the call succeeded but the answer has no content: never scored, never cached
CONTENT_FILTER = "content_filter"  # the endpoint's filter withheld the answer: final, the same request fails again

RETRYABLE_KINDS = frozenset({RATE_LIMIT, SERVER_ERROR, TIMEOUT, CONNECTION, MALFORMED})
# Kinds that will fail every other call the same way: after the first one the engine stops calling.
FATAL_KINDS = frozenset({AUTH, CONFIG, QUOTA, NOT_FOUND})


class GenerationRequest(Frozen):
    """One case's input to generation: the rendered chat messages and what an offline generator reads
    (``query``, ``passages``, ``contract``, ``instructions``; an online generator reads only ``messages``)."""

    case_id: str
    messages: tuple[dict[str, Any], ...]
    query: str = ""
    passages: tuple[dict[str, Any], ...] = ()
    contract: dict[str, Any] | None = None
    instructions: tuple[dict[str, Any], ...] = ()


class GenerationResult(Frozen):
    """One case's generation outcome. Exactly one of ``text`` / ``error`` is set.

    ``latency_s`` is the wall time this run spent on the case, from the first attempt to the last
    (backoff waits included; 0.0 for a cache hit). ``attempts`` counts calls made in this run (0 for
    a cache hit or a call skipped after a fatal error). ``cache_key`` is the content key the text is
    (or would be) cached under. ``finish_reason`` is why the model stopped, as the endpoint said
    (``"stop"``, ``"length"`` = cut off at ``max_tokens``, ...; ``None`` when it did not say); it is
    cached with the text, so a cache hit of a truncated answer is still marked truncated.
    """

    case_id: str
    text: str | None
    error: str | None = None
    error_kind: str | None = None
    latency_s: float = 0.0
    cache_hit: bool = False
    attempts: int = 0
    usage: dict[str, int] = Field(default_factory=dict)
    cache_key: str
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def truncated(self) -> bool:
        """The answer was cut off at the token limit (kept and scored, but recorded and counted)."""
        return self.finish_reason == "length"


class GenerationError(Exception):
    """A typed generation failure. ``kind`` is one of the module's kinds; ``retry_after_s`` is the
    server's ``Retry-After`` when it sent one. Messages must never contain a secret."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = kind in RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after_s = retry_after_s
        self.status = status

    def __str__(self) -> str:
        return self.message


Reply = tuple[str, dict[str, int]] | tuple[str, dict[str, int], str | None]
"""What a generator returns: ``(text, usage)`` or ``(text, usage, finish_reason)``."""


@runtime_checkable
class Generator(Protocol):
    """What the engine needs from a generator. ``spec`` (``{"name", "args"}``) is set by the registry."""

    spec: dict[str, Any]

    def identity(self) -> dict[str, Any]:
        """Everything on the generator's side that changes the output; JSON-able; no secrets."""
        ...

    def request_key_parts(self, req: GenerationRequest) -> dict[str, Any]:
        """Everything in the request this generator reads; JSON-able."""
        ...

    async def agenerate(self, req: GenerationRequest) -> Reply:
        """Return ``(text, usage)``, or ``(text, usage, finish_reason)`` when the generator knows why
        it stopped (a 2-tuple means it finished normally: ``"stop"``); raise :class:`GenerationError`
        on failure. An empty or whitespace-only text is turned into an ``empty_response`` error by
        the engine. An optional ``async aprepare()`` (e.g. creating an HTTP client) runs once per
        batch before any call, outside the per-call timeout. An optional ``max_concurrency`` attribute
        (an int) is how many calls the generator serves at once (a local model on the CPU: 1): the engine
        never has more in flight, so a call's timeout never covers a wait for the generator."""
        ...


GENERATORS: Registry[Generator] = Registry("generator", builtins_module="harness.generate.builtin")
