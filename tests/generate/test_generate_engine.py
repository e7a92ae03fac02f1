"""The generation engine with in-process generators: cache keys, order, retries, errors as values."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.cache import Cache
from harness.generate import (
    GenerationError,
    GenerationRequest,
    RetryPolicy,
    agenerate_all,
    cache_key,
    generate_all,
)
from harness.generate.engine import CACHE_NS


class ScriptedGenerator:
    """Answers ``upper(last message)``; ``script[case_id]`` lists exceptions to raise first, in order."""

    def __init__(self, script: dict[str, list[BaseException]] | None = None, delay_s: float = 0.0,
                 model: str = "m", offline: bool = False) -> None:
        self.spec: dict[str, Any] = {"name": "scripted", "args": {}}
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.delay_s = delay_s
        self.model = model
        self.offline = offline
        self.calls: list[tuple[str, float]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def identity(self) -> dict[str, Any]:
        return {"kind": "scripted", "model": self.model}

    def request_key_parts(self, req: GenerationRequest) -> dict[str, Any]:
        parts: dict[str, Any] = {"messages": list(req.messages)}
        if self.offline:
            parts["passages"] = list(req.passages)
        return parts

    async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int]]:
        self.calls.append((req.case_id, time.monotonic()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            pending = self.script.get(req.case_id)
            if pending:
                raise pending.pop(0)
            return str(req.messages[-1]["content"]).upper(), {"total_tokens": 3}
        finally:
            self.in_flight -= 1


def reqs(n: int, prefix: str = "q") -> list[GenerationRequest]:
    return [GenerationRequest(case_id=f"{prefix}{i}", messages=({"role": "user", "content": f"question {i}"},))
            for i in range(n)]


FAST: dict[str, Any] = {"backoff_base_s": 0.001, "backoff_max_s": 0.01}


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Cache]:
    c = Cache(tmp_path / "cache.sqlite")
    yield c
    c.close()


def test_results_in_request_order_and_cached(cache: Cache) -> None:
    gen = ScriptedGenerator(delay_s=0.001)
    requests = reqs(30)
    first = generate_all(gen, requests, cache, concurrency=5)
    assert [r.case_id for r in first] == [r.case_id for r in requests]
    assert [r.text for r in first] == [f"QUESTION {i}" for i in range(30)]
    assert all(not r.cache_hit and r.attempts == 1 and r.error is None for r in first)
    assert first[0].usage == {"total_tokens": 3}
    assert cache.count(CACHE_NS) == 30

    again = generate_all(gen, requests, cache)
    assert len(gen.calls) == 30  # the re-run made no calls
    assert all(r.cache_hit and r.attempts == 0 for r in again)
    assert [r.text for r in again] == [r.text for r in first]
    assert [r.cache_key for r in again] == [r.cache_key for r in first]


def test_key_covers_identity_and_request_parts() -> None:
    req = reqs(1)[0]
    base = cache_key(ScriptedGenerator(), req)
    assert cache_key(ScriptedGenerator(), req) == base
    assert cache_key(ScriptedGenerator(model="other"), req) != base
    other_msg = req.model_copy(update={"messages": ({"role": "user", "content": "question 1"},)})
    assert cache_key(ScriptedGenerator(), other_msg) != base
    # case id and passages are not read by an online generator: same key
    assert cache_key(ScriptedGenerator(), req.model_copy(update={"case_id": "zz"})) == base
    with_passages = req.model_copy(update={"passages": ({"id": "d1", "text": "x"},)})
    assert cache_key(ScriptedGenerator(), with_passages) == base
    # ... but they are for an offline generator that reads them
    assert cache_key(ScriptedGenerator(offline=True), with_passages) != cache_key(ScriptedGenerator(offline=True), req)


def test_duplicate_requests_share_one_call(cache: Cache) -> None:
    gen = ScriptedGenerator()
    a, b = reqs(2)
    dup = a.model_copy(update={"case_id": "dup"})
    out = generate_all(gen, [a, dup, b], cache)
    assert len(gen.calls) == 2
    assert [r.case_id for r in out] == ["q0", "dup", "q1"]
    assert out[1].text == out[0].text and out[1].attempts == 0 and out[1].cache_hit


def test_retry_then_success_counts_attempts(cache: Cache) -> None:
    gen = ScriptedGenerator({"q1": [GenerationError("server_error", "boom"), GenerationError("timeout", "slow")]})
    out = generate_all(gen, reqs(3), cache, **FAST)
    assert [r.attempts for r in out] == [1, 3, 1]
    assert all(r.error is None for r in out)


def test_persistent_failure_is_a_counted_error_not_cached(cache: Cache) -> None:
    gen = ScriptedGenerator({"q0": [GenerationError("server_error", "HTTP 500") for _ in range(10)]})
    out = generate_all(gen, reqs(2), cache, max_retries=3, **FAST)
    assert out[0].text is None and out[0].error_kind == "server_error"
    assert out[0].attempts == 4 and "gave up after 4 attempts" in (out[0].error or "")
    assert out[1].error is None
    assert cache.count(CACHE_NS) == 1  # only the success
    gen.script.clear()
    again = generate_all(gen, reqs(2), cache, **FAST)  # the error was not cached: it is retried
    assert again[0].error is None and not again[0].cache_hit and again[1].cache_hit


def test_non_retryable_fails_at_once(cache: Cache) -> None:
    gen = ScriptedGenerator({"q0": [GenerationError("bad_request", "HTTP 400: context too long")]})
    out = generate_all(gen, reqs(2), cache, **FAST)
    assert out[0].attempts == 1 and out[0].error_kind == "bad_request"
    assert out[0].error == "bad_request: HTTP 400: context too long"
    assert out[1].error is None  # a per-prompt error does not stop the others


def test_fatal_error_skips_the_remaining_calls(cache: Cache) -> None:
    script: dict[str, list[BaseException]] = {
        f"q{i}": [GenerationError("auth", "HTTP 401: bad key")] for i in range(20)
    }
    gen = ScriptedGenerator(script)
    out = generate_all(gen, reqs(20), cache, concurrency=1)
    assert len(gen.calls) == 1
    assert all(r.error_kind == "auth" for r in out)
    assert out[0].attempts == 1 and all(r.attempts == 0 for r in out[1:])
    assert "not attempted" in (out[5].error or "")


def test_unexpected_exception_becomes_internal_error(cache: Cache) -> None:
    gen = ScriptedGenerator({"q0": [KeyError("oops")]})
    out = generate_all(gen, reqs(2), cache, **FAST)
    assert out[0].error_kind == "internal" and "KeyError" in (out[0].error or "") and out[0].attempts == 1
    assert out[1].text == "QUESTION 1"


def test_timeout_is_retried(cache: Cache) -> None:
    class SlowOnce(ScriptedGenerator):
        async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int]]:
            if not any(c == req.case_id for c, _ in self.calls):
                self.calls.append((req.case_id, time.monotonic()))
                await asyncio.sleep(5)
            return await super().agenerate(req)

    gen = SlowOnce()
    t0 = time.monotonic()
    out = generate_all(gen, reqs(1), cache, timeout_s=0.1, **FAST)
    assert time.monotonic() - t0 < 2
    assert out[0].text == "QUESTION 0" and out[0].attempts == 2


def test_retry_after_is_a_lower_bound_and_pauses_everyone(cache: Cache) -> None:
    gen = ScriptedGenerator({"q0": [GenerationError("rate_limit", "429", retry_after_s=0.3)]}, delay_s=0.01)
    t0 = time.monotonic()
    generate_all(gen, reqs(4), cache, concurrency=1, **FAST)
    times = [t for c, t in gen.calls]
    first_q0 = times[0]
    retry_q0 = [t for c, t in gen.calls if c == "q0"][1]
    assert retry_q0 - first_q0 >= 0.3
    # with concurrency 1 the other cases waited for the server's pause too
    assert all(t - t0 >= 0.3 for c, t in gen.calls[1:])


def test_concurrency_bound(cache: Cache) -> None:
    gen = ScriptedGenerator(delay_s=0.02)
    generate_all(gen, reqs(40), cache, concurrency=4)
    assert gen.max_in_flight == 4


def test_a_generator_that_serves_one_call_at_a_time_gets_one(cache: Cache) -> None:
    # a local model declares max_concurrency = 1: the engine never has more in flight, so no call's timeout
    # covers a wait for the model (each call takes 0.05 s; queued behind 3 others it would time out)
    gen = ScriptedGenerator(delay_s=0.05)
    gen.max_concurrency = 1  # type: ignore[attr-defined]
    results = generate_all(gen, reqs(4), cache, concurrency=4, timeout_s=0.15, max_retries=0)
    assert gen.max_in_flight == 1 and all(r.ok for r in results)


def test_backoff_is_exponential_capped_and_seeded() -> None:
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=5.0, seed=7)
    waits = [policy.backoff(n, random.Random(0)) for n in range(1, 6)]
    caps = [1, 2, 4, 5, 5]
    assert all(c / 2 <= w <= c for w, c in zip(waits, caps, strict=True))
    a = [policy.backoff(n, policy.rng("k")) for n in range(1, 4)]
    b = [policy.backoff(n, policy.rng("k")) for n in range(1, 4)]
    assert a == b
    assert [policy.backoff(1, policy.rng("k2"))] != a[:1]


def test_corrupt_cache_entry_is_a_miss(cache: Cache) -> None:
    gen = ScriptedGenerator()
    req = reqs(1)
    cache.put_many_json(CACHE_NS, {cache_key(gen, req[0]): {"unexpected": 1}})
    out = generate_all(gen, req, cache)
    assert not out[0].cache_hit and out[0].text == "QUESTION 0"


def test_no_cache_and_empty_input() -> None:
    gen = ScriptedGenerator()
    assert generate_all(gen, [], None) == []
    out = generate_all(gen, reqs(2), None)
    assert [r.text for r in out] == ["QUESTION 0", "QUESTION 1"]


def test_usable_inside_a_running_loop(cache: Cache) -> None:
    gen = ScriptedGenerator()

    async def main() -> tuple[list[str | None], list[str | None]]:
        sync = generate_all(gen, reqs(2), None)  # runs its own loop in a helper thread
        direct = await agenerate_all(gen, reqs(2, prefix="r"), cache)
        return [r.text for r in sync], [r.text for r in direct]

    assert asyncio.run(main()) == (["QUESTION 0", "QUESTION 1"], ["QUESTION 0", "QUESTION 1"])


def test_progress_advances_once_per_request(cache: Cache) -> None:
    seen: list[int] = []

    class Recorder:
        @contextmanager
        def task(self, description: str, total: int) -> Iterator[Any]:
            seen.append(-total)
            yield lambda n=1: seen.append(n)

    gen = ScriptedGenerator()
    a, b = reqs(2)
    generate_all(gen, [a], cache)
    generate_all(gen, [a, b, b.model_copy(update={"case_id": "dup"})], cache, progress=Recorder())  # type: ignore[arg-type]
    assert seen[0] == -3 and sum(seen[1:]) == 3


def test_bad_return_value_is_an_error_value(cache: Cache) -> None:
    class Broken(ScriptedGenerator):
        async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int]]:
            if req.case_id == "q0":
                return None, {}  # type: ignore[return-value]
            return "x", {"total_tokens": "many"}  # type: ignore[dict-item]

    out = generate_all(Broken(), reqs(2), cache)
    assert [r.error_kind for r in out] == ["internal", "internal"]
    assert "expected str" in (out[0].error or "") and "ValueError" in (out[1].error or "")
    assert cache.count(CACHE_NS) == 0


def test_empty_text_is_a_typed_error_never_retried_or_cached(cache: Cache) -> None:
    class Empty(ScriptedGenerator):
        async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int]]:
            self.calls.append((req.case_id, time.monotonic()))
            return ("" if req.case_id == "q0" else "  \n"), {}

    gen = Empty()
    out = generate_all(gen, reqs(2), cache, **FAST)
    assert [r.error_kind for r in out] == ["empty_response", "empty_response"]
    assert [r.attempts for r in out] == [1, 1] and len(gen.calls) == 2 and cache.count(CACHE_NS) == 0
    assert "no text" in (out[0].error or "") and "whitespace" in (out[1].error or "")
    # an empty text cached by an older version is a miss, not an answer
    ok = ScriptedGenerator()
    cache.put_many_json(CACHE_NS, {cache_key(ok, reqs(1)[0]): {"text": " ", "usage": {}}})
    again = generate_all(ok, reqs(1), cache)
    assert not again[0].cache_hit and again[0].text == "QUESTION 0"


def test_finish_reason_travels_with_the_text_into_the_cache(cache: Cache) -> None:
    class Finishing(ScriptedGenerator):
        async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int], str | None]:  # type: ignore[override]
            self.calls.append((req.case_id, time.monotonic()))
            return "partial", {}, {"q0": "length", "q1": "stop"}.get(req.case_id)

    gen = Finishing()
    out = generate_all(gen, reqs(3), cache)
    assert [r.finish_reason for r in out] == ["length", "stop", None]
    assert [r.truncated for r in out] == [True, False, False]
    hits = generate_all(gen, reqs(3), cache)
    assert all(r.cache_hit for r in hits) and [r.finish_reason for r in hits] == ["length", "stop", None]
    assert generate_all(ScriptedGenerator(), reqs(1), None)[0].finish_reason == "stop"  # (text, usage): finished


def test_prepare_runs_once_outside_the_timeout(cache: Cache) -> None:
    class Cold(ScriptedGenerator):
        prepared = 0

        async def aprepare(self) -> None:
            self.prepared += 1
            time.sleep(0.3)  # blocking, like a cold import; the per-call timeout is 0.1 s

    gen = Cold()
    out = generate_all(gen, reqs(4), cache, timeout_s=0.1, **FAST)
    assert [r.attempts for r in out] == [1] * 4 and all(r.ok for r in out) and gen.prepared == 1

    class Broken(ScriptedGenerator):
        async def aprepare(self) -> None:
            raise GenerationError("config", "no key for sk-abcdefghijklmnop", retryable=False)

    out = generate_all(Broken(model="other"), reqs(2), cache)
    assert [r.error_kind for r in out] == ["config", "config"] and [r.attempts for r in out] == [0, 0]
    assert "sk-abc" not in (out[0].error or "") and "***" in (out[0].error or "")
