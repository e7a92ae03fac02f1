"""The columnar diff and gate (harness.diff.compare / harness.gates.gate on RunColumns) give exactly what
the record-based ones gave (tests/diff/record_oracle: the diff and gate as they read RunResult records
case by case), on random small runs: every Diff and Verdict field, the flips' causes, the score shift and
the calibration, the segments and the implicit error rule."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.columns import RunColumns
from harness.diff import DiffSettings, compare
from harness.gates import evaluate_gates, gate
from harness.types import (
    Aggregates,
    CaseError,
    CaseOutput,
    GateRule,
    GoldenCase,
    Manifest,
    MetricsConfig,
    MetricSummary,
    RankedDoc,
    RunResult,
    Score,
)
from tests.diff.record_oracle.oracle_compute import compare as oracle_compare
from tests.diff.record_oracle.oracle_gates import gate as oracle_gate

IDS = [f"q{i}" for i in range(9)]
DOCS = [f"d{i}" for i in range(6)]
METRICS = ("ndcg", "recall", "fail:x", "extra")
VALUES = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.3333333333333333, 0.1])
RULES = (
    GateRule(metric="ndcg", max_drop=0.05, require_significant=False),
    GateRule(metric="ndcg", max_drop=0.01),
    GateRule(metric="recall", min=0.4, max=0.9, segment="t=*", min_segment_size=2, max_skipped=0),
    GateRule(metric="recall", max_abs_drop=0.0, segment="u=x"),
    GateRule(metric="fail:x", max_rate=0.2),
    GateRule(metric="fail:x", max_rate=0.5, wilson=False, segment="t=a"),
    GateRule(metric="ndcg", max_rate=0.5),
    GateRule(metric="missing", min=0.1),
    GateRule(metric="unscored_rate", max=0.3, segment="t=b"),
    GateRule(metric="unscored_rate", max_rate=0.5),
    GateRule(metric="latency", stage="retrieve", max_seconds=0.5, quantile=0.9),
    GateRule(metric="latency", stage="generate", max_seconds=0.5, segment="t=*"),
)
ERROR_RULE = GateRule(metric="error_rate", max_rate=0.3)


@st.composite
def runs(draw: st.DrawFn, run_id: str) -> RunResult:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=len(IDS)))
    cases, outputs, scores = [], [], []
    for cid in ids:
        tags = {}
        if draw(st.booleans()):
            tags["t"] = draw(st.sampled_from(["a", "b", "c"]))
        if draw(st.integers(0, 3)) == 0:
            tags["u"] = "x"
        relevance = draw(st.dictionaries(st.sampled_from(DOCS), st.integers(0, 2), max_size=3))
        if draw(st.integers(0, 4)):  # now and then a case without its golden record
            cases.append(GoldenCase(id=cid, query=f"query {cid}", relevance=relevance, tags=tags))
        ranking = tuple(RankedDoc(doc_id=d, score=draw(st.sampled_from([0.9, 0.5, 0.2, 0.7, 0.1])))
                        for d in draw(st.lists(st.sampled_from(DOCS), unique=True, max_size=5)))
        error = None
        if draw(st.integers(0, 5)) == 0:
            error = CaseError(stage=draw(st.sampled_from(["retrieve", "generate"])),
                              kind=draw(st.sampled_from(["timeout", "server_error"])), message=f"boom {cid}")
        latency = {s: draw(st.sampled_from([0.1, 0.4, 0.9])) for s in ("retrieve", "generate") if draw(st.booleans())}
        hits = {s: draw(st.booleans()) for s in latency if draw(st.booleans())}
        outputs.append(CaseOutput(case_id=cid, ranking=ranking, ranking_scored=draw(st.integers(0, 5)) > 0,
                                  answer=draw(st.sampled_from([None, "yes", "no"])), error=error, latency_s=latency,
                                  cache_hits=hits))
        for m in METRICS:
            kind = draw(st.integers(0, 6))
            if kind == 0:
                continue  # absent
            value = None if kind == 1 else (draw(st.sampled_from([0.0, 1.0])) if m == "fail:x" else draw(VALUES))
            scores.append(Score(case_id=cid, metric=m, value=value))
    draw(st.randoms()).shuffle(scores)
    overall = {
        "ndcg": MetricSummary(mean=0.5, n=1, n_unscored=0),
        "recall": MetricSummary(mean=0.5, n=1, n_unscored=0, greater_is_better=draw(st.booleans())),
        "fail:x": MetricSummary(mean=0.1, n=1, n_unscored=0, greater_is_better=False, role="diagnostic",
                                label=draw(st.sampled_from([None, "x fails"]))),
    }
    if draw(st.booleans()):
        del overall["recall"]
    manifest = Manifest(name="m", artifacts={}, metrics=MetricsConfig(relevance_level=draw(st.integers(1, 2))))
    return RunResult(run_id=run_id, created_at="", manifest_id=f"m-{run_id}", manifest=manifest, cases=tuple(cases),
                     outputs=tuple(outputs), scores=tuple(scores), aggregates=Aggregates(overall=overall))


DIFF_SETTINGS = st.builds(
    DiffSettings, n_resamples=st.sampled_from([20, 64]), seed=st.integers(0, 3), k=st.integers(1, 4),
    test=st.sampled_from(["permutation", "wilcoxon", "bootstrap"]), correction=st.sampled_from(["holm", "bh", "none"]),
    flip_threshold=st.sampled_from([0.1, 0.3]),
)


def dump(x: Any) -> str:
    return json.dumps(x.model_dump(mode="json"), sort_keys=True)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs("base"), runs("head"), DIFF_SETTINGS)
def test_columnar_diff_equals_the_record_diff(base: RunResult, head: RunResult, ds: DiffSettings) -> None:
    expected = oracle_compare(base, head, ds)
    from_records = compare(base, head, ds)
    from_columns = compare(RunColumns.from_result(base), RunColumns.from_result(head), ds)
    assert dump(from_records) == dump(expected)
    assert dump(from_columns) == dump(expected)
    for d in (from_records, from_columns):  # the typed records too, beyond their JSON
        assert d.metrics == expected.metrics and d.segments == expected.segments and d.flips == expected.flips
        assert d.score_shift == expected.score_shift and d.calibration == expected.calibration
        assert d.flips_total == len(expected.flips)
    top = compare(base, head, ds, max_flips=2)
    assert top.flips == expected.flips[:2] and top.flips_total == len(expected.flips)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs("base"), runs("head"), st.booleans(), st.booleans())
def test_columnar_gate_equals_the_record_gate(base: RunResult, head: RunResult, with_base: bool,
                                              error_rule: bool) -> None:
    rules = (*RULES, ERROR_RULE) if error_rule else RULES
    ds = DiffSettings(n_resamples=32)
    b = base if with_base else None
    expected = oracle_gate(rules, head, b, settings=ds, allow_no_baseline=error_rule)
    for h, bb in ((head, b), (RunColumns.from_result(head), None if b is None else RunColumns.from_result(b))):
        got = gate(rules, h, bb, settings=ds, allow_no_baseline=error_rule)
        assert got.results == expected.results
        assert dump(got) == dump(expected)
        assert (got.diff is None) == (expected.diff is None)
        if got.diff is not None and expected.diff is not None:
            assert dump(got.diff) == dump(expected.diff)
    again = evaluate_gates(rules, RunColumns.from_result(head), expected.diff, base=b, allow_no_baseline=error_rule)
    assert again.results == expected.results


def _fetchless(run: RunResult) -> RunColumns:
    """Columns whose records come only through ``fetch`` (no ``batches``), as a store's take would serve them."""
    cols = RunColumns.from_result(run)
    from dataclasses import replace

    return replace(cols, batches=None)


def test_fetch_only_columns_give_the_same_diff() -> None:
    rng = np.random.default_rng(4)
    ids = [f"c{i:03d}" for i in range(60)]

    def run(run_id: str, shift: float) -> RunResult:
        cases = [GoldenCase(id=c, query=c, relevance={"d1": 1, "d2": 2}, tags={"t": "ab"[i % 2]})
                 for i, c in enumerate(ids)]
        outputs = [CaseOutput(case_id=c, ranking=tuple(RankedDoc(doc_id=f"d{j}", score=float(rng.random()))
                                                       for j in rng.permutation(5)[:3])) for c in ids]
        scores = [Score(case_id=c, metric="ndcg", value=float(np.clip(rng.random() - shift, 0, 1))) for c in ids]
        return RunResult(run_id=run_id, created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                         cases=tuple(cases), outputs=tuple(outputs[::-1] if shift else outputs), scores=tuple(scores),
                         aggregates=Aggregates(overall={"ndcg": MetricSummary(mean=0.5, n=60, n_unscored=0)}))

    base, head = run("b", 0.0), run("h", 0.2)
    expected = oracle_compare(base, head, DiffSettings(n_resamples=100, k=2))
    got = compare(_fetchless(base), _fetchless(head), DiffSettings(n_resamples=100, k=2))
    assert dump(got) == dump(expected) and expected.flips and expected.calibration is not None


def test_from_result_columns() -> None:
    """What from_result puts in each column, against the run's own records."""
    case = GoldenCase(id="a", query="q", tags={"t": "x"})
    run = RunResult(
        run_id="r", created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}), cases=(case,),
        outputs=(CaseOutput(case_id="a", latency_s={"retrieve": 0.5}, cache_hits={"retrieve": True}),
                 CaseOutput(case_id="b", error=CaseError(stage="generate", kind="timeout", message="late"))),
        scores=(Score(case_id="a", metric="m1", value=0.5), Score(case_id="b", metric="m1", value=None)),
        aggregates=Aggregates(overall={}),
    )
    cols = RunColumns.from_result(run)
    assert len(cols) == 2 and cols.case_ids.to_pylist() == ["a", "b"]
    np.testing.assert_array_equal(cols.values["m1"], [0.5, np.nan])
    np.testing.assert_array_equal(cols.unscored["m1"], [False, True])
    assert cols.tags["t"].to_pylist() == ["x", None] and cols.error_kind.to_pylist() == [None, "timeout"]
    assert cols.error_stage.to_pylist() == [None, "generate"]
    np.testing.assert_array_equal(cols.latency["retrieve"], [0.5, np.nan])
    np.testing.assert_array_equal(cols.extra["cache_hits"]["retrieve"], [True, False])
    np.testing.assert_array_equal(cols.extra["no_case"], [False, True])
    np.testing.assert_array_equal(cols.segment_mask("t=x"), [True, False])
    assert cols.fetch is not None and cols.fetch(["b", "zz"])[1][0].case_id == "b"
    assert [o.case_id for _, _, outs, _ in cols.records() for o in outs] == ["a", "b"]
    assert isinstance(cols.case_ids, pa.Array)


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_runs(n: int) -> None:
    ids = IDS[:n]
    run = RunResult(run_id="r", created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                    cases=tuple(GoldenCase(id=c, query=c) for c in ids),
                    outputs=tuple(CaseOutput(case_id=c) for c in ids),
                    scores=tuple(Score(case_id=c, metric="ndcg", value=1.0) for c in ids),
                    aggregates=Aggregates(overall={"ndcg": MetricSummary(mean=1.0, n=n, n_unscored=0)}))
    assert dump(compare(run, run)) == dump(oracle_compare(run, run))
    assert gate(RULES, run, run).results == oracle_gate(RULES, run, run).results
