"""The ``openai`` generator: any OpenAI-compatible chat-completions endpoint via the official client.

Identity (what the cache key sees, DESIGN principle 8): ``kind``, ``model``, the endpoint, and every
sampling parameter that is set (temperature, top_p, max_tokens, seed, stop, presence/frequency
penalty, response_format, extra_body), validated and normalised so ``0`` and ``0.0``, or ``"x"``
and ``["x"]`` for ``stop``, give one key. Unset parameters are left out, so adding a new optional
parameter to this class does not move existing keys.

Why the endpoint is part of the key: a model name does not name a model across servers ("llama-3"
on vLLM, on a gateway and on a quantising host are different outputs; a fake test server answers
anything), and a cache hit from another endpoint would silently report answers the configured
system never gave. A miss costs a call; a wrong hit costs a wrong evaluation. The endpoint is the
base URL without credentials, query or fragment (scheme, lower-cased host, non-default port,
path). When two URLs really serve one deployment (a proxy in CI, a port that changes per run), set
``endpoint_id`` to a stable name and it is used instead of the URL.

Secrets: the API key is read from the environment (``OPENAI_API_KEY``, or the variable named by
``api_key_env``) when the client is created, and never stored in ``spec``, ``identity()``, the cache,
results or error messages (messages are redacted). Passing a key in the manifest is an error.
Retries are the engine's: the client is built with ``max_retries=0``. Calls go through the client's
generic ``post`` (see :meth:`OpenAIGenerator.agenerate` for why); ``openai`` is imported, and the
client built, in :meth:`OpenAIGenerator.aprepare`, before the first call and outside its timeout.
Replies are judged by their ``finish_reason`` too (see :meth:`OpenAIGenerator._parse`).
"""

from __future__ import annotations

import asyncio
import difflib
import email.utils
import json
import os
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError, field_validator

from harness.errors import HarnessError
from harness.generate.base import (
    AUTH,
    BAD_REQUEST,
    CONFIG,
    CONNECTION,
    CONTENT_FILTER,
    EMPTY,
    GENERATORS,
    INTERNAL,
    MALFORMED,
    NOT_FOUND,
    QUOTA,
    RATE_LIMIT,
    REFUSAL,
    SERVER_ERROR,
    TIMEOUT,
    GenerationError,
    GenerationRequest,
)
from harness.redact import redact
from harness.types import Frozen

if TYPE_CHECKING:
    import openai

__all__ = ["DEFAULT_BASE_URL", "OpenAIGenerator", "parse_retry_after"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_MAX_MSG = 300


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI's), or ``Retry-After`` as seconds or an HTTP-date
    (RFC 9110 section 10.2.3). ``None`` when absent or unparsable."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _url_has_secret(url: str) -> bool:
    parts = urlsplit(url.strip())
    names = [kv.split("=", 1)[0].lower() for kv in parts.query.split("&") if kv]
    return parts.username is not None or any(w in n for n in names for w in ("key", "token", "secret", "sig"))


def normalize_endpoint(url: str) -> str:
    """Scheme, lower-cased host, non-default port and path of ``url``; no credentials, query or fragment."""
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in {("http", 80), ("https", 443)} else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


class OpenAIArgs(Frozen):
    """The generator's manifest arguments, validated once at the edge."""

    model: str
    base_url: str | None = None
    endpoint_id: str | None = None
    api_key_env: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: dict[str, Any] | None = None
    extra_body: dict[str, Any] | None = None
    timeout: float | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


_SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "stop", "presence_penalty", "frequency_penalty",
             "response_format", "extra_body")


class OpenAIGenerator:
    """Chat completions through ``openai.AsyncOpenAI``; see the module docstring for key and secrets."""

    def __init__(self, **args: Any) -> None:
        secretish = sorted(k for k in args if k.lower() in {"api_key", "apikey", "key", "token", "secret",
                                                             "authorization", "password"})
        if secretish:
            raise HarnessError(
                f"generator 'openai': {', '.join(secretish)} must not be in the manifest (it would be stored in runs)",
                hint="put the key in the environment: OPENAI_API_KEY, or name another variable with api_key_env",
            )
        unknown = sorted(set(args) - set(OpenAIArgs.model_fields))
        if unknown:
            close = {u: difflib.get_close_matches(u, list(OpenAIArgs.model_fields), n=1) for u in unknown}
            sugg = "; ".join(f"{u} -> {c[0]}?" for u, c in close.items() if c)
            raise HarnessError(f"generator 'openai': unknown argument(s) {', '.join(unknown)}",
                               hint=sugg or f"known: {', '.join(OpenAIArgs.model_fields)}")
        try:
            self.args = OpenAIArgs(**args)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in exc.errors(include_input=False, include_url=False))
            raise HarnessError(f"generator 'openai': bad arguments: {problems}",
                               hint="e.g. {model = \"gpt-4o-mini\", temperature = 0}") from None
        if self.args.base_url is not None and _url_has_secret(self.args.base_url):
            raise HarnessError("generator 'openai': base_url carries credentials (user:password@ or a key in the "
                               "query); the manifest is stored with every run",
                               hint="put the key in the environment and give api_key_env its name")
        self.spec: dict[str, Any] = {"name": "openai", "args": dict(args)}
        self.base_url = self.args.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.endpoint = normalize_endpoint(self.base_url)
        self.api_key_env = self.args.api_key_env or "OPENAI_API_KEY"
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"OpenAIGenerator(model={self.args.model!r}, endpoint={self.endpoint!r})"

    # key -------------------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        values = self.args.model_dump()
        params = {k: values[k] for k in _SAMPLING if values[k] is not None}
        if "stop" in params:
            params["stop"] = list(params["stop"])
        return params

    def identity(self) -> dict[str, Any]:
        return {
            "kind": "openai",
            "model": self.args.model,
            "endpoint": self.args.endpoint_id or self.endpoint,
            "params": self._params(),
        }

    def request_key_parts(self, req: GenerationRequest) -> dict[str, Any]:
        # The server sees only the messages; passages and the contract matter through them.
        return {"messages": list(req.messages)}

    # secrets ---------------------------------------------------------------------------------
    def is_local(self) -> bool:
        return (urlsplit(self.base_url).hostname or "").lower() in _LOCAL_HOSTS

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "")
        if key:
            return key
        if self.is_local():
            return "not-needed-for-local-endpoint"
        raise GenerationError(
            CONFIG,
            f"no API key for {self.endpoint}: environment variable {self.api_key_env} is not set "
            f"(hint: export {self.api_key_env}=..., or set api_key_env in the generator args to name another "
            "variable; keys are never read from the manifest)",
            retryable=False,
        )

    def preflight(self) -> None:
        """Raise a :class:`HarnessError` now if calls cannot work (no key for a remote endpoint), so a
        pipeline can fail before any work; the engine reports the same problem per case otherwise."""
        try:
            self._api_key()
        except GenerationError as exc:
            raise HarnessError(str(exc)) from None

    def redact(self, text: str) -> str:
        """``text`` without the key (whole, masked or in part) or anything key-like (:mod:`harness.redact`)."""
        key = os.environ.get(self.api_key_env, "")
        return redact(text, [key] if key else [])

    # calls -----------------------------------------------------------------------------------
    def _client(self) -> openai.AsyncOpenAI:
        import openai  # imported on first use: it costs most of a second, and offline runs never need it

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=self._api_key(), base_url=self.base_url, max_retries=0,
                timeout=self.args.timeout if self.args.timeout is not None else openai.DEFAULT_TIMEOUT,
            )
            self._clients[loop] = client
        return client

    async def aprepare(self) -> None:
        """Import ``openai`` and create this loop's client before the first call, so the engine's
        per-call timeout does not include them (a cold import takes most of a second; on a loaded
        machine several, and a first batch that times out on it would be sent twice)."""
        self._client()

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (``generate_all`` calls this before its loop ends)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _error(self, kind: str, message: str, **kw: Any) -> GenerationError:
        message = self.redact(message)
        if len(message) > _MAX_MSG:
            message = message[:_MAX_MSG] + "..."
        return GenerationError(kind, message, **kw)

    def _status_error(self, exc: openai.APIStatusError) -> GenerationError:
        status = exc.status_code
        body = exc.body
        detail = exc.message
        code = None
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict):
                detail = str(err.get("message") or detail)
                code = err.get("code")
        where = f"HTTP {status} from {self.endpoint} (model {self.args.model})"
        retry_after = parse_retry_after(exc.response.headers)
        if status == 429 and code == "insufficient_quota":
            return self._error(QUOTA, f"{where}: {detail} (hint: the account is out of quota; retrying will not help)",
                               retryable=False, status=status)
        if status == 429:
            return self._error(RATE_LIMIT, f"{where}: {detail}", retry_after_s=retry_after, status=status)
        if status in (401, 403):
            return self._error(AUTH, f"{where}: {detail} (hint: check the key in {self.api_key_env} and its access "
                                     "to this model)", status=status)
        if status == 404:
            return self._error(NOT_FOUND, f"{where}: {detail} (hint: check the model name and base_url)",
                               status=status)
        if status == 408:
            return self._error(TIMEOUT, f"{where}: {detail}", retry_after_s=retry_after, status=status)
        if status == 409 or status >= 500:
            return self._error(SERVER_ERROR, f"{where}: {detail}", retry_after_s=retry_after, status=status)
        return self._error(BAD_REQUEST, f"{where}: {detail} (hint: check the generator args and the rendered "
                                        "messages)", status=status)

    def body(self, req: GenerationRequest) -> dict[str, Any]:
        """The JSON body sent to ``POST {base_url}/chat/completions``."""
        params = self._params()
        extra = params.pop("extra_body", None) or {}
        return {"model": self.args.model, "messages": list(req.messages), **params, **extra}

    async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int], str | None]:
        import openai

        client = self._client()
        try:
            # The client's generic ``post`` with a plain JSON body: the arguments are validated at the
            # edge already, and skipping the SDK's per-call TypedDict transform and response-model
            # construction saves about a third of its CPU per call, which shows at concurrency 16.
            # Auth, timeouts and the typed status errors are the client's as usual.
            data: Any = await client.post("/chat/completions", body=self.body(req), cast_to=object)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APITimeoutError:
            raise self._error(TIMEOUT, f"request to {self.endpoint} timed out") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
            raise self._error(CONNECTION, f"could not reach {self.endpoint}{why}") from None
        except openai.APIResponseValidationError as exc:
            raise self._error(MALFORMED, f"response from {self.endpoint} failed validation: {exc.message}") from None
        except ValueError as exc:  # JSONDecodeError: a JSON content type with a body that is not JSON
            raise self._error(MALFORMED, f"response from {self.endpoint} is not valid JSON: {exc}") from None
        except openai.OpenAIError as exc:
            raise self._error(INTERNAL, f"openai client error: {type(exc).__name__}: {exc}", retryable=False) from None
        return self._parse(data)

    def _parse(self, data: Any) -> tuple[str, dict[str, int], str | None]:
        """``choices[0].message.content``, the token counts and ``finish_reason`` of a chat.completion.

        ``finish_reason = "content_filter"`` is a final ``content_filter`` error (the same request is
        filtered again; retrying only pays again), whatever text came with it. A message with no
        content (null or empty) is ``empty_response``, or ``refusal`` when the model says why. An
        answer cut off at ``max_tokens`` (``"length"``) is returned with its finish reason: kept,
        and marked truncated by the caller.
        """
        if isinstance(data, str):
            raise self._error(MALFORMED, f"response from {self.endpoint} is not JSON: {json.dumps(data[:80])}")
        if not isinstance(data, dict):
            raise self._error(MALFORMED, f"response from {self.endpoint} is a JSON {type(data).__name__}, "
                                         "expected a chat.completion object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._error(MALFORMED, f"response from {self.endpoint} has no choices")
        finish = choices[0].get("finish_reason")
        finish = finish if isinstance(finish, str) else None
        message = choices[0].get("message")
        if finish == "content_filter":
            raise self._error(CONTENT_FILTER, f"{self.endpoint} withheld the answer: finish_reason=content_filter "
                                              "(the endpoint's content filter; not retried)", retryable=False)
        if not isinstance(message, dict):
            raise self._error(MALFORMED, f"response from {self.endpoint} has no choices[0].message")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise self._error(MALFORMED, f"response from {self.endpoint} has a {type(content).__name__} in "
                                         "choices[0].message.content, expected text")
        if content is None or not content.strip():
            refusal = message.get("refusal")
            if refusal:
                raise self._error(REFUSAL, f"model refused: {refusal}", retryable=False)
            what = "null" if content is None else "empty" if not content else "only whitespace"
            raise self._error(EMPTY, f"{self.endpoint} answered with {what} content (finish_reason={finish})",
                              retryable=False)
        raw_usage = data.get("usage")
        usage: dict[str, int] = {}
        if isinstance(raw_usage, dict):
            for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = raw_usage.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    usage[name] = value
        return content, usage, finish


GENERATORS.register("openai")(OpenAIGenerator)
