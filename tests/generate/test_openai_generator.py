"""The ``openai`` generator through the real ``openai`` client over HTTP, against the fake server."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cache import Cache
from harness.errors import HarnessError
from harness.generate import (
    GENERATORS,
    GenerationRequest,
    OpenAIGenerator,
    cache_key,
    generate_all,
    parse_retry_after,
)
from harness.testing import FakeOpenAIServer, Fault

SENTINEL = "sk-SENTINEL-0123456789abcdefXYZ"
FAST: dict[str, Any] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Cache]:
    c = Cache(tmp_path / "cache.sqlite")
    yield c
    c.close()


def gen(srv: FakeOpenAIServer, **args: Any) -> OpenAIGenerator:
    return GENERATORS.build("openai", {"base_url": srv.base_url, "model": "fake-model", **args})  # type: ignore[return-value]


def reqs(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(case_id=f"q{i}", messages=(
        {"role": "system", "content": "Answer from the passages."},
        {"role": "user", "content": f"[d{i}] Fact number {i}. More text.\nQuestion {i}?"},
    )) for i in range(n)]


def test_success_then_cache_hit(server: FakeOpenAIServer, cache: Cache) -> None:
    g = gen(server, temperature=0)
    out = generate_all(g, reqs(3), cache)
    assert [r.text for r in out] == [f"Fact number {i}. [d{i}]" for i in range(3)]
    assert all(r.attempts == 1 and not r.cache_hit and r.error is None for r in out)
    assert out[0].usage["total_tokens"] == out[0].usage["prompt_tokens"] + out[0].usage["completion_tokens"] > 0
    assert server.requests_received == 3
    assert server.requests[0].body["temperature"] == 0
    assert server.requests[0].authorization == f"Bearer {SENTINEL}"

    again = generate_all(gen(server, temperature=0.0), reqs(3), cache)  # a new generator object, same args
    assert server.requests_received == 3
    assert all(r.cache_hit for r in again) and [r.text for r in again] == [r.text for r in out]


def test_sampling_params_change_the_key(server: FakeOpenAIServer, cache: Cache) -> None:
    generate_all(gen(server, temperature=0), reqs(2), cache)
    generate_all(gen(server, temperature=0.7), reqs(2), cache)
    assert server.requests_received == 4
    req = reqs(1)[0]
    base = cache_key(gen(server), req)
    variants: list[dict[str, Any]] = [
        {"temperature": 1.0}, {"top_p": 0.5}, {"max_tokens": 5}, {"seed": 1}, {"stop": ["\n"]},
        {"presence_penalty": 0.1}, {"frequency_penalty": 0.1}, {"response_format": {"type": "json_object"}},
        {"extra_body": {"top_k": 5}}, {"model": "other-model"}, {"endpoint_id": "prod"},
    ]
    keys = {json.dumps(v): cache_key(gen(server, **v), req) for v in variants}
    assert base not in keys.values() and len(set(keys.values())) == len(variants)
    assert cache_key(gen(server, stop="x"), req) == cache_key(gen(server, stop=["x"]), req)
    assert cache_key(gen(server, timeout=5), req) == base  # a timeout does not change an answer


def test_endpoint_in_key_unless_named_and_key_never_in_it(server: FakeOpenAIServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    req = reqs(1)[0]
    here = gen(server)
    elsewhere = GENERATORS.build("openai", {"base_url": "http://127.0.0.1:1/v1", "model": "fake-model"})
    assert cache_key(here, req) != cache_key(elsewhere, req)
    named = [GENERATORS.build("openai", {"base_url": u, "model": "m", "endpoint_id": "ci"})
             for u in (server.base_url, "http://127.0.0.1:1/v1")]
    assert cache_key(named[0], req) == cache_key(named[1], req)
    odd = GENERATORS.build("openai", {"base_url": "HTTPS://API.Example.com:443/v1/?api-version=1#x", "model": "m"})
    assert odd.identity()["endpoint"] == "https://api.example.com/v1"
    before = cache_key(here, req)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-key-entirely")
    assert cache_key(here, req) == before


def test_response_format_and_max_tokens_passed_through(server: FakeOpenAIServer, cache: Cache) -> None:
    g = gen(server, response_format={"type": "json_object"}, max_tokens=2, seed=3, stop="END", top_p=0.9,
            extra_body={"top_k": 4})
    out = generate_all(g, reqs(1), cache)
    body = server.requests[0].body
    assert body["response_format"] == {"type": "json_object"} and body["max_tokens"] == 2
    assert body["seed"] == 3 and body["stop"] == ["END"] and body["top_p"] == 0.9 and body["top_k"] == 4
    assert "temperature" not in body  # unset parameters are not sent (the server's default applies)
    assert json.loads(out[0].text or "") == {"answer": "Fact number"}


def test_rate_limit_retry_after_honored(server: FakeOpenAIServer, cache: Cache) -> None:
    server.push(Fault.rate_limit(retry_after=0.3))
    out = generate_all(gen(server), reqs(1), cache, **FAST)
    assert out[0].error is None and out[0].attempts == 2
    first, second = server.requests
    assert second.t - first.t >= 0.3
    assert out[0].latency_s >= 0.3


def test_503_with_http_date_retry_after(server: FakeOpenAIServer, cache: Cache) -> None:
    when = email.utils.formatdate(time.time() + 1.0, usegmt=True)  # second resolution: waits 0..1 s
    server.push(Fault.unavailable(retry_after=when))
    out = generate_all(gen(server), reqs(1), cache, **FAST)
    assert out[0].error is None and out[0].attempts == 2


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    assert parse_retry_after({}) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after({"Retry-After": future}) or 0) <= 30
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after({"Retry-After": past}) == 0.0


@pytest.mark.parametrize("fault", [Fault.server_error(500), Fault.server_error(502), Fault.invalid_json(),
                                   Fault.missing_choices(), Fault(body="plain text, not json"),
                                   Fault.disconnect()],
                         ids=["500", "502", "invalid-json", "missing-choices", "not-json", "disconnect"])
def test_transient_fault_then_success(server: FakeOpenAIServer, cache: Cache, fault: Fault) -> None:
    server.push(fault)
    out = generate_all(gen(server), reqs(1), cache, **FAST)
    assert out[0].error is None and out[0].text == "Fact number 0. [d0]"
    assert out[0].attempts == 2 and server.requests_received == 2


def test_timeout_then_success(server: FakeOpenAIServer, cache: Cache) -> None:
    server.push(Fault.slow(1.0))
    t0 = time.monotonic()
    out = generate_all(gen(server), reqs(1), cache, timeout_s=0.3, **FAST)
    assert out[0].error is None and out[0].attempts == 2
    assert time.monotonic() - t0 < 1.0


def test_client_timeout_arg_is_a_timeout_error(server: FakeOpenAIServer, cache: Cache) -> None:
    server.push(Fault.slow(1.0), times=None)
    out = generate_all(gen(server, timeout=0.2), reqs(1), cache, max_retries=1, **FAST)
    assert out[0].error_kind == "timeout" and out[0].attempts == 2


def test_persistent_500_is_a_counted_error(server: FakeOpenAIServer, cache: Cache) -> None:
    server.push(Fault.server_error(500), match="Question 1?", times=None)
    out = generate_all(gen(server), reqs(3), cache, max_retries=2, **FAST)
    assert [r.error is None for r in out] == [True, False, True]
    bad = out[1]
    assert bad.text is None and bad.error_kind == "server_error" and bad.attempts == 3
    assert "HTTP 500" in (bad.error or "") and "gave up after 3 attempts" in (bad.error or "")
    assert server.requests_received == 2 + 3
    assert cache.count("generations") == 2


def test_401_fails_at_once_and_stops_calling(server: FakeOpenAIServer, cache: Cache) -> None:
    server.push(Fault.unauthorized(), times=None)
    out = generate_all(gen(server), reqs(10), cache, concurrency=1, **FAST)
    assert all(r.error_kind == "auth" for r in out)
    assert out[0].attempts == 1 and "HTTP 401" in (out[0].error or "") and "OPENAI_API_KEY" in (out[0].error or "")
    assert server.requests_received == 1
    assert cache.count("generations") == 0


def test_400_fails_at_once_for_that_case_only(server: FakeOpenAIServer, cache: Cache) -> None:
    server.push(Fault.bad_request("maximum context length exceeded"), match="Question 0?")
    out = generate_all(gen(server), reqs(2), cache, **FAST)
    assert out[0].error_kind == "bad_request" and out[0].attempts == 1
    assert "maximum context length" in (out[0].error or "")
    assert out[1].error is None


def test_concurrency_bound_respected(cache: Cache) -> None:
    with FakeOpenAIServer(latency_s=0.2) as srv:
        out = generate_all(gen(srv), reqs(12), cache, concurrency=4)
        assert all(r.error is None for r in out)
        assert srv.max_in_flight == 4


def test_api_key_never_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", SENTINEL)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other-0000000000")
    cache = Cache(tmp_path / "c.sqlite")
    with FakeOpenAIServer(api_key=SENTINEL) as srv:
        srv.push(Fault(status=500, message=f"echoing {SENTINEL} and Bearer {SENTINEL}"), match="Question 2?",
                 times=None)
        g = gen(srv, api_key_env="MY_LLM_KEY", temperature=0)
        out = generate_all(g, reqs(4), cache, concurrency=1, max_retries=1, **FAST)
        srv.push(Fault(status=401, message=f"Incorrect API key provided: {SENTINEL}"), match="Question 4?")
        out += generate_all(g, reqs(6)[4:], cache, concurrency=1, max_retries=1, **FAST)
        assert srv.requests[0].authorization == f"Bearer {SENTINEL}"  # the key was used ...
    assert [r.error_kind for r in out] == [None, None, "server_error", None, "auth", "auth"]
    assert "echoing *** and Bearer ***" in (out[2].error or "") and "not attempted" in (out[5].error or "")
    cache.close()
    blobs = [p.read_bytes() for p in tmp_path.iterdir()]  # the db and its WAL
    texts = [json.dumps(g.spec), json.dumps(g.identity()), repr(g), *(r.model_dump_json() for r in out)]
    assert not any(SENTINEL.encode() in b for b in blobs)  # ... and stored nowhere
    assert not any(SENTINEL in t for t in texts)


def test_key_in_manifest_args_is_rejected_without_echoing_it(server: FakeOpenAIServer) -> None:
    with pytest.raises(HarnessError) as info:
        GENERATORS.build("openai", {"model": "m", "api_key": SENTINEL})
    assert SENTINEL not in str(info.value) and "OPENAI_API_KEY" in str(info.value)
    with pytest.raises(HarnessError, match="temprature -> temperature"):
        GENERATORS.build("openai", {"model": "m", "temprature": 0})
    with pytest.raises(HarnessError, match="temperature"):
        GENERATORS.build("openai", {"model": "m", "temperature": "hot"})
    with pytest.raises(HarnessError, match="model"):
        GENERATORS.build("openai", {})
    for url in (f"https://user:{SENTINEL}@api.example.com/v1", f"https://api.example.com/v1?api_key={SENTINEL}"):
        with pytest.raises(HarnessError, match="credentials") as info:
            GENERATORS.build("openai", {"model": "m", "base_url": url})
        assert SENTINEL not in str(info.value)


def test_missing_key_for_remote_endpoint(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    g = GENERATORS.build("openai", {"base_url": "https://llm.example.invalid/v1", "model": "m"})
    out = generate_all(g, reqs(3), cache)
    assert all(r.error_kind == "config" for r in out)
    assert "OPENAI_API_KEY is not set" in (out[0].error or "") and "hint" in (out[0].error or "")
    with pytest.raises(HarnessError, match="OPENAI_API_KEY"):
        g.preflight()  # type: ignore[attr-defined]


def test_local_endpoint_needs_no_key(server: FakeOpenAIServer, cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    out = generate_all(gen(server), reqs(1), cache)
    assert out[0].error is None


def test_base_url_from_environment(server: FakeOpenAIServer, cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    g = GENERATORS.build("openai", {"model": "fake-model"})
    assert g.spec == {"name": "openai", "args": {"model": "fake-model"}}
    assert g.identity()["endpoint"] == server.base_url
    assert generate_all(g, reqs(1), cache)[0].error is None


def test_generator_reusable_across_event_loops(server: FakeOpenAIServer) -> None:
    g = gen(server)
    for _ in range(2):  # each generate_all runs (and closes) its own loop and client
        assert generate_all(g, reqs(2), None)[1].error is None
    assert server.requests_received == 4
