"""Run a generator over many requests: content-keyed cache, bounded concurrency, timeouts, retries.

- Cache (DESIGN principle 8): the key of a request is the sha256 of the generator's ``identity()``
  and the request's ``request_key_parts()`` (:func:`cache_key`), so any parameter that changes the
  output changes the key and an unchanged re-run makes no calls. Only successes are cached;
  requests with equal keys in one batch share one call.
- Concurrency: an ``asyncio.Semaphore`` bounds calls in flight; a backoff wait does not hold a slot.
- Retries: rate limits, 5xx, timeouts, connection errors and malformed bodies are retried up to
  ``max_retries`` times with exponential backoff and "equal jitter" (half the capped exponential
  delay fixed, half uniform; Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog 2015).
  The jitter RNG is seeded per request from ``(seed, cache key)``, so waits do not depend on
  scheduling. A ``Retry-After`` from the server is honoured as a lower bound, and on a rate limit it
  pauses every worker (limits are per account), not only the one that was told.
- Errors are values (principle 10): whatever happens, every request gets exactly one
  :class:`GenerationResult`, in request order; nothing is raised out of :func:`agenerate_all`
  except cancellation. After an auth/config/quota failure, calls not yet started are skipped with
  that error instead of sending hundreds of doomed requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.cache import Cache
from harness.generate.base import (
    CONFIG,
    FATAL_KINDS,
    INTERNAL,
    RATE_LIMIT,
    TIMEOUT,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    Generator,
)
from harness.hashing import canonical_json, sha256_parts
from harness.progress import NULL_PROGRESS, Progress

__all__ = ["RetryPolicy", "agenerate_all", "cache_key", "generate_all"]

CACHE_NS = "generations"
_KEY_VERSION = "generation/v1"
_FLUSH_EVERY = 64
_FLUSH_SECONDS = 2.0


def cache_key(generator: Generator, req: GenerationRequest) -> str:
    """sha256 of (key version, generator identity, request key parts), each in canonical JSON."""
    return sha256_parts(_KEY_VERSION, canonical_json(generator.identity()),
                        canonical_json(generator.request_key_parts(req)))


@dataclass(frozen=True)
class RetryPolicy:
    """Retry schedule. ``max_retries`` counts retries, so a case makes at most ``max_retries + 1`` calls."""

    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    seed: int | None = 0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Wait before retry number ``retry`` (1-based): equal jitter on ``min(max, base * 2**(retry-1))``."""
        cap = min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))
        return cap / 2 + rng.uniform(0, cap / 2)

    def rng(self, key: str) -> random.Random:
        return random.Random() if self.seed is None else random.Random(sha256_parts(str(self.seed), key))


class _Shared:
    """State shared by the workers of one batch."""

    def __init__(self, concurrency: int) -> None:
        self.sem = asyncio.Semaphore(concurrency)
        self.not_before = 0.0  # monotonic time before which nobody calls (server-requested pause)
        self.fatal: GenerationError | None = None

    async def wait_gate(self) -> None:
        while (delay := self.not_before - time.monotonic()) > 0:
            await asyncio.sleep(delay)


def _as_error(generator: Generator, exc: BaseException, timeout_s: float | None) -> GenerationError:
    if isinstance(exc, GenerationError):
        return exc
    if isinstance(exc, TimeoutError):
        return GenerationError(TIMEOUT, f"no answer within timeout_s={timeout_s} s")
    message = f"generator raised {type(exc).__name__}: {exc}"
    redact = getattr(generator, "redact", None)  # a generator that holds a secret scrubs foreign messages too
    if callable(redact):
        message = redact(message)
    return GenerationError(INTERNAL, message, retryable=False)


async def _generate_one(
    generator: Generator,
    req: GenerationRequest,
    key: str,
    shared: _Shared,
    policy: RetryPolicy,
    timeout_s: float | None,
) -> GenerationResult:
    rng = policy.rng(key)
    attempts = 0
    t0: float | None = None
    last: GenerationError | None = None
    while True:
        async with shared.sem:
            await shared.wait_gate()
            if shared.fatal is not None:
                f = shared.fatal
                why = "not attempted" if last is None else f"not retried after {last.kind}: {last}"
                return GenerationResult(
                    case_id=req.case_id, text=None, error=f"{why}; another call failed: {f.kind}: {f}",
                    error_kind=f.kind, attempts=attempts, cache_key=key,
                    latency_s=0.0 if t0 is None else time.perf_counter() - t0,
                )
            if t0 is None:
                t0 = time.perf_counter()
            attempts += 1
            try:
                text, usage = await asyncio.wait_for(generator.agenerate(req), timeout_s)
                if not isinstance(text, str):
                    raise GenerationError(INTERNAL, f"generator returned {type(text).__name__}, expected str",
                                          retryable=False)
                usage = {str(k): int(v) for k, v in (usage or {}).items()}
            except Exception as exc:
                err = last = _as_error(generator, exc, timeout_s)
            else:
                return GenerationResult(
                    case_id=req.case_id, text=text, latency_s=time.perf_counter() - t0, attempts=attempts,
                    usage=usage, cache_key=key,
                )
        if err.kind in FATAL_KINDS and shared.fatal is None:
            shared.fatal = err
        if not err.retryable or attempts > policy.max_retries:
            suffix = f" (gave up after {attempts} attempts)" if err.retryable else ""
            return GenerationResult(
                case_id=req.case_id, text=None, error=f"{err.kind}: {err}{suffix}", error_kind=err.kind,
                latency_s=time.perf_counter() - t0, attempts=attempts, cache_key=key,
            )
        delay = policy.backoff(attempts, rng)
        if err.retry_after_s is not None:
            after = min(max(err.retry_after_s, 0.0), policy.max_retry_after_s)
            delay = after + rng.uniform(0, min(0.1 * after, 1.0))
            if err.kind == RATE_LIMIT or err.status == 503:
                shared.not_before = max(shared.not_before, time.monotonic() + after)
        await asyncio.sleep(delay)


def _cached_value(value: Any) -> tuple[str, dict[str, int]] | None:
    """A cached entry as ``(text, usage)``; anything else (an older or damaged entry) is a miss."""
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        return None
    usage = value.get("usage", {})
    if not isinstance(usage, dict) or not all(isinstance(v, int) for v in usage.values()):
        return None
    return value["text"], {str(k): v for k, v in usage.items()}


async def agenerate_all(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    cache: Cache | None,
    *,
    concurrency: int = 16,
    progress: Progress | None = None,
    timeout_s: float | None = 60.0,
    max_retries: int = 5,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 30.0,
    max_retry_after_s: float = 120.0,
    seed: int | None = 0,
) -> list[GenerationResult]:
    """Generate every request on the running event loop; one result per request, in request order.

    ``cache=None`` disables caching. ``timeout_s`` bounds each call (``None``: no bound). ``seed``
    makes backoff jitter reproducible (``None``: system randomness).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    policy = RetryPolicy(max_retries=max_retries, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s,
                         max_retry_after_s=max_retry_after_s, seed=seed)
    results: list[GenerationResult | None] = [None] * len(requests)
    keys: list[str | None] = []
    for i, req in enumerate(requests):
        try:
            keys.append(cache_key(generator, req))
        except Exception as exc:
            keys.append(None)
            results[i] = GenerationResult(case_id=req.case_id, text=None, error_kind=CONFIG, cache_key="",
                                          error=f"{CONFIG}: cannot build the cache key: {type(exc).__name__}: {exc}")
    valid_keys = [k for k in keys if k is not None]
    cached = cache.get_many_json(CACHE_NS, valid_keys) if cache is not None and valid_keys else {}

    pending: dict[str, list[int]] = {}  # key -> request indices; the first one makes the call
    for i, (req, key) in enumerate(zip(requests, keys, strict=True)):
        if key is None:
            continue
        hit = _cached_value(cached.get(key))
        if hit is not None:
            results[i] = GenerationResult(case_id=req.case_id, text=hit[0], usage=hit[1], cache_hit=True,
                                          cache_key=key)
        else:
            pending.setdefault(key, []).append(i)

    shared = _Shared(concurrency)
    to_store: dict[str, Any] = {}
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        last_flush = time.monotonic()
        if cache is None or not to_store:
            return
        try:
            cache.put_many_json(CACHE_NS, dict(to_store))
        except Exception as exc:  # the answers are still returned; only the re-run will pay again
            warnings.warn(f"could not write {len(to_store)} generation(s) to the cache at {cache.path}: {exc}",
                          RuntimeWarning, stacklevel=2)
        to_store.clear()

    async def run(key: str, idxs: list[int]) -> tuple[str, list[int], GenerationResult]:
        return key, idxs, await _generate_one(generator, requests[idxs[0]], key, shared, policy, timeout_s)

    with (progress or NULL_PROGRESS).task("generate", total=len(requests)) as advance:
        advance(len(requests) - sum(len(v) for v in pending.values()))
        tasks = [asyncio.ensure_future(run(k, v)) for k, v in pending.items()]
        try:
            for fut in asyncio.as_completed(tasks):
                key, idxs, res = await fut
                results[idxs[0]] = res
                for j in idxs[1:]:  # same key in this batch: served by the first one's call
                    results[j] = res.model_copy(update={"case_id": requests[j].case_id, "attempts": 0,
                                                        "latency_s": 0.0, "cache_hit": res.ok})
                if res.ok:
                    to_store[key] = {"text": res.text, "usage": res.usage}
                    if len(to_store) >= _FLUSH_EVERY or time.monotonic() - last_flush >= _FLUSH_SECONDS:
                        flush()
                advance(len(idxs))
        finally:
            unfinished = [t for t in tasks if not t.done()]
            for t in unfinished:
                t.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
            flush()
    out = [r for r in results if r is not None]
    if len(out) != len(requests):  # unreachable: every index is filled above
        raise RuntimeError("generation lost a result")
    return out


def generate_all(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    cache: Cache | None,
    *,
    concurrency: int = 16,
    progress: Progress | None = None,
    timeout_s: float | None = 60.0,
    max_retries: int = 5,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 30.0,
    max_retry_after_s: float = 120.0,
    seed: int | None = 0,
) -> list[GenerationResult]:
    """Synchronous :func:`agenerate_all` on its own event loop (in a helper thread when the calling
    thread already runs a loop). The generator's ``aclose()``, if it has one, runs before the loop ends."""

    async def main() -> list[GenerationResult]:
        try:
            return await agenerate_all(
                generator, requests, cache, concurrency=concurrency, progress=progress, timeout_s=timeout_s,
                max_retries=max_retries, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s,
                max_retry_after_s=max_retry_after_s, seed=seed,
            )
        finally:
            aclose = getattr(generator, "aclose", None)
            if aclose is not None:
                await aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-generate") as pool:
        return pool.submit(asyncio.run, main()).result()
