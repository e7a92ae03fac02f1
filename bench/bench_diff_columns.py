"""Peak RSS and time of ``harness.diff.compare`` + ``harness.gates.gate`` on two synthetic runs held as
columns (:class:`harness.columns.RunColumns`, built directly with numpy / pyarrow: no record per case),
at 100k and 1M cases, 10 metrics, 2 tags. Each size runs in its own process (peak RSS from getrusage).

    .venv/bin/python -m bench.bench_diff_columns [--sizes 100000 1000000] [--resamples 50] [--test wilcoxon]
        [--rankings columns records]
    .venv/bin/python -m bench.bench_diff_columns --stored [--sizes 10000] [--max-flips -1] [--broken 0.5]

``--stored``: ``compare`` of two runs saved in the run store (format 4, :class:`harness.runs.RunStore`) with
full pydantic records (10-doc rankings, answers, a generation record, scores with explanations), the head a
candidate that breaks the output format on a share of the cases (``--broken``, default a half: there 8
quality metrics flip, a diagnostic validator metric turns on, answers change, a third of those rankings
move, a tenth error). It times
``compare`` on the stored runs read as columns (records decoded by ``RunTable.take`` / ``iter_batches``)
and on the same runs loaded whole (in memory), and counts the records the stored diff decoded.

Records exist only for the cases the diff asks for (flipped cases, through ``fetch``) and, with
``--rankings records`` (how a table written without ranking columns is read), as a cheap stream for the
rankings pass (``batches``: light stand-ins of outputs with a 3-doc ranking, built per batch and dropped;
what a stored run adds on top is its own per-record decode, ``RunTable.iter_batches``). With
``--rankings columns`` (the default: a format-4 table with its ranking columns) the same rankings come as
``ranking_batches`` (Arrow list arrays of RANKING_SCHEMA, built per batch with numpy) and no record is
made for them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

N_METRICS = 10
TAGS = {"lang": ["en", "de"], "kind": ["fact", "howto", "list"]}


@dataclass(frozen=True, slots=True)
class _Doc:
    doc_id: str
    score: float


@dataclass(frozen=True, slots=True)
class _Case:
    id: str
    query: str
    relevance: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Out:
    case_id: str
    ranking: tuple[_Doc, ...]
    ranking_scored: bool
    answer: str | None
    error: None
    latency_s: dict[str, float]
    cache_hits: dict[str, bool]


def _columns(run_id: str, n: int, rng: np.random.Generator, base_values: dict[str, np.ndarray] | None,
             ranking_columns: bool = True) -> object:
    from harness.columns import RANKING_SCHEMA, RunColumns
    from harness.types import Aggregates, CaseOutput, GoldenCase, Manifest, MetricSummary, Score

    metrics = [f"m{j}" for j in range(N_METRICS)]
    values: dict[str, np.ndarray] = {}
    for m in metrics:
        if base_values is None:
            values[m] = rng.random(n)
        else:  # head: 90% of cases unchanged, the rest moved by noise and a small drop
            v = base_values[m].copy()
            moved = rng.random(n) < 0.1
            v[moved] = np.clip(v[moved] + rng.normal(-0.02, 0.2, int(moved.sum())), 0, 1)
            values[m] = v
    unscored = {m: np.zeros(n, dtype=bool) for m in metrics}
    ids = pa.array([f"c{i:07d}" for i in range(n)], pa.string())
    tags = {k: pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, len(vs), n).astype(np.int32)),
                                              pa.array(vs)).cast(pa.string()) for k, vs in TAGS.items()}
    errored = rng.random(n) < 0.001
    stage = pa.array(["generate" if e else None for e in errored.tolist()], pa.string())
    kind = pa.array(["timeout" if e else None for e in errored.tolist()], pa.string())
    latency = {"retrieve": rng.gamma(2.0, 0.05, n)}
    overall = {m: MetricSummary(mean=float(values[m].mean()), n=n, n_unscored=0) for m in metrics}

    def record(i: int) -> tuple[Any, Any, list[Score]]:
        # light stand-ins with the fields the diff reads (a stored run pays its own decode per record)
        cid = f"c{i:07d}"
        ranking = tuple(_Doc(f"d{(i + j) % 5}", 1.0 - 0.1 * j) for j in range(3))
        return _Case(cid, cid, {"d1": 1}), _Out(cid, ranking, True, None, None, {}, {}), []

    def fetch(wanted: Sequence[str]) -> tuple[list[GoldenCase], list[CaseOutput], list[Score]]:
        recs = [record(int(c[1:])) for c in wanted]
        return [r[0] for r in recs], [r[1] for r in recs], []

    def batches() -> Iterator[tuple[list[GoldenCase], list[CaseOutput], list[Score]]]:
        for start in range(0, n, 10_000):
            yield fetch([f"c{i:07d}" for i in range(start, min(n, start + 10_000))])

    def ranking_batches() -> Iterator[pa.RecordBatch]:
        # the records' rankings as columns: docs d{(i + j) % 5} scored 1.0, 0.9, 0.8; d1 judged 1
        for start in range(0, n, 10_000):
            i = np.arange(start, min(n, start + 10_000))
            m = len(i)
            docs = (i[:, None] + np.arange(3)[None, :]) % 5
            offsets = pa.array(np.arange(0, 3 * m + 1, 3, dtype=np.int32))
            scores = pa.array(np.tile(1.0 - 0.1 * np.arange(3), m))
            grades = pa.array(np.ones(3 * m, dtype=np.int64), mask=(docs.ravel() != 1))
            yield pa.RecordBatch.from_arrays([
                pa.array(np.ones(m, dtype=bool)), pa.ListArray.from_arrays(offsets, scores),
                pa.ListArray.from_arrays(offsets, grades),
                pa.ListArray.from_arrays(pa.array(np.zeros(m + 1, dtype=np.int32)), pa.array([], pa.int32())),
                pa.ListArray.from_arrays(pa.array(np.arange(m + 1, dtype=np.int32)),
                                         pa.array(np.ones(m, dtype=np.int64))),
            ], schema=RANKING_SCHEMA)

    return RunColumns(run_id=run_id, manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                      aggregates=Aggregates(overall=overall), counts={}, scorers=(), case_ids=ids, values=values,
                      unscored=unscored, tags=tags, error_stage=stage, error_kind=kind, latency=latency,
                      fetch=fetch, extra={"cache_hits": {"retrieve": np.zeros(n, dtype=bool)}}, batches=batches,
                      ranking_batches=ranking_batches if ranking_columns else None)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, resamples: int, test: str, max_flips: int | None, rankings: str = "columns") -> dict[str, object]:
    from harness.diff import DiffSettings, compare
    from harness.gates import gate
    from harness.types import GateRule

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    base = _columns("base", n, rng, None, rankings == "columns")
    head = _columns("head", n, rng, base.values, rankings == "columns")  # type: ignore[attr-defined]
    built, rss_built = time.perf_counter() - t0, _rss_mb()
    settings = DiffSettings(n_resamples=resamples, test=test)  # type: ignore[arg-type]
    t1 = time.perf_counter()
    diff = compare(base, head, settings, max_flips=max_flips)  # type: ignore[arg-type]
    t_compare = time.perf_counter() - t1
    rules = [GateRule(metric="m0", max_drop=0.01), GateRule(metric="m1", min=0.3, segment="lang=*"),
             GateRule(metric="error_rate", max_rate=0.01),
             GateRule(metric="latency", stage="retrieve", max_seconds=1.0)]
    t2 = time.perf_counter()
    verdict = gate(rules, head, base, settings=settings, max_flips=max_flips)  # type: ignore[arg-type]
    t_gate = time.perf_counter() - t2
    return {"cases": n, "metrics": N_METRICS, "tests": len(diff.metrics) + len(diff.segments),
            "family": diff.family_size, "flips_total": diff.flips_total, "flips_kept": len(diff.flips),
            "resamples": resamples, "test": test, "rankings": rankings,
            "build_s": round(built, 2), "rss_after_build_mb": round(rss_built, 1),
            "compare_s": round(t_compare, 2), "gate_s": round(t_gate, 2), "peak_rss_mb": round(_rss_mb(), 1),
            "passed": verdict.passed}


STORED_METRICS = 8


def _stored_run(run_id: str, n: int, broken: float) -> object:
    """A full run of ``n`` cases (see the module docstring); ``broken``: the share of cases whose format the
    candidate breaks (0: the baseline)."""
    from harness.types import (
        Aggregates,
        CaseError,
        CaseOutput,
        GenerationRecord,
        GoldenCase,
        Manifest,
        MetricSummary,
        RankedDoc,
        RunResult,
        Score,
    )

    rng, hits = np.random.default_rng(0), np.random.default_rng(1)  # values: the same draws in both runs
    metrics = [f"m{j}" for j in range(STORED_METRICS)]
    cases, outputs, scores = [], [], []
    for i in range(n):
        cid = f"c{i:07d}"
        hit = bool(broken) and hits.random() < broken
        cases.append(GoldenCase(id=cid, query=f"what does passage {i} say about topic {i % 97}?",
                                relevance={f"d{i % 500}": 1, f"d{(i + 7) % 500}": 2}, answers=(f"answer {i}",),
                                tags={"lang": "en" if i % 2 else "de"}))
        step = 2 if hit and i % 3 == 0 else 1
        ranking = tuple(RankedDoc(doc_id=f"d{(i + j * step) % 500}", score=1.0 - 0.05 * j) for j in range(10))
        error = CaseError(stage="generate", kind="server_error", message=f"bad gateway {i}") if hit and i % 10 == 0 \
            else None
        answer = None if error else ("{broken " if hit else "") + f"passage {i} says " * 8
        outputs.append(CaseOutput(
            case_id=cid, ranking=ranking, answer=answer, error=error,
            generation=GenerationRecord(attempts=1, passages_shown=tuple(d.doc_id for d in ranking[:5]),
                                        finish_reason="stop"),
            latency_s={"retrieve": 0.01, "generate": 0.4}))
        for m in metrics:
            v = float(rng.random()) * 0.5 + 0.5
            scores.append(Score(case_id=cid, metric=m, value=0.0 if hit else v, explanation=f"{m} of {cid}"))
        scores.append(Score(case_id=cid, metric="format_fail:json.parse", value=1.0 if hit else 0.0))
    overall = {m: MetricSummary(mean=0.5, n=n, n_unscored=0) for m in metrics}
    overall["format_fail:json.parse"] = MetricSummary(mean=0.5, n=n, n_unscored=0, greater_is_better=False,
                                                      role="diagnostic", label="json parses")
    return RunResult(run_id=run_id, created_at="2026-01-01T00:00:00Z", manifest_id="m",
                     manifest=Manifest(name="m", artifacts={}), cases=tuple(cases), outputs=tuple(outputs),
                     scores=tuple(scores), aggregates=Aggregates(overall=overall))


def stored_child(n: int, resamples: int, test: str, max_flips: int | None, broken: float = 0.5) -> dict[str, object]:
    """``compare`` on two stored runs of ``n`` cases, read as columns and loaded whole (see ``--stored``)."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from harness.baseline import read_columns
    from harness.columns import RunColumns
    from harness.diff import DiffSettings, compare
    from harness.runs import RunStore, load_run, new_run_id

    settings = DiffSettings(n_resamples=resamples, test=test)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="bench-diff-stored-") as tmp:
        store = RunStore(Path(tmp) / "runs")
        t0 = time.perf_counter()
        paths = [store.save(_stored_run(new_run_id(), n, share))  # type: ignore[arg-type]
                 for share in (0.0, broken)]
        built = time.perf_counter() - t0
        decoded = [0]

        def counted(cols: RunColumns) -> RunColumns:
            fetch, batches = cols.fetch, cols.batches
            assert fetch is not None and batches is not None

            def take(ids: Sequence[str]) -> Any:
                got = fetch(ids)
                decoded[0] += len(got[1])
                return got

            def passes() -> Iterator[Any]:
                for got in batches():
                    decoded[0] += len(got[1])
                    yield got

            return replace(cols, fetch=take, batches=passes)

        sides = [read_columns(p, None) for p in paths]
        assert all(isinstance(c, RunColumns) for c in sides)
        b, h = (counted(c) for c in sides)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        diff = compare(b, h, settings, max_flips=max_flips)
        t_stored = time.perf_counter() - t1
        rb, rh = (load_run(p) for p in paths)
        t2 = time.perf_counter()
        in_memory = compare(rb, rh, settings, max_flips=max_flips)
        t_memory = time.perf_counter() - t2
    return {"cases": n, "stored": True, "broken": broken, "flips_total": diff.flips_total,
            "flips_kept": len(diff.flips), "flipped_metrics": len({m for f in diff.flips for m in f.deltas}),
            "resamples": resamples, "test": test,
            "build_s": round(built, 2), "compare_stored_s": round(t_stored, 2), "records_decoded": decoded[0],
            "compare_in_memory_s": round(t_memory, 2), "same_flips": diff.flips == in_memory.flips,
            "peak_rss_mb": round(_rss_mb(), 1)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--resamples", type=int, default=50)
    p.add_argument("--test", default="wilcoxon", choices=["permutation", "wilcoxon", "bootstrap"])
    p.add_argument("--max-flips", type=int, default=100)
    p.add_argument("--rankings", nargs="+", choices=["columns", "records"], default=["columns"],
                   help="where the score shift / calibration pass reads rankings: ranking columns (a format-4 "
                        "table with them) or records (a table written without them); several: each in turn")
    p.add_argument("--stored", action="store_true",
                   help="compare two stored runs with full records (see the module docstring)")
    p.add_argument("--broken", type=float, default=0.5, help="--stored: the share of cases the candidate breaks")
    p.add_argument("--child", type=int, default=None)
    a = p.parse_args(argv)
    flips = None if a.max_flips < 0 else a.max_flips
    if a.child is not None:
        got = stored_child(a.child, a.resamples, a.test, flips, a.broken) if a.stored else \
            child(a.child, a.resamples, a.test, flips, a.rankings[0])
        print(json.dumps(got))
        return
    for n in a.sizes:
        for source in a.rankings[:1] if a.stored else a.rankings:  # a stored run: its own ranking columns
            out = subprocess.run([sys.executable, "-m", "bench.bench_diff_columns", "--child", str(n), "--resamples",
                                  str(a.resamples), "--test", a.test, "--max-flips", str(a.max_flips),
                                  "--rankings", source, *(["--stored", "--broken", str(a.broken)] if a.stored else [])],
                                 capture_output=True, text=True, check=False)
            print(out.stdout.strip() or out.stderr.strip()[-2000:], flush=True)


if __name__ == "__main__":
    main()
