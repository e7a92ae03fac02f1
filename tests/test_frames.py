"""harness.frames: runs and diffs as Arrow tables and pandas DataFrames, checked value by value against the
typed records they convert (RunResult, Diff), unscored values null / NaN, never 0."""

from __future__ import annotations

import math
import sys

import pandas as pd
import pyarrow as pa
import pytest

import harness
from harness.errors import HarnessError, MissingDependencyError
from harness.types import CaseError, RunResult, Score


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    """Two runs of the tiny generation project: the generator shown 3 passages (base) and 1 (head)."""
    from harness.manifest import lock
    from tests.conftest import add_generation, make_project

    root = tmp_path_factory.mktemp("frames")
    make_project(root, lock=False)
    manifest = add_generation(root)
    base = harness.run(manifest).run
    manifest.write_text(manifest.read_text().replace("n_passages = 3", "n_passages = 1"))
    lock(manifest)
    return base, harness.run(manifest).run


def _same(a: object, b: object) -> bool:
    """Equal, where a missing value (None, NaN, pandas' NA) equals only another missing value."""
    missing_a, missing_b = (v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA for v in (a, b))
    return missing_a and missing_b if missing_a or missing_b else a == b


def test_case_table_has_one_row_per_case_with_every_value_of_the_run(runs: tuple[RunResult, RunResult]) -> None:
    run = runs[0]
    table = harness.cases_table(run)
    assert isinstance(table, pa.Table) and table.num_rows == len(run.outputs)
    rows = table.to_pylist()
    assert [r["case_id"] for r in rows] == [o.case_id for o in run.outputs]
    tags = sorted({t for c in run.cases for t in c.tags})
    metrics = list(run.aggregates.overall)
    assert table.column_names == [
        "case_id", "query", *(f"tag:{t}" for t in tags), *metrics, "answer", "retrieved",
        "error_stage", "error_kind", "error_message", "latency_s:retrieve", "latency_s:generate"]
    cases = {c.id: c for c in run.cases}
    scores = run.case_scores()
    unscored = 0
    for row, out in zip(rows, run.outputs, strict=True):
        case = cases[out.case_id]
        assert row["query"] == case.query
        assert {t: row[f"tag:{t}"] for t in case.tags} == case.tags
        for m in metrics:
            assert row[m] == scores[out.case_id].get(m), (out.case_id, m)
            unscored += m in scores[out.case_id] and row[m] is None
        assert row["answer"] == out.answer and row["retrieved"] == [d.doc_id for d in out.ranking]
        assert row["latency_s:generate"] == out.latency_s["generate"]
        assert row["error_stage"] is row["error_kind"] is row["error_message"] is None
    # unscored values are nulls, as many as the aggregates count (a metric that does not apply to a case,
    # a validator of another contract, is null too)
    assert unscored == sum(s.n_unscored for s in run.aggregates.overall.values()) > 0
    assert table.schema.field("ndcg@10").type == pa.float64()


def test_case_frame_is_the_table_in_pandas_with_nan_for_unscored(runs: tuple[RunResult, RunResult]) -> None:
    run = runs[0]
    frame = harness.cases_frame(run)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == harness.cases_table(run).column_names
    assert frame["ndcg@10"].dtype == "float64" and frame["recall@5"].dtype == "float64"
    q4 = frame.set_index("case_id").loc["q4"]  # no relevance judgments: retrieval metrics unscored
    assert math.isnan(q4["ndcg@10"]) and q4["tag:topic"] == "misc"
    # a notebook's first question: the mean of a column is the run's aggregate (NaN left out, not 0)
    assert frame["ndcg@10"].mean() == pytest.approx(run.aggregates.overall["ndcg@10"].mean)
    by_topic = frame.groupby("tag:topic")["ndcg@10"].mean()
    assert by_topic["storage"] == pytest.approx(run.aggregates.segments["topic=storage"]["ndcg@10"].mean)


def test_case_errors_are_columns_and_a_clashing_metric_name_is_refused(runs: tuple[RunResult, RunResult]) -> None:
    run = runs[0]
    failed = run.outputs[1].model_copy(update={
        "answer": None, "error": CaseError(stage="generate", kind="timeout", message="no reply in 30 s")})
    errored = run.model_copy(update={"outputs": (run.outputs[0], failed, *run.outputs[2:])})
    row = harness.cases_table(errored).to_pylist()[1]
    assert (row["error_stage"], row["error_kind"], row["error_message"], row["answer"]) == (
        "generate", "timeout", "no reply in 30 s", None)

    clash = run.model_copy(update={"scores": (*run.scores, Score(case_id="q1", metric="answer", value=1.0))})
    with pytest.raises(HarnessError, match="metric 'answer' has the name of another column"):
        harness.cases_table(clash)


def test_metric_table_holds_every_summary_overall_then_per_segment(runs: tuple[RunResult, RunResult]) -> None:
    run = runs[0]
    agg = run.aggregates
    rows = harness.metrics_table(run).to_pylist()
    expected = [("all", m, s) for m, s in agg.overall.items()]
    expected += [(seg, m, s) for seg, ms in agg.segments.items() for m, s in ms.items()]
    assert [(r["segment"], r["metric"]) for r in rows] == [(seg, m) for seg, m, _ in expected]
    for r, (_, _, s) in zip(rows, expected, strict=True):
        assert (r["mean"], r["n"], r["n_unscored"], r["greater_is_better"], r["role"], r["label"]) == (
            s.mean, s.n, s.n_unscored, s.greater_is_better, s.role, s.label)
    frame = harness.metrics_frame(run)
    assert frame["n"].dtype == "int64" and frame["greater_is_better"].dtype == "bool"
    diag = frame[frame["role"] == "diagnostic"]
    assert set(diag["metric"]) == {m for m, s in agg.overall.items() if s.role == "diagnostic"} != set()


def test_delta_table_is_the_published_diff_layout(runs: tuple[RunResult, RunResult]) -> None:
    diff = harness.compare(*runs)
    table = harness.deltas_table(diff)
    published = [d.model_dump(mode="json") for d in (*diff.metrics, *diff.segments)]
    assert table.column_names == list(published[0])  # the columns of `harness diff --json`, in its order
    rows = table.to_pylist()
    assert len(rows) == len(published) and all(
        _same(r[k], p[k]) for r, p in zip(rows, published, strict=True) for k in p)
    moved = diff.metric("answer_f1")
    assert moved is not None and moved.delta
    frame = harness.deltas_frame(diff)
    got = frame[(frame["metric"] == "answer_f1") & (frame["segment"] == "all")].iloc[0]
    assert (got["delta"], got["ci_low"], got["ci_high"], got["p_value"], bool(got["significant"])) == pytest.approx(
        (moved.delta, moved.ci_low, moved.ci_high, moved.p_value, moved.significant))
    assert frame["p_adjusted"].dtype == "float64" and frame["significant"].dtype == "bool"


def test_flip_table_has_a_row_per_flipped_case_and_moved_metric(runs: tuple[RunResult, RunResult]) -> None:
    diff = harness.compare(*runs)
    assert diff.flips, "the tiny project's passage change must flip a case"
    rows = harness.flips_table(diff).to_pylist()
    expected = [(f, m, b, h) for f in diff.flips for m, (b, h) in f.deltas.items()]
    assert len(rows) == len(expected)
    for r, (f, m, b, h) in zip(rows, expected, strict=True):
        assert (r["case_id"], r["direction"], r["impact"], r["metric"], r["base"], r["head"]) == (
            f.case_id, f.direction, f.impact, m, b, h)
        assert b is not None and h is not None  # a flip is a move between two scored values
        assert r["delta"] == pytest.approx(h - b) and r["causes"] == list(f.causes) and r["query"] == f.query
    frame = harness.flips_frame(diff)
    assert list(frame["case_id"]) == [r["case_id"] for r in rows]
    # no flips: an empty table that keeps its columns and types
    same = harness.compare(runs[0], runs[0])
    empty = harness.flips_table(same)
    assert same.flips == () and empty.num_rows == 0 and empty.schema == harness.flips_table(diff).schema


def test_frames_without_pandas_name_the_extra_and_tables_still_work(
        runs: tuple[RunResult, RunResult], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'rag-harness\[pandas\]'"):
        harness.cases_frame(runs[0])
    with pytest.raises(MissingDependencyError):
        harness.deltas_frame(harness.compare(*runs))
    assert harness.cases_table(runs[0]).num_rows == len(runs[0].outputs)
