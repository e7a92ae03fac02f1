"""The score shift and the calibration read a run's rankings from its ranking columns (RANKING_SCHEMA:
stored in a format-4 table, or made by RunColumns.from_result) and give exactly what the record pass
gives (the same run's records, decoded one by one), duplicate doc ids in a ranking, cases without
golden records, unjudged docs and negative grades included. A table written before those columns existed
(and before cache_hit:<stage>) still diffs and gates the same, from its records."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness.baseline import read_columns
from harness.columns import RANKING_COLUMNS, RunColumns
from harness.diff import DiffSettings, compare
from harness.diff.shift import Rankings, rankings
from harness.errors import InputError
from harness.gates import gate
from harness.runs import RunStore, load_run, new_run_id, open_run
from harness.types import (
    Aggregates,
    CaseOutput,
    GoldenCase,
    Manifest,
    MetricSummary,
    RankedDoc,
    RunResult,
    Score,
)
from tests.diff.record_oracle.oracle_compute import compare as oracle_compare
from tests.diff.record_oracle.oracle_gates import gate as oracle_gate
from tests.diff.test_diff_columns import RULES, dump, runs
from tests.diff.test_diff_store_columns import stored_run

DOCS = [f"d{i}" for i in range(5)]


@st.composite
def ranked_runs(draw: st.DrawFn, run_id: str) -> RunResult:
    """Runs whose rankings may repeat a doc id, with grades -1..3 and cases lacking their golden record."""
    ids = draw(st.lists(st.sampled_from([f"q{i}" for i in range(12)]), unique=True, min_size=1, max_size=12))
    cases, outputs = [], []
    for cid in ids:
        if draw(st.integers(0, 4)):
            cases.append(GoldenCase(id=cid, query=cid, relevance=draw(
                st.dictionaries(st.sampled_from(DOCS), st.integers(-1, 3), max_size=4))))
        ranking = tuple(RankedDoc(doc_id=d, score=draw(st.sampled_from([0.9, 0.5, 0.2, -0.3, 1e-9])))
                        for d in draw(st.lists(st.sampled_from(DOCS), max_size=7)))
        outputs.append(CaseOutput(case_id=cid, ranking=ranking, ranking_scored=draw(st.integers(0, 4)) > 0))
    scores = [Score(case_id=c, metric="ndcg", value=draw(st.sampled_from([0.0, 0.5, 1.0]))) for c in ids]
    return RunResult(run_id=run_id, created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                     cases=tuple(cases), outputs=tuple(outputs), scores=tuple(scores),
                     aggregates=Aggregates(overall={"ndcg": MetricSummary(mean=0.5, n=len(ids), n_unscored=0)}))


def _same(a: Rankings, b: Rankings) -> None:
    for name in ("scored", "has_top", "judged", "missing"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert np.array_equal(a.top1, b.top1, equal_nan=True)
    assert a.top_scores.to_pylist() == b.top_scores.to_pylist()
    assert a.top_relevant.to_pylist() == b.top_relevant.to_pylist()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ranked_runs("r"), st.integers(1, 8), st.integers(-1, 3), st.data())
def test_rankings_from_columns_equal_the_record_pass(run: RunResult, k: int, level: int, data: st.DataObject) -> None:
    cols = RunColumns.from_result(run, batch_rows=data.draw(st.integers(1, 5)))
    n = len(cols)
    rows = np.array(data.draw(st.permutations(range(n)))[: data.draw(st.integers(0, n))], dtype=np.int64)
    from_records = rankings(replace(cols, ranking_batches=None), rows, k, level)
    _same(rankings(cols, rows, k, level), from_records)
    with tempfile.TemporaryDirectory() as tmp:  # the stored table's columns, against its decoded records
        stored = open_run(stored_run(Path(tmp), run)).columns()
        assert stored.ranking_batches is not None
        _same(rankings(stored, rows, k, level), rankings(replace(stored, ranking_batches=None), rows, k, level))


def _strip(header: Path) -> None:
    """Rewrite a stored run's table without the ranking and cache-hit columns, as written before they
    existed (the header's sha256 updated to match)."""
    table = header.with_suffix(".parquet")
    t = pq.read_table(table)
    keep = [c for c in t.column_names if c not in RANKING_COLUMNS and not c.startswith("cache_hit:")]
    pq.write_table(t.select(keep), table, compression="zstd")
    head = json.loads(header.read_text())
    head["table_sha256"] = hashlib.sha256(table.read_bytes()).hexdigest()
    header.write_text(json.dumps(head, indent=1))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.generate])
@given(runs("base"), runs("head"))
def test_a_table_without_the_new_columns_diffs_and_gates_from_its_records(base: RunResult, head: RunResult) -> None:
    ds = DiffSettings(n_resamples=32, k=3)
    with tempfile.TemporaryDirectory() as tmp:
        pb, ph = stored_run(Path(tmp), base), stored_run(Path(tmp), head)
        lb, lh = load_run(pb), load_run(ph)
        expected_diff, expected_gate = oracle_compare(lb, lh, ds), oracle_gate(RULES, lh, lb, settings=ds)
        new_b, new_h = read_columns(pb, None), read_columns(ph, None)
        assert isinstance(new_b, RunColumns) and isinstance(new_h, RunColumns)
        assert new_b.ranking_batches is not None and set(new_h.extra.get("cache_hits", {})) == set(new_h.latency)
        assert dump(compare(new_b, new_h, ds)) == dump(expected_diff)
        assert gate(RULES, new_h, new_b, settings=ds).results == expected_gate.results
        for p in (pb, ph):
            _strip(p)
        cb, ch = read_columns(pb, None), read_columns(ph, None)
        assert isinstance(cb, RunColumns) and isinstance(ch, RunColumns)
        assert cb.ranking_batches is None and "cache_hits" not in ch.extra
        assert dump(compare(cb, ch, ds)) == dump(expected_diff)
        assert gate(RULES, ch, cb, settings=ds).results == expected_gate.results


def test_cache_hit_columns_hold_the_outputs_cache_hits(tmp_path: Path) -> None:
    outputs = (CaseOutput(case_id="a", latency_s={"retrieve": 0.1, "generate": 0.2}, cache_hits={"retrieve": True}),
               CaseOutput(case_id="b", latency_s={"retrieve": 0.3}, cache_hits={"generate": True, "judge": True}),
               CaseOutput(case_id="c"))
    run = RunResult(run_id=new_run_id(), created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                    cases=tuple(GoldenCase(id=o.case_id, query="q") for o in outputs), outputs=outputs,
                    scores=(), aggregates=Aggregates(overall={}))
    table = open_run(RunStore(tmp_path).save(run))
    hits = table.columns(latency=True).extra["cache_hits"]
    assert sorted(hits) == ["generate", "retrieve"]  # judge has no latency: it stays in the outputs' JSON
    assert hits["retrieve"].tolist() == [True, False, False] and hits["generate"].tolist() == [False, True, False]
    assert "cache_hits" not in table.columns(latency=False).extra
    assert table.materialize() == run


def test_a_non_finite_ranking_score_in_the_table_is_a_damaged_run(tmp_path: Path) -> None:
    run = RunResult(run_id=new_run_id(), created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                    cases=(GoldenCase(id="a", query="q"), GoldenCase(id="b", query="q")),
                    outputs=(CaseOutput(case_id="a", ranking=(RankedDoc(doc_id="d", score=0.5),)),
                             CaseOutput(case_id="b", ranking=(RankedDoc(doc_id="d", score=0.5),
                                                              RankedDoc(doc_id="e", score=0.25)))),
                    scores=(), aggregates=Aggregates(overall={}))
    header = RunStore(tmp_path).save(run)
    table = header.with_suffix(".parquet")
    t = pq.read_table(table)
    import pyarrow as pa

    bad = pa.array([[0.5], [0.5, float("nan")]], pa.list_(pa.float64()))
    t = t.set_column(t.column_names.index("rank_scores"), t.schema.field("rank_scores"), bad)
    pq.write_table(t, table)
    head = json.loads(header.read_text())
    head["table_sha256"] = hashlib.sha256(table.read_bytes()).hexdigest()
    header.write_text(json.dumps(head, indent=1))
    cols = open_run(header).columns()
    assert cols.ranking_batches is not None
    with pytest.raises(InputError, match=r"rank_scores\[1\]"):
        list(cols.ranking_batches())
