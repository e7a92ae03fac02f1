"""The columnar run store at scale: write a synthetic retrieval-only run (10 metrics, 2 tags) through
:class:`harness.runs.RunWriter` in batches, then read it back by columns, by a few ids, and whole.

Each phase runs in its own process (:func:`bench.measure.run_measured`: wall, peak RSS, CPU), so a phase's
peak RSS is its own; ``idle`` (the imports alone) is the floor the others are read against. Not a test.

    python -m bench.bench_run_store --cases 100000 --batch 5000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

METRICS = ("ndcg@10", "recall@10", "recall@100", "map@10", "mrr@10", "precision@10", "map", "mrr", "rprec",
           "success@1")
TAGS = ("topic", "lang")
MANIFEST_ID = "b" * 64
RUN_ID = "20260101T000000Z-bench0"


def _batch(start: int, n: int, rng: random.Random) -> tuple[list[Any], list[Any], list[Any]]:
    from harness.types import CaseOutput, GoldenCase, RankedDoc, Score

    cases, outputs, scores = [], [], []
    for i in range(start, start + n):
        cid = f"q{i:07d}"
        cases.append(GoldenCase(id=cid, query=f"synthetic query number {i} about topic {i % 17}",
                                relevance={f"d{(i * 7) % 50_000}": 1, f"d{(i * 13) % 50_000}": 2},
                                tags={"topic": f"t{i % 17}", "lang": ("en", "de", "fr")[i % 3]}))
        outputs.append(CaseOutput(case_id=cid, ranking=tuple(RankedDoc(doc_id=f"d{(i + k) % 50_000}",
                                                                       score=1.0 - k / 100) for k in range(10)),
                                  latency_s={"retrieve": rng.random() / 100}))
        for m in METRICS:
            unscored = i % 101 == 0
            scores.append(Score(case_id=cid, metric=m, value=None if unscored else rng.random(),
                                explanation="no relevance judgments" if unscored else None))
    return cases, outputs, scores


def _manifest() -> Any:
    from harness.types import Manifest

    return Manifest.model_validate({"name": "bench", "artifacts": {}})


def phase(name: str, folder: Path, cases: int, batch: int) -> dict[str, Any]:
    from harness.runs import RunStore, load_run, open_run
    from harness.types import Aggregates, MetricSummary

    header = folder / MANIFEST_ID / f"{RUN_ID}.json"
    start = time.perf_counter()
    out: dict[str, Any] = {}
    if name == "write":
        rng = random.Random(0)
        store = RunStore(folder)
        with store.writer(MANIFEST_ID, run_id=RUN_ID, metrics=METRICS, tag_keys=TAGS,
                          latency_stages=("retrieve",)) as w:
            for at in range(0, cases, batch):
                w.append(*_batch(at, min(batch, cases - at), rng))
            aggregates = Aggregates(overall={m: MetricSummary(mean=0.5, n=cases, n_unscored=0) for m in METRICS})
            w.commit(created_at="2026-01-01T00:00:00Z", manifest=_manifest(), manifest_path=None, environment={},
                     scorers=(), aggregates=aggregates, stage_seconds={}, counts={"cases": cases})
        out["table_mb"] = round(header.with_suffix(".parquet").stat().st_size / 1e6, 1)
    elif name == "open":
        out["rows"] = len(open_run(header))  # the header and the table's sha256
    elif name == "columns":
        table = open_run(header)
        out["open_s"] = round(time.perf_counter() - start, 3)
        t0 = time.perf_counter()
        cols = table.columns()
        out["columns_only_s"] = round(time.perf_counter() - t0, 3)
        out["rows"] = len(cols)
        out["mean_ndcg"] = float(cols.values["ndcg@10"][~cols.unscored["ndcg@10"]].mean())
    elif name == "take":
        table = open_run(header)
        out["open_s"] = round(time.perf_counter() - start, 3)
        ids = [f"q{i:07d}" for i in random.Random(1).sample(range(cases), 10)]
        t0 = time.perf_counter()
        got = table.take(ids)
        out["take_only_s"] = round(time.perf_counter() - t0, 3)
        out["taken"] = len(got[1])
    elif name == "load":
        out["scores"] = len(load_run(header).scores)
    elif name != "idle":
        raise SystemExit(f"unknown phase {name}")
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--phases", default="idle,write,open,columns,take,load")
    parser.add_argument("--phase")
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.dir, args.cases, args.batch)))
        return
    from bench.measure import run_measured

    work = Path(tempfile.mkdtemp(prefix="bench-run-store-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    results: dict[str, Any] = {"cases": args.cases, "batch": args.batch, "metrics": len(METRICS), "tags": len(TAGS)}
    try:
        for name in args.phases.split(","):
            argv = [sys.executable, "-m", "bench.bench_run_store", "--phase", name, "--dir", str(work / "runs"),
                    "--cases", str(args.cases), "--batch", str(args.batch)]
            measured = run_measured(argv, Path.cwd(), work / f"{name}.log", env)
            inner = json.loads(Path(measured["stdout"]).read_text() or "{}") if measured["exit"] == 0 else {}
            results[name] = {"exit": measured["exit"], "peak_rss_mb": measured["peak_rss_mb"],
                             "wall_s": measured["wall_s"], **inner}
            if measured["exit"] != 0:
                results[name]["stderr_tail"] = measured["stderr_tail"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
