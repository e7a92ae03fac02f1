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
  that error instead of sending hundreds of doomed requests. Error text is redacted
  (:func:`harness.redact.redact`) before it is stored anywhere.
- Every reply is judged for what it is: an empty or whitespace-only text is an ``empty_response``
  error (not retried, not cached, never scored as an answer); ``finish_reason`` travels with the
  text (and into the cache), so an answer cut off at ``max_tokens`` is kept but marked truncated.
- The per-call timeout covers the call alone: a generator's ``aprepare()`` (creating the HTTP
  client, importing its library) runs once before the first call, untimed.
- Two processes on one cache pay once (:mod:`harness.inflight`): a key being computed elsewhere is
  leased there; this process waits for its value in the cache (polling, bounded) instead of calling,
  and takes the key over if the owner drops it without a value or dies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.cache import Cache
from harness.generate.base import (
    CONFIG,
    EMPTY,
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
from harness.inflight import DEFAULT_TTL_S, LeaseStore, lease_path
from harness.progress import NULL_PROGRESS, Progress
from harness.redact import redact

__all__ = ["RetryPolicy", "agenerate_all", "cache_key", "generate_all"]

CACHE_NS = "generations"
_KEY_VERSION = "generation/v1"
_FLUSH_EVERY = 64
_FLUSH_SECONDS = 0.5  # bounds what a killed run loses, and how long another run waits for a value
_POLL_MAX_S = 1.0


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


def _secrets(generator: Generator) -> list[str]:
    """Secret values the generator holds (its API key), to be scrubbed from any message."""
    env = getattr(generator, "api_key_env", None)
    value = os.environ.get(env, "") if isinstance(env, str) else ""
    return [value] if value else []


def _scrub(generator: Generator, message: str) -> str:
    own = getattr(generator, "redact", None)  # a generator that holds a secret scrubs its own way too
    if callable(own):
        message = own(message)
    return redact(message, _secrets(generator))


def _as_error(generator: Generator, exc: BaseException, timeout_s: float | None) -> GenerationError:
    if isinstance(exc, GenerationError):
        exc.message = _scrub(generator, exc.message)
        return exc
    if isinstance(exc, TimeoutError):
        return GenerationError(TIMEOUT, f"no answer within timeout_s={timeout_s} s")
    message = _scrub(generator, f"generator raised {type(exc).__name__}: {exc}")
    return GenerationError(INTERNAL, message, retryable=False)


def _unpack(reply: Any) -> tuple[str, dict[str, int], str | None]:
    """A generator's ``(text, usage)`` or ``(text, usage, finish_reason)``; empty text is an error."""
    if not isinstance(reply, tuple) or len(reply) not in (2, 3):
        raise GenerationError(INTERNAL, f"generator returned {type(reply).__name__}, expected (text, usage)",
                              retryable=False)
    text, usage = reply[0], reply[1]
    finish = reply[2] if len(reply) == 3 else "stop"
    if not isinstance(text, str):
        raise GenerationError(INTERNAL, f"generator returned {type(text).__name__}, expected str", retryable=False)
    if finish is not None and not isinstance(finish, str):
        raise GenerationError(INTERNAL, f"generator returned finish_reason {finish!r}, expected str or None",
                              retryable=False)
    usage = {str(k): int(v) for k, v in (usage or {}).items()}
    if not text.strip():
        what = "no text" if not text else f"only whitespace ({len(text)} characters)"
        why = f", finish_reason={finish}" if finish not in (None, "stop") else ""
        raise GenerationError(EMPTY, f"the answer is empty: {what}{why}", retryable=False)
    return text, usage, finish


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
                    case_id=req.case_id, text=None, error_kind=f.kind,
                    error=_scrub(generator, f"{why}; another call failed: {f.kind}: {f}"),
                    attempts=attempts, cache_key=key,
                    latency_s=0.0 if t0 is None else time.perf_counter() - t0,
                )
            if t0 is None:
                t0 = time.perf_counter()
            attempts += 1
            try:
                text, usage, finish = _unpack(await asyncio.wait_for(generator.agenerate(req), timeout_s))
            except Exception as exc:
                err = last = _as_error(generator, exc, timeout_s)
            else:
                return GenerationResult(
                    case_id=req.case_id, text=text, latency_s=time.perf_counter() - t0, attempts=attempts,
                    usage=usage, cache_key=key, finish_reason=finish,
                )
        if err.kind in FATAL_KINDS and shared.fatal is None:
            shared.fatal = err
        if not err.retryable or attempts > policy.max_retries:
            suffix = f" (gave up after {attempts} attempts)" if err.retryable else ""
            return GenerationResult(
                case_id=req.case_id, text=None, error=_scrub(generator, f"{err.kind}: {err}{suffix}"),
                error_kind=err.kind, latency_s=time.perf_counter() - t0, attempts=attempts, cache_key=key,
            )
        delay = policy.backoff(attempts, rng)
        if err.retry_after_s is not None:
            after = min(max(err.retry_after_s, 0.0), policy.max_retry_after_s)
            delay = after + rng.uniform(0, min(0.1 * after, 1.0))
            if err.kind == RATE_LIMIT or err.status == 503:
                shared.not_before = max(shared.not_before, time.monotonic() + after)
        await asyncio.sleep(delay)


_Cached = tuple[str, dict[str, int], str | None]


def _cached_value(value: Any) -> _Cached | None:
    """A cached entry as ``(text, usage, finish_reason)``; anything else (an older or damaged entry,
    an empty text cached by an older version) is a miss."""
    if not isinstance(value, dict) or not isinstance(value.get("text"), str) or not value["text"].strip():
        return None
    usage = value.get("usage", {})
    if not isinstance(usage, dict) or not all(isinstance(v, int) for v in usage.values()):
        return None
    finish = value.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        return None
    return value["text"], {str(k): v for k, v in usage.items()}, finish


def _cache_entry(res: GenerationResult) -> dict[str, Any]:
    return {"text": res.text, "usage": res.usage, "finish_reason": res.finish_reason}


def _hit(req: GenerationRequest, key: str, hit: _Cached) -> GenerationResult:
    return GenerationResult(case_id=req.case_id, text=hit[0], usage=hit[1], finish_reason=hit[2], cache_hit=True,
                            cache_key=key)


class _Leases:
    """This batch's side of :mod:`harness.inflight`: which keys we hold, and waiting for the others.

    Failures of the lease file only cost money, never results: any error turns coordination off
    for the rest of the batch (with one warning) and every key is computed here.
    """

    def __init__(self, cache: Cache, ttl_s: float, poll_s: float, wait_s: float) -> None:
        self.cache = cache
        self.poll_s = poll_s
        self.wait_s = wait_s
        self.store: LeaseStore | None = None
        self.held: set[str] = set()
        self._waiting: dict[str, tuple[asyncio.Future[_Cached | None], float]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._heart: asyncio.Task[None] | None = None
        try:
            self.store = LeaseStore(lease_path(cache.path), ttl_s=ttl_s)
        except Exception as exc:
            self._off(exc)

    def _off(self, exc: BaseException) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
        self.store = None
        warnings.warn(f"in-flight leases beside {self.cache.path} are unavailable ({type(exc).__name__}: {exc}); "
                      "a concurrent run on this cache may pay for the same calls", RuntimeWarning, stacklevel=3)

    def acquire(self, keys: Sequence[str]) -> set[str]:
        if self.store is None:
            got = set(keys)
        else:
            try:
                got = self.store.acquire(keys)
            except Exception as exc:
                self._off(exc)
                got = set(keys)
        self.held |= got
        return got

    def release(self, keys: Sequence[str]) -> None:
        keys = [k for k in keys if k in self.held]
        self.held.difference_update(keys)
        if self.store is not None and keys:
            try:
                self.store.release(keys)
            except Exception as exc:
                self._off(exc)

    def start(self) -> None:
        if self.store is not None:
            self._heart = asyncio.ensure_future(self._heartbeat())

    async def _heartbeat(self) -> None:
        while self.store is not None:
            await asyncio.sleep(self.store.ttl_s / 3)
            if self.store is not None and self.held:
                try:
                    self.store.renew(self.held)
                except Exception as exc:
                    self._off(exc)

    def wait(self, key: str) -> asyncio.Future[_Cached | None]:
        """A future with the cached value once another process has stored it, or None once this
        process should compute the key itself (it holds the lease now, or waited ``wait_s``)."""
        fut: asyncio.Future[_Cached | None] = asyncio.get_running_loop().create_future()
        self._waiting[key] = (fut, time.monotonic() + self.wait_s)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())
        return fut

    def _resolve(self, key: str, value: _Cached | None) -> None:
        fut, _ = self._waiting.pop(key)
        if not fut.done():
            fut.set_result(value)

    def _lookup(self, keys: list[str]) -> dict[str, _Cached]:
        try:
            found = self.cache.get_many_json(CACHE_NS, keys)
        except Exception:  # a damaged or locked entry: not a value; the lease decides what happens next
            return {}
        return {k: hit for k in keys if (hit := _cached_value(found.get(k))) is not None}

    async def _poll(self) -> None:
        try:
            await self._poll_loop()
        except Exception as exc:  # never leave a waiter hanging: compute everything still waited for here
            self._off(exc)
            for k in list(self._waiting):
                self._resolve(k, None)

    async def _poll_loop(self) -> None:
        delay = self.poll_s
        while self._waiting:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX_S)
            keys = list(self._waiting)
            for k, hit in self._lookup(keys).items():
                self._resolve(k, hit)
            rest = list(self._waiting)
            if not rest:
                break
            got = self.acquire(rest)
            if got:  # the value may have landed between the lookup and the lease: look once more
                late = self._lookup(sorted(got))
                self.release(sorted(late))
                for k in got:
                    self._resolve(k, late.get(k))
            now = time.monotonic()
            for k in [k for k, (_, deadline) in self._waiting.items() if deadline <= now]:
                self._resolve(k, None)  # waited long enough: compute it here (no lease, so it may be paid twice)

    async def close(self) -> None:
        for task in (self._poller, self._heart):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for k in list(self._waiting):
            self._resolve(k, None)
        self.release(sorted(self.held))
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
            self.store = None


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
    lease_ttl_s: float | None = DEFAULT_TTL_S,
    lease_poll_s: float = 0.1,
    lease_wait_s: float | None = None,
) -> list[GenerationResult]:
    """Generate every request on the running event loop; one result per request, in request order.

    ``cache=None`` disables caching. ``timeout_s`` bounds each call (``None``: no bound). ``seed``
    makes backoff jitter reproducible (``None``: system randomness). ``lease_ttl_s`` is the life of
    an in-flight lease without renewal (``None``: no cross-process leases); a key leased by another
    live process is polled for every ``lease_poll_s`` (growing to 1 s) for at most ``lease_wait_s``
    (default: the longest the owner's retries can take), then computed here.
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
            results[i] = GenerationResult(
                case_id=req.case_id, text=None, error_kind=CONFIG, cache_key="",
                error=_scrub(generator, f"{CONFIG}: cannot build the cache key: {type(exc).__name__}: {exc}"))
    valid_keys = [k for k in keys if k is not None]
    cached = cache.get_many_json(CACHE_NS, valid_keys) if cache is not None and valid_keys else {}

    pending: dict[str, list[int]] = {}  # key -> request indices; the first one makes the call
    for i, (req, key) in enumerate(zip(requests, keys, strict=True)):
        if key is None:
            continue
        hit = _cached_value(cached.get(key))
        if hit is not None:
            results[i] = _hit(req, key, hit)
        else:
            pending.setdefault(key, []).append(i)

    prepare = getattr(generator, "aprepare", None)
    if pending and callable(prepare):
        try:  # outside the per-call timeout: a cold import or client construction is not the endpoint's time
            await prepare()
        except Exception as exc:
            err = _as_error(generator, exc, None)
            for key, idxs in pending.items():
                for i in idxs:
                    results[i] = GenerationResult(case_id=requests[i].case_id, text=None,
                                                  error=f"{err.kind}: {err}", error_kind=err.kind, cache_key=key)
            pending = {}

    served = getattr(generator, "max_concurrency", None)  # e.g. one CPU model: calls beyond it would only queue
    shared = _Shared(min(concurrency, served) if isinstance(served, int) and served >= 1 else concurrency)
    to_store: dict[str, Any] = {}
    last_flush = time.monotonic()
    leases: _Leases | None = None
    if cache is not None and pending and lease_ttl_s is not None and not str(cache.path).startswith(":memory:"):
        if lease_wait_s is None:
            lease_wait_s = ((timeout_s or 60.0) * (max_retries + 1) + backoff_max_s * max_retries
                            + max_retry_after_s + lease_ttl_s)
        leases = _Leases(cache, lease_ttl_s, lease_poll_s, lease_wait_s)

    def flush() -> None:
        nonlocal last_flush
        last_flush = time.monotonic()
        if cache is None or not to_store:
            return
        try:
            cache.put_many_json(CACHE_NS, dict(to_store))
        except Exception as exc:  # the answers are still returned; only the re-run will pay again
            warnings.warn(f"could not write {len(to_store)} generation(s) to the cache at {cache.path}: "
                          f"{_scrub(generator, str(exc))}", RuntimeWarning, stacklevel=2)
        if leases is not None:  # stored (or never will be): waiters elsewhere can read it or take it over
            leases.release(sorted(to_store))
        to_store.clear()

    async def run(key: str, idxs: list[int]) -> tuple[str, list[int], GenerationResult]:
        req = requests[idxs[0]]
        if leases is not None and key not in leases.held:
            hit = await leases.wait(key)
            if hit is not None:
                return key, idxs, _hit(req, key, hit)
        return key, idxs, await _generate_one(generator, req, key, shared, policy, timeout_s)

    try:
        if leases is not None:
            leases.acquire(sorted(pending))
            leases.start()
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
                    if res.ok and not res.cache_hit:
                        to_store[key] = _cache_entry(res)
                        if len(to_store) >= _FLUSH_EVERY or time.monotonic() - last_flush >= _FLUSH_SECONDS:
                            flush()
                    elif leases is not None:
                        leases.release([key])  # an error is not cached: whoever needs it next may try
                    advance(len(idxs))
            finally:
                unfinished = [t for t in tasks if not t.done()]
                for t in unfinished:
                    t.cancel()
                if unfinished:
                    await asyncio.gather(*unfinished, return_exceptions=True)
                flush()
    finally:
        if leases is not None:
            await leases.close()
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
    lease_ttl_s: float | None = DEFAULT_TTL_S,
    lease_poll_s: float = 0.1,
    lease_wait_s: float | None = None,
) -> list[GenerationResult]:
    """Synchronous :func:`agenerate_all` on its own event loop (in a helper thread when the calling
    thread already runs a loop). The generator's ``aclose()``, if it has one, runs before the loop ends."""

    async def main() -> list[GenerationResult]:
        try:
            return await agenerate_all(
                generator, requests, cache, concurrency=concurrency, progress=progress, timeout_s=timeout_s,
                max_retries=max_retries, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s,
                max_retry_after_s=max_retry_after_s, seed=seed, lease_ttl_s=lease_ttl_s,
                lease_poll_s=lease_poll_s, lease_wait_s=lease_wait_s,
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
