"""A killed replay, run again with the same arguments, repeats no paid call that had been flushed to the cache.

The replay runs in a subprocess (``python -c`` calling :func:`harness.shadow.replay.replay`) against a fake
endpoint with latency in this process, and is SIGKILLed after N requests: in the middle of the baseline's
generation, and in the middle of the candidate's. Then it is run again to completion. The bound checked
(module docstring of :mod:`harness.shadow.replay`): the engine flushes its answers to the cache at a call's
completion once ``_FLUSH_SECONDS`` passed since the last flush (or ``_FLUSH_EVERY`` answers wait), so no
prompt answered more than ``_FLUSH_SECONDS`` + one call's latency (+ slack for a loaded machine) before the
kill is requested again, at most ``_FLUSH_EVERY - 1`` answers plus the calls in flight are requested twice,
and a side that finished (the baseline, in the second case) repeats nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.generate.engine import _FLUSH_EVERY, _FLUSH_SECONDS
from harness.manifest import load_manifest
from harness.monitor.synthetic import StreamSpec
from harness.shadow.replay import ReplayRequest, replay, report_path
from harness.storage import Layout
from harness.testing import FakeOpenAIServer
from harness.testing.shadow import logged_traffic, shadow_responder, write_shadow_project
from tests.conftest import sigkill_after

SPEC = StreamSpec(days=3, records_per_day=400)
LATENCY = 0.1
CONCURRENCY = 4
N_RECORDS = 120
SLACK_S = 0.4  # scheduling on a shared machine: the flush's commit, the client's read after the server's send
LOSS_S = _FLUSH_SECONDS + LATENCY + SLACK_S

SCRIPT = """
import sys
from pathlib import Path
from harness.manifest import load_manifest
from harness.shadow.replay import ReplayRequest, replay
from harness.storage import Layout
b, c, log = sys.argv[1:4]
rep = replay(ReplayRequest(baseline=load_manifest(b), candidate=load_manifest(c), layout=Layout.for_manifest(c),
                           log=Path(log), concurrency=int(sys.argv[4])))
print(rep.status)
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OPENAI_API_KEY": "test"}
    for name in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "OPENAI_BASE_URL"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(responder=shadow_responder(), latency_s=LATENCY) as srv:
        yield srv


@pytest.mark.parametrize("where", ["mid baseline", "mid candidate"])
def test_a_killed_replay_resumes_without_repeating_flushed_calls(where: str, server: FakeOpenAIServer,
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    for k, v in _env().items():
        monkeypatch.setenv(k, v)
    for k in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "OPENAI_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    project = write_shadow_project(tmp_path / "proj", base_url=server.base_url, spec=SPEC, n_distractors=0)
    log = logged_traffic(SPEC, tmp_path / "traffic.jsonl", manifest_id=load_manifest(project.baseline).id,
                         limit=N_RECORDS)
    distinct = len({json.loads(line)["query"] for line in log.read_text().splitlines()})  # one call per prompt
    after = distinct * 3 // 4 + (0 if where == "mid baseline" else distinct)

    start = server.requests_received
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(project.baseline), str(project.neutral), str(log),
                             str(CONCURRENCY)], cwd=project.root, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    kill_t = sigkill_after(proc, server, start, after)
    err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    assert proc.returncode == -signal.SIGKILL, err  # killed mid-run, not finished
    first = server.requests[start:]
    assert len(first) >= after
    answered = {r.prompt for r in first if r.t + LATENCY < kill_t - LOSS_S}  # long enough before the kill
    assert answered  # the bound is exercised

    before = server.requests_received
    layout = Layout.for_manifest(project.neutral)
    rep = replay(ReplayRequest(baseline=load_manifest(project.baseline), candidate=load_manifest(project.neutral),
                               layout=layout, log=log, concurrency=CONCURRENCY))
    second = server.requests[before:]
    repeated = answered & {r.prompt for r in second}
    assert not repeated, f"{len(repeated)} prompts answered before the last flush were paid for again"
    paid_twice = {r.prompt for r in first} & {r.prompt for r in second}
    assert len(paid_twice) <= _FLUSH_EVERY - 1 + CONCURRENCY  # the answers waiting for a flush, the calls in flight
    if where == "mid candidate":  # the baseline's generation had finished: flushed whole, nothing repeated
        baseline_prompts = {r.prompt for r in first if "Answer from the passages only." in r.prompt}
        assert len(baseline_prompts) == distinct
        assert not baseline_prompts & {r.prompt for r in second}
        assert rep.baseline.generated == 0 and rep.baseline.cache_hits == N_RECORDS
    # the second run completes every case
    assert rep.status == "pass", rep.reasons
    assert rep.baseline.cases == rep.candidate.cases == N_RECORDS
    assert rep.baseline.errors == rep.candidate.errors == 0
    assert rep.baseline.generated + rep.candidate.generated == len(second)
    assert len({r.prompt for r in first} | {r.prompt for r in second}) == 2 * distinct  # every prompt answered
    assert report_path(rep, layout).is_file()
    assert rep.baseline.seconds + rep.candidate.seconds < 20  # the dead run's leases were taken over
    ages = [kill_t - (r.t + LATENCY) for r in first if r.prompt in paid_twice]
    print(f"{where}: killed after {len(first)} requests; {len(answered)} answered > {LOSS_S:.2f}s before the kill, "
          f"none repeated; {len(paid_twice)} requested again, the oldest answered {max(ages, default=0):.2f}s "
          "before the kill (negative: still in flight)")
