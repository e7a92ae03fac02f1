"""Replay scores the baseline while the candidate generates: the runs it stores are those two plain
``execute`` calls store (same outputs, scores, counts), the calls in flight never exceed the concurrency,
the candidate's groundedness verdicts come from the cache where it answered as the baseline did, and an
error while scoring the baseline is raised (no report) once the candidate has stopped."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.manifest import load_manifest
from harness.monitor.synthetic import StreamSpec
from harness.pipeline import PendingRun, execute
from harness.runs import RunStore, load_run
from harness.shadow.replay import ReplayRequest, plan_replay, replay, replays_dir, run_replay
from harness.storage import Layout
from harness.testing import FakeOpenAIServer
from harness.testing.shadow import SYSTEM, SYSTEM_NEUTRAL, logged_traffic, shadow_responder, write_shadow_project

SPEC = StreamSpec(days=2, records_per_day=300)
CONCURRENCY = 4


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"OPENAI_API_KEY": "test", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}.items():
        monkeypatch.setenv(k, v)
    for k in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "OPENAI_BASE_URL"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture()
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(responder=shadow_responder(), latency_s=0.02) as server:
        yield server


def _request(tmp: Path, srv: FakeOpenAIServer, limit: int) -> ReplayRequest:
    project = write_shadow_project(tmp / "proj", base_url=srv.base_url, spec=SPEC, n_distractors=0)
    log = logged_traffic(SPEC, tmp / "traffic.jsonl", manifest_id=load_manifest(project.baseline).id, limit=limit)
    return ReplayRequest(baseline=load_manifest(project.baseline), candidate=load_manifest(project.neutral),
                         layout=Layout.for_manifest(project.neutral), log=log, concurrency=CONCURRENCY)


def _content(path: str | Path) -> dict[str, Any]:
    run = json.loads(load_run(path).model_dump_json())
    for o in run["outputs"]:
        o.pop("latency_s", None)
        o.pop("cache_hits", None)
    return {k: run[k] for k in ("cases", "outputs", "scores", "aggregates", "scorers", "manifest_id")} | {
        "counts": {k: v for k, v in run["counts"].items() if k != "generated"}}


def test_overlapped_runs_store_what_sequential_runs_store(tmp_path: Path, srv: FakeOpenAIServer) -> None:
    req = _request(tmp_path, srv, 80)
    shutil.copytree(tmp_path / "proj", tmp_path / "copy")  # the same project, with its own (cold) cache
    rep = replay(req)
    assert srv.max_in_flight <= CONCURRENCY  # generation never overlapped generation
    assert rep.baseline.cases == rep.candidate.cases == 80
    assert rep.baseline.generated == rep.candidate.generated == len({r.prompt for r in srv.requests}) / 2 > 70
    # the same cases through two plain execute calls, one after the other, on the copy's cold cache
    plan = plan_replay(req)
    copy = {label: load_manifest(tmp_path / "copy" / Path(m.path).relative_to(tmp_path / "proj"))
            for label, m in (("baseline", req.baseline), ("candidate", req.candidate))}
    layout = Layout.for_manifest(copy["candidate"].path)
    store = RunStore(tmp_path / "sequential", project=layout.project)
    for side in (rep.baseline, rep.candidate):
        seq = execute(copy[side.label], layout=layout, cases=list(plan.cases), scorers=list(plan.scorers),
                      concurrency=CONCURRENCY, runs=store, score_contracts=plan.contracts)
        assert _content(side.run_path) == _content(seq.path)


def test_an_error_scoring_the_baseline_is_raised_after_the_candidate(tmp_path: Path, srv: FakeOpenAIServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    req = _request(tmp_path, srv, 40)
    plan = plan_replay(req)
    real = PendingRun.finish
    calls: list[str] = []

    def finish(self: PendingRun) -> Any:
        calls.append(str(self.loaded.path))
        if len(calls) == 1:
            self.close()
            raise RuntimeError("scoring broke")
        return real(self)

    monkeypatch.setattr(PendingRun, "finish", finish)
    with pytest.raises(RuntimeError, match="scoring broke"):
        run_replay(plan)
    assert calls == [str(req.baseline.path)]  # the candidate generated, then the error; it was not scored
    prompts = [r.prompt for r in srv.requests]
    assert len(set(prompts)) == len(prompts)  # nothing asked twice
    assert any(SYSTEM_NEUTRAL in p for p in prompts) and any(SYSTEM in p for p in prompts)  # both sides generated
    assert not list(replays_dir(req.layout).glob("*/report.json"))
    monkeypatch.setattr(PendingRun, "finish", real)
    before = srv.requests_received
    again = run_replay(plan)  # both sides' answers were cached: nothing is paid for again
    assert srv.requests_received == before and again.baseline.cache_hits == again.candidate.cache_hits == 40
    assert again.status == "pass" and again.baseline.errors == again.candidate.errors == 0

