"""Every fault an OpenAI-compatible endpoint can produce, through the real ``openai`` client over HTTP.

For each mode of the fake server: what the case is typed as, whether it was retried, how many calls
it cost, and whether it was cached (a re-run calls again only when it was not). Then the same
through ``harness run``: empty and filtered answers are typed per-case errors that no scorer
passes, a truncated answer is kept, recorded, counted and gateable; the per-call timeout does not
include creating the client; and a key the endpoint echoes back (whole or masked) is stored and
printed nowhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from harness.cache import Cache
from harness.generate import GENERATORS, GenerationRequest, generate_all
from harness.generate.engine import CACHE_NS
from harness.runs import load_run
from harness.testing import FakeOpenAIServer, Fault
from tests.conftest import add_generation, make_project


def _plain_bytes(path: Path) -> bytes:
    """A stored file's content as a reader sees it: a run's Parquet table decoded (its pages are compressed, so
    a secret inside would not show in the raw bytes), any other file as it is."""
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist()).encode()
    return path.read_bytes()

FAST: dict[str, Any] = {"backoff_base_s": 0.01, "backoff_max_s": 0.02, "max_retries": 2, "timeout_s": 1.0}
TARGET = "Question 1?"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-faults-0123456789")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def _reqs(n: int = 3) -> list[GenerationRequest]:
    return [GenerationRequest(case_id=f"q{i}", messages=(
        {"role": "user", "content": f"[d{i}] Backups run hourly and are kept for seven days.\nQuestion {i}?"},
    )) for i in range(n)]


def _calls(srv: FakeOpenAIServer, needle: str = TARGET) -> int:
    return sum(1 for r in srv.requests if needle in r.prompt)


# mode -> (faults, times: None = every request, kind (None = success), calls, cached)
MODES: dict[str, tuple[list[Fault], int | None, str | None, int, bool]] = {
    "429 with Retry-After": ([Fault.rate_limit(retry_after=0.1)], 1, None, 2, True),
    "429 without Retry-After": ([Fault.rate_limit(retry_after=None)], 1, None, 2, True),
    "500": ([Fault.server_error(500)], 1, None, 2, True),
    "502": ([Fault.server_error(502)], 1, None, 2, True),
    "503": ([Fault.unavailable()], 1, None, 2, True),
    "connection reset": ([Fault.connection_reset()], 1, None, 2, True),
    "connection closed": ([Fault.disconnect()], 1, None, 2, True),
    "timeout": ([Fault.slow(2.5)], 1, None, 2, True),
    "malformed body (not JSON)": ([Fault.invalid_json()], 1, None, 2, True),
    "malformed body (no choices)": ([Fault.missing_choices()], 1, None, 2, True),
    "empty content": ([Fault.empty()], None, "empty_response", 1, False),
    "whitespace content": ([Fault.whitespace()], None, "empty_response", 1, False),
    "null content": ([Fault.null_message()], None, "empty_response", 1, False),
    "finish_reason length": ([Fault.truncated()], None, None, 1, True),
    "content_filter": ([Fault.content_filtered()], None, "content_filter", 1, False),
    "slow (within the timeout)": ([Fault.slow(0.15)], None, None, 1, True),
    "always 500": ([Fault.server_error(500)], None, "server_error", 3, False),
    "always 503": ([Fault.unavailable(retry_after=0.01)], None, "server_error", 3, False),
    "always 429": ([Fault.rate_limit(retry_after=0.01)], None, "rate_limit", 3, False),
    "always reset": ([Fault.connection_reset()], None, "connection", 3, False),
    "always timeout": ([Fault.slow(2.5)], None, "timeout", 3, False),
    "always malformed": ([Fault.invalid_json()], None, "malformed_response", 3, False),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_each_fault_is_typed_retried_counted_and_cached_as_it_should(
        mode: str, server: FakeOpenAIServer, tmp_path: Path) -> None:
    faults, times, kind, calls, cached = MODES[mode]
    server.push(*faults, match=TARGET, times=times)
    g = GENERATORS.build("openai", {"base_url": server.base_url, "model": "fake-model", "temperature": 0})
    cache = Cache(tmp_path / "cache.sqlite")
    try:
        out = generate_all(g, _reqs(), cache, concurrency=3, **FAST)
        hit = out[1]
        assert hit.error_kind == kind, (mode, hit.error)
        assert hit.attempts == calls and _calls(server) == calls  # retried exactly as often as it should be
        assert [r.ok for r in (out[0], out[2])] == [True, True] and _calls(server, "Question 0?") == 1
        if kind is None:
            assert hit.text and hit.text.strip()
        else:
            assert hit.text is None and (hit.error or "").startswith(kind)
        assert cache.count(CACHE_NS) == (3 if cached else 2)  # only successes are cached
        again = generate_all(g, _reqs(), cache, concurrency=3, **FAST)
        assert again[1].cache_hit is cached and _calls(server) == calls + (0 if cached else again[1].attempts)
        assert again[1].error_kind == (None if times == 1 else kind)
        if mode == "finish_reason length":  # kept, marked truncated, and still marked on a cache hit
            assert hit.text == "Backups run hourly and are" and hit.finish_reason == "length" and hit.truncated
            assert again[1].truncated and not out[0].truncated and out[0].finish_reason == "stop"
        if mode == "429 with Retry-After":
            first, second = (r.t for r in server.requests if TARGET in r.prompt)
            assert second - first >= 0.1  # honoured as a lower bound
    finally:
        cache.close()


def test_content_filter_is_final_and_not_paid_for_again(server: FakeOpenAIServer, tmp_path: Path) -> None:
    """The issue's number: 76 filtered cases cost 304 calls (4 each). Now one call each, typed."""
    server.push(Fault.content_filtered(), times=None)
    g = GENERATORS.build("openai", {"base_url": server.base_url, "model": "fake-model"})
    out = generate_all(g, _reqs(20), None, concurrency=4, **FAST)
    assert {r.error_kind for r in out} == {"content_filter"} and server.requests_received == 20
    assert "content_filter" in (out[0].error or "") and "not retried" in (out[0].error or "")


def test_client_setup_is_outside_the_call_timeout(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold process spends most of a second (several on a loaded machine) importing ``openai`` and
    building the client; with that inside the per-call timeout the first batch timed out and was
    sent again. Here the client takes 1.5 s to build and the timeout is 1 s."""
    import openai

    class SlowClient(openai.AsyncOpenAI):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            time.sleep(1.5)  # blocking, like an import
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(openai, "AsyncOpenAI", SlowClient)
    server.latency_s = 0.05
    g = GENERATORS.build("openai", {"base_url": server.base_url, "model": "fake-model"})
    out = generate_all(g, _reqs(6), None, concurrency=6, timeout_s=1.0, max_retries=2, backoff_base_s=0.01)
    assert [r.error for r in out] == [None] * 6
    assert [r.attempts for r in out] == [1] * 6 and server.requests_received == 6  # nothing sent twice


# --- through `harness run` ---------------------------------------------------------------------------


def _project(root: Path, srv: FakeOpenAIServer, retries: int = 2) -> Path:
    make_project(root, lock=False)
    params = (f'{{ name = "openai", model = "fake-1", base_url = "{srv.base_url}", temperature = 0, '
              f"concurrency = 2, max_retries = {retries}, timeout_s = 5 }}")
    return add_generation(root, params)


def test_empty_filtered_and_truncated_answers_through_a_run(tmp_path: Path, server: FakeOpenAIServer) -> None:
    from harness.gates import evaluate_gates, known_metrics
    from harness.manifest import load_manifest
    from harness.pipeline import run_manifest
    from harness.types import GateRule

    manifest = _project(tmp_path, server)
    server.push(Fault.empty(), match="how often do backups run", times=None)  # q1: json contract, facts
    server.push(Fault.truncated("TLS certificates are rotated"), match="when are TLS certificates", times=None)
    server.push(Fault.content_filtered(), match="no judged documents here", times=None)  # q4
    run = run_manifest(manifest).run
    out = {o.case_id: o for o in run.outputs}
    v = run.case_scores()

    # empty: a typed error, counted, scored 0 (1 on failure rates) by every scorer, never a pass
    assert out["q1"].error is not None and out["q1"].error.kind == "empty_response" and out["q1"].answer is None
    assert v["q1"]["groundedness"] == 0.0 and v["q1"]["grounded"] == 0.0 and v["q1"]["fact_recall"] == 0.0
    assert v["q1"]["format_pass"] == 0.0 and v["q1"]["format_critical_fail"] == 1.0
    assert v["q1"]["answer_contains"] == 0.0 and v["q1"]["truncated"] == 1.0
    # content_filter: typed, one call, not retried
    q4 = out["q4"]
    assert q4.error is not None and q4.error.kind == "content_filter" and q4.generation is not None
    assert q4.error.stage == "generate" and q4.generation.attempts == 1
    assert run.counts["errors"] == 2 and run.counts["generation_errors"] == 2
    # length: the answer is kept and scored, the truncation recorded per case, counted, gateable
    assert out["q2"].answer == "TLS certificates are rotated" and out["q2"].error is None
    q2, q3 = out["q2"].generation, out["q3"].generation
    assert q2 is not None and q2.finish_reason == "length" and q2.truncated is True
    assert q3 is not None and q3.finish_reason == "stop" and q3.truncated is False
    assert run.counts["truncated"] == 1 and v["q2"]["truncated"] == 1.0 and v["q3"]["truncated"] == 0.0
    assert run.aggregates.overall["truncated"].greater_is_better is False

    assert "truncated" in known_metrics(load_manifest(manifest))  # a [[gates]] rule may name it
    verdict = evaluate_gates([GateRule(metric="truncated", max_rate=0.05, wilson=False)], run, None)
    truncated_rule = next(r for r in verdict.results if r.metric == "truncated")
    assert truncated_rule.status == "fail" and "3/4" in truncated_rule.message  # q2, and the 2 errors

    calls = server.requests_received
    again = run_manifest(manifest).run  # errors are not cached; the truncated answer is, and stays marked
    assert server.requests_received == calls + 2
    assert {o.case_id: o.generation is not None and o.generation.truncated for o in again.outputs}["q2"] is True
    assert again.counts["truncated"] == 1 and again.case_scores()["q2"]["truncated"] == 1.0


# --- a planted key the endpoint echoes back ---------------------------------------------------------------

PLANTED = "sk-PLANTED0a1b2c3d4e5f6g7h8SECRET"
ECHOES = {
    "how often do backups run": (400, f"Invalid 'messages': request had Authorization: Bearer {PLANTED} attached"),
    "when are TLS certificates": (500, f"upstream said api_key={PLANTED}&org=x failed; masked PLANTED0****CRET"),
    "what is the storage quota": (401, "Incorrect API key provided: sk-PLANT****CRET. You can find your API key "
                                       "at https://platform.openai.com/account/api-keys."),
}
FRAGMENTS = [PLANTED, PLANTED[3:], "sk-PLANT****CRET", "PLANTED0****CRET", PLANTED[:12], PLANTED[-10:],
             "PLANTED0a1b"]


def test_a_planted_key_echoed_by_the_endpoint_is_stored_and_printed_nowhere(tmp_path: Path) -> None:
    with FakeOpenAIServer(api_key=PLANTED) as srv:
        for needle, (status, message) in ECHOES.items():
            srv.push(Fault(status=status, message=message), match=needle, times=None)
        manifest = _project(tmp_path, srv, retries=1)
        env = {**os.environ, "OPENAI_API_KEY": PLANTED, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("HARNESS_HOME", None)
        proc = subprocess.run([str(Path(sys.executable).parent / "harness"), "run", "--manifest", str(manifest)],
                              cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert srv.requests_received >= 2 and srv.requests[0].authorization == f"Bearer {PLANTED}"
    assert proc.returncode in (0, 1), proc.stderr.decode()[-2000:]  # errored cases; never a crash
    runs = sorted((tmp_path / ".harness" / "runs").glob("*/*.json"))
    assert len(runs) == 1, proc.stderr.decode()[-2000:]
    stored = json.loads(load_run(runs[0]).model_dump_json())
    kinds = {o["case_id"]: (o.get("error") or {}).get("kind") for o in stored["outputs"]}
    assert kinds["q1"] == "bad_request" and kinds["q3"] == "auth", kinds
    errors = " | ".join(str(o.get("error")) for o in stored["outputs"])
    assert "Bearer ***" in errors and "api_key=***" in errors, errors  # the message is kept, the secret is not
    files = [p for p in (tmp_path / ".harness").rglob("*") if p.is_file()]
    assert files
    for blob, where in [(_plain_bytes(p), str(p)) for p in files] + [(proc.stdout, "stdout"), (proc.stderr, "stderr")]:
        for fragment in FRAGMENTS:
            assert fragment.encode() not in blob, (fragment, where)


def test_redact_catches_keys_whole_masked_and_by_position(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.redact import redact

    monkeypatch.setenv("MY_SERVICE_TOKEN", "Zq7PLANTEDvalue9876xyz")
    cases = {
        f"Incorrect API key provided: {PLANTED}.": PLANTED,
        "Incorrect API key provided: sk-PLANT****CRET.": "PLANT****CRET",
        "key sk-proj-abcd************************wxyz is invalid": "abcd*",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==": "dXNlcjpwYXNzd29yZA",
        '{"headers": {"Authorization": "Bearer abc.def-ghi"}}': "abc.def",
        "GET /v1?api_key=abc123def&x=1": "abc123def",
        "x-api-key: 0f9e8d7c6b5a": "0f9e8d7c6b5a",
        "token Zq7PLANTEDvalue9876xyz expired": "Zq7PLANTED",  # the environment's secret, not key-shaped
        "shown as Zq7P*****9876xyz": "9876xyz",
        "password=hunter2hunter2": "hunter2",
        "hf_abcdefghijklmnopqrstuv rejected": "abcdefghij",
    }
    for text, secret in cases.items():
        assert secret not in redact(text), text
    for harmless in ("HTTP 400: max_tokens must be at most 4096 tokens", "basic checks passed",
                     "Rate limit reached (fake)", "export OPENAI_API_KEY=..., or set api_key_env"):
        assert redact(harmless) == harmless


GROQ_KEY = "gsk_ABCDEFGHIJKLMNOPQRSTUVWX1234"
MIDDLE = GROQ_KEY[4:26]  # "ABCDEFGHIJKLMNOPQRSTUV": neither a prefix nor a suffix of the key


def test_a_middle_part_of_the_key_echoed_back_is_stored_and_printed_nowhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reliability.clirun import cli_in_process

    monkeypatch.setenv("OPENAI_API_KEY", GROQ_KEY)
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    with FakeOpenAIServer(api_key=GROQ_KEY) as srv:
        srv.push(Fault(status=400, message=f"Invalid request: key fragment {MIDDLE} is not allowed here"),
                 match="how often do backups run", times=None)
        manifest = _project(tmp_path, srv, retries=1)
        monkeypatch.chdir(tmp_path)
        code, out, err = cli_in_process(capsys, "run", "--manifest", str(manifest))
        assert srv.requests_received >= 1
    assert code in (0, 1), err
    runs = sorted((tmp_path / ".harness" / "runs").glob("*/*.json"))
    assert len(runs) == 1
    stored = {o["case_id"]: o for o in json.loads(load_run(runs[0]).model_dump_json())["outputs"]}
    assert stored["q1"]["error"]["kind"] == "bad_request"
    assert "key fragment *** is not allowed" in str(stored["q1"]["error"])  # the message is kept
    for blob, where in [(_plain_bytes(p), str(p)) for p in (tmp_path / ".harness").rglob("*") if p.is_file()] \
            + [(out.encode(), "stdout"), (err.encode(), "stderr")]:
        for fragment in (MIDDLE, MIDDLE[:8], MIDDLE[-8:], GROQ_KEY[10:20]):
            assert fragment.encode() not in blob, (fragment, where)


def test_the_fake_server_records_no_request_whose_body_never_arrived() -> None:
    """A client killed between its headers and its body (a SIGKILLed run) sent no request: none is recorded.

    Otherwise the half-sent request shows up as a call with an empty prompt, and a test counting distinct prompts
    paid for (test_replay_resume) counts one too many.
    """
    import socket

    with FakeOpenAIServer() as srv:
        host, port = srv.base_url.split("//", 1)[1].split("/", 1)[0].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 200\r\n\r\n{\"model\": ")
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1024) == b""  # closed without an answer
        assert srv.requests_received == 0
