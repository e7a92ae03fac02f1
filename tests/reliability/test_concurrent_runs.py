"""Two runs at once on one store pay for each call once (harness.inflight).

Two ``harness run`` processes are started together on one project against the fake endpoint. The
server holds every answer until both processes have had time to reach generation, so without
in-flight leases both would send every request (the issue: 152 calls for 76 cases). With leases
the first to lease a case calls, the other waits for its value in the cache: exactly one call per
case, and both runs store identical results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.cache import Cache
from harness.generate import GenerationRequest, generate_all
from harness.inflight import LeaseStore, lease_path
from harness.runs import load_run
from harness.testing import FakeOpenAIServer
from tests.conftest import add_generation, make_project

N_CASES = 24


def _project(root: Path, base_url: str, n: int = N_CASES) -> Path:
    make_project(root, lock=False)
    rows = [{"id": f"c{i:02d}", "query": f"question {i}: how often do backups run", "relevance": {"d2": 1}}
            for i in range(n)]
    (root / "golden" / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = (f'{{ name = "openai", model = "fake-1", base_url = "{base_url}", temperature = 0, '
              "concurrency = 4, timeout_s = 60, max_retries = 1 }")
    return add_generation(root, params, case_updates={})


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OPENAI_API_KEY": "sk-test-concurrent-0000"}
    for name in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "OPENAI_BASE_URL"):
        env.pop(name, None)
    return env


def _harness() -> str:
    return str(Path(sys.executable).parent / "harness")


def test_two_runs_at_once_pay_once_per_case(tmp_path: Path) -> None:
    with FakeOpenAIServer(latency_s=0.05, max_pause_s=60) as srv:
        manifest = _project(tmp_path, srv.base_url)
        srv.pause()  # hold every answer: neither run can finish a case before both are generating
        t0 = time.monotonic()
        procs = [subprocess.Popen([_harness(), "run", "--json", "--manifest", str(manifest)], cwd=tmp_path,
                                  env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        try:
            deadline = time.monotonic() + 90
            while srv.requests_received == 0 and time.monotonic() < deadline and all(p.poll() is None for p in procs):
                time.sleep(0.02)
            assert srv.requests_received > 0, [p.communicate()[1].decode()[-2000:] for p in procs]
            # both processes started together; give the other one half as long again (at least 2 s) to get here
            time.sleep(max(2.0, 0.5 * (time.monotonic() - t0)))
            held = srv.requests_received
            srv.resume()
            outs = [p.communicate(timeout=120) for p in procs]
        finally:
            srv.resume()
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        prompts = Counter(r.prompt for r in srv.requests)
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    assert held <= 4  # while held, only one run's calls (its concurrency) were in flight
    assert srv.requests_received == N_CASES and set(prompts.values()) == {1}  # exactly one call per case
    summaries = [json.loads(out) for out, _ in outs]
    assert sum(s["counts"]["generated"] for s in summaries) == N_CASES  # the waiter's cases are cache hits
    assert summaries[0]["aggregates"] == summaries[1]["aggregates"]
    answers = []
    for s in summaries:
        run = json.loads(load_run(s["path"]).model_dump_json())
        answers.append({o["case_id"]: o["answer"] for o in run["outputs"]})
        assert all(o["error"] is None for o in run["outputs"])
    assert answers[0] == answers[1] and len(answers[0]) == N_CASES


class _Counting:
    """An in-process generator that counts calls (shared by two engines on two threads)."""

    def __init__(self, calls: Counter[str], delay_s: float) -> None:
        self.spec = {"name": "counting", "args": {}}
        self.calls = calls
        self.delay_s = delay_s

    def identity(self) -> dict[str, str]:
        return {"kind": "counting"}

    def request_key_parts(self, req: GenerationRequest) -> dict[str, object]:
        return {"messages": list(req.messages)}

    async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int]]:
        import asyncio

        self.calls[req.case_id] += 1
        await asyncio.sleep(self.delay_s)
        return f"answer to {req.case_id}", {}


def _reqs(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(case_id=f"q{i}", messages=({"role": "user", "content": f"q{i}"},)) for i in range(n)]


def test_a_dead_owners_lease_is_taken_over_at_once(tmp_path: Path) -> None:
    """A lease whose owner pid is gone (a SIGKILLed run) does not make the next run wait for its TTL."""
    cache_path = tmp_path / "cache.sqlite"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    store = LeaseStore(lease_path(cache_path), ttl_s=600)
    from harness.generate import cache_key

    calls: Counter[str] = Counter()
    gen = _Counting(calls, 0.0)
    keys = [cache_key(gen, r) for r in _reqs(3)]
    store._db.executemany("INSERT INTO leases (k, owner, pid, host, expires) VALUES (?, ?, ?, ?, ?)",
                          [(k, f"{dead_pid}:gone", dead_pid, store.host, time.time() + 600) for k in keys])
    store.close()
    cache = Cache(cache_path)
    try:
        t0 = time.monotonic()
        out = generate_all(gen, _reqs(3), cache)
        assert time.monotonic() - t0 < 5 and [r.ok for r in out] == [True] * 3 and sum(calls.values()) == 3
    finally:
        cache.close()
    assert LeaseStore(lease_path(cache_path)).holders() == {}  # released once cached


def test_a_damaged_lease_file_is_replaced(tmp_path: Path) -> None:
    import warnings

    cache_path = tmp_path / "cache.sqlite"
    lease_path(cache_path).write_bytes(b"\x00garbage, not SQLite" * 100)
    calls: Counter[str] = Counter()
    cache = Cache(cache_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # replaced silently: it only ever holds transient leases
            out = generate_all(_Counting(calls, 0.0), _reqs(3), cache)
    finally:
        cache.close()
    assert [r.ok for r in out] == [True] * 3 and LeaseStore(lease_path(cache_path)).holders() == {}


@pytest.mark.parametrize("fail", [False, True])
def test_two_engines_on_one_cache_share_the_work(tmp_path: Path, fail: bool) -> None:
    """Two engines on two threads (two owners): one call per key; an owner whose calls fail drops its
    leases without a value and the other takes the keys over instead of waiting for nothing."""
    import threading

    calls: Counter[str] = Counter()
    results: list[list[object]] = []

    class Failing(_Counting):
        async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int]]:
            import asyncio

            from harness.generate import GenerationError

            self.calls[req.case_id] += 1
            await asyncio.sleep(self.delay_s)
            raise GenerationError("bad_request", "no", retryable=False)

    def worker(gen: _Counting, delay: float) -> None:
        time.sleep(delay)
        cache = Cache(tmp_path / "cache.sqlite")
        try:
            results.append(list(generate_all(gen, _reqs(8), cache, concurrency=2, lease_poll_s=0.02)))
        finally:
            cache.close()

    first: _Counting = Failing(calls, 0.1) if fail else _Counting(calls, 0.1)
    threads = [threading.Thread(target=worker, args=(first, 0.0)),
               threading.Thread(target=worker, args=(_Counting(calls, 0.1), 0.05))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2
    if fail:  # the failing owner called each key once; the other computed every key itself afterwards
        assert all(v == 2 for v in calls.values()) and len(calls) == 8
    else:
        assert all(v == 1 for v in calls.values()) and len(calls) == 8
