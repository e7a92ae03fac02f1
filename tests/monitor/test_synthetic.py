"""The synthetic production stream: deterministic, seasonal without drift, and shifted only where told."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scipy import stats

from harness.errors import HarnessError
from harness.monitor import synthetic as syn

SPEC = syn.StreamSpec(seed=11, records_per_day=5000, days=28)
"""2026-11-02 is a Monday: day 4 is a Friday, day 5 a Saturday."""


@pytest.fixture(scope="module")
def base() -> pa.Table:
    t = syn.table(SPEC, truth=True)
    day = pc.utf8_slice_codeunits(t["timestamp"], 0, 10)
    hour = pc.cast(pc.utf8_slice_codeunits(t["timestamp"], 11, 13), pa.int64())
    return t.append_column("day", day).append_column("hour", hour)


def _day(t: pa.Table, index: int) -> pa.Table:
    return t.filter(pc.equal(t["day"], SPEC.day(index).isoformat()))


def _counts(t: pa.Table, column: str, values: list[str]) -> list[int]:
    vc = {r["values"]: r["counts"] for r in pc.value_counts(t[column]).to_pylist()}
    return [int(vc.get(v, 0)) for v in values]


def _mix_p(a: pa.Table, b: pa.Table, column: str, values: list[str]) -> float:
    table = np.array([_counts(a, column, values), _counts(b, column, values)])
    table = table[:, table.sum(axis=0) > 0]
    return float(stats.chi2_contingency(table).pvalue)


def _hours(t: pa.Table) -> list[int]:
    return np.bincount(t["hour"].to_numpy(), minlength=24).tolist()


GEO = ["us", "eu", "apac"]
DEVICE = ["web", "mobile"]
TIER = ["free", "pro", "enterprise"]
TOPICS = [t.name for t in syn.DEFAULT_TOPICS]


def test_same_seed_same_records_other_seed_other_records() -> None:
    spec = syn.StreamSpec(seed=3, records_per_day=300, days=3)
    first = list(syn.records(spec))
    assert first == list(syn.records(spec))
    assert first != list(syn.records(replace(spec, seed=4)))
    assert len({r["id"] for r in first}) == len(first)
    stamps = [r["timestamp"] for r in first]
    assert stamps == sorted(stamps) and all(s.endswith("Z") and len(s) == 24 for s in stamps)
    assert stamps[0].startswith("2026-11-02T") and stamps[-1].startswith("2026-11-04T")
    rec = first[0]
    assert set(rec) == {*syn.RECORD_FIELDS, "geo", "device", "user_tier"}
    assert [d["score"] for d in rec["retrieved"]] == sorted((d["score"] for d in rec["retrieved"]), reverse=True)
    assert rec["latency_s"]["total"] >= rec["latency_s"]["retrieve"] + rec["latency_s"]["generate"]


def test_files_hold_the_same_records(tmp_path: Path) -> None:
    spec = syn.StreamSpec(seed=5, records_per_day=200, days=2,
                          shifts=(syn.Shift("null_rate", 1, field="latency_s", rate=0.5),))
    recs = list(syn.records(spec))
    lines = syn.write_jsonl(spec, tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == recs
    assert pq.read_table(syn.write_parquet(spec, tmp_path / "log.parquet")).to_pylist() == recs
    assert any(r["latency_s"] is None for r in recs)


def test_volume_and_mix_differ_friday_to_saturday(base: pa.Table) -> None:
    fri, sat = _day(base, 4), _day(base, 5)
    assert stats.chisquare([fri.num_rows, sat.num_rows]).pvalue < 1e-6
    assert _mix_p(fri, sat, "geo", GEO) < 1e-6
    assert _mix_p(fri, sat, "device", DEVICE) < 1e-6
    assert _mix_p(fri, sat, "topic", TOPICS) < 1e-6
    # and within a day the hours differ: apac's share at 03:00 vs 15:00
    night = fri.filter(pc.equal(fri["hour"], 3))
    noon = fri.filter(pc.equal(fri["hour"], 15))
    assert _mix_p(night, noon, "geo", GEO) < 1e-6
    share = _counts(night, "geo", GEO)[2] / night.num_rows
    assert share > 2 * _counts(noon, "geo", GEO)[2] / noon.num_rows
    # the hourly cycle: afternoon peak, night trough
    hours = _hours(fri)
    assert max(range(24), key=hours.__getitem__) in range(13, 18)
    assert min(range(24), key=hours.__getitem__) in (*range(0, 7), 23)


def test_week_over_week_aligned_days_are_a_a(base: pa.Table) -> None:
    """Over the 21 pairs (d, d+7) each test's p-values look uniform: few below 0.05, none extreme."""
    pvalues: dict[str, list[float]] = {k: [] for k in ("geo", "device", "tier", "topic", "hours", "latency",
                                                      "score")}
    for d in range(21):
        a, b = _day(base, d), _day(base, d + 7)
        pvalues["geo"].append(_mix_p(a, b, "geo", GEO))
        pvalues["device"].append(_mix_p(a, b, "device", DEVICE))
        pvalues["tier"].append(_mix_p(a, b, "user_tier", TIER))
        pvalues["topic"].append(_mix_p(a, b, "topic", TOPICS))
        pvalues["hours"].append(float(stats.chi2_contingency(np.array([_hours(a), _hours(b)])).pvalue))
        total_a = pc.struct_field(a["latency_s"], "total").to_numpy()
        total_b = pc.struct_field(b["latency_s"], "total").to_numpy()
        pvalues["latency"].append(float(stats.ks_2samp(total_a, total_b).pvalue))
        top_a = pc.list_element(a["retrieved"], 0).combine_chunks().field("score").to_numpy()
        top_b = pc.list_element(b["retrieved"], 0).combine_chunks().field("score").to_numpy()
        pvalues["score"].append(float(stats.ks_2samp(top_a, top_b).pvalue))
    for name, ps in pvalues.items():
        assert np.mean(np.array(ps) < 0.05) <= 0.15, (name, ps)
        assert min(ps) > 1e-4, (name, ps)
    pooled = np.concatenate([np.array(p) for p in pvalues.values()])
    assert 0.35 < pooled.mean() < 0.65
    # the same tests do see day-over-day change: Friday vs Saturday, every week
    for week in range(3):
        a, b = _day(base, 7 * week + 4), _day(base, 7 * week + 5)
        assert _mix_p(a, b, "device", DEVICE) < 1e-6


def test_field_distributions(base: pa.Table) -> None:
    n = base.num_rows
    assert abs(n / 28 - 5000) < 5 * np.sqrt(5000 / 28)
    errors = base["error"].is_valid().to_numpy(zero_copy_only=False)
    timeouts = base["timeout"].to_numpy(zero_copy_only=False)
    assert stats.binomtest(int(errors.sum()), n, 0.01).pvalue > 1e-3
    assert stats.binomtest(int(timeouts.sum()), n, 0.003).pvalue > 1e-3
    assert not (errors & timeouts).any()
    answered = base["answer"].is_valid().to_numpy(zero_copy_only=False)
    assert (answered == ~(errors | timeouts)).all()
    total = pc.struct_field(base["latency_s"], "total").to_numpy()
    assert np.all(total[timeouts] == syn.DEADLINE_S)
    assert 0.8 < np.median(total) < 2.5 and np.quantile(total[~timeouts], 0.95) < 5.0
    top = pc.list_element(base["retrieved"], 0).combine_chunks().field("score").to_numpy()
    topics = base["topic"].to_numpy(zero_copy_only=False)
    means = {t: top[topics == t].mean() for t in TOPICS}
    assert means["privacy"] > means["api"] + 0.05  # retrieval quality depends on the topic
    fridays = pa.concat_tables([_day(base, d) for d in (4, 11, 18, 25)])
    for value, share in syn.expected_share(SPEC, "geo", 4).items():
        k = _counts(fridays, "geo", [value])[0]
        assert stats.binomtest(k, fridays.num_rows, share).pvalue > 1e-3, (value, k / fridays.num_rows, share)
    qs = base["query"].to_pylist()
    assert len(set(qs)) > 3000  # varied questions, repeated as production is


def _shifted(shift: syn.Shift) -> tuple[pa.Table, pa.Table]:
    spec = syn.StreamSpec(seed=11, records_per_day=3000, days=14, shifts=(shift,))
    return syn.table(replace(spec, shifts=()), truth=True), syn.table(spec, truth=True)


def _mask_days_from(t: pa.Table, day: int) -> np.ndarray:
    return pc.greater_equal(pc.utf8_slice_codeunits(t["timestamp"], 0, 10),
                            SPEC.day(day).isoformat()).to_numpy(zero_copy_only=False)


def _eq(t: pa.Table, column: str, value: str) -> np.ndarray:
    return pc.fill_null(pc.equal(t[column], value), False).to_numpy(zero_copy_only=False)


def _same_outside(before: pa.Table, after: pa.Table, scope: np.ndarray) -> None:
    assert before.num_rows == after.num_rows
    keep = pa.array(~scope)
    assert before.filter(keep).equals(after.filter(keep))


def test_topic_shift_from_its_day_in_its_segment() -> None:
    before, after = _shifted(syn.Shift("topic", 7, segment="geo=eu", topic="travel", share=0.3))
    scope = _mask_days_from(before, 7) & _eq(before, "geo", "eu")
    _same_outside(before, after, scope)
    travel = _eq(after, "topic", "travel")
    assert not travel[~scope].any() and not _eq(before, "topic", "travel").any()
    assert stats.binomtest(int(travel[scope].sum()), int(scope.sum()), 0.3).pvalue > 1e-3
    queries = np.array(after["query"].to_pylist(), dtype=object)
    base_queries = set(before["query"].to_pylist())
    assert not any(q in base_queries for q in queries[travel])
    top = pc.list_element(after["retrieved"], 0).combine_chunks().field("score").to_numpy()
    assert top[travel].mean() < top[~travel].mean() - 0.2


def test_segment_mix_shift() -> None:
    shift = syn.Shift("segment_mix", 7, segment="device=mobile", attribute="geo", weights={"apac": 4.0})
    before, after = _shifted(shift)
    scope = _mask_days_from(before, 7) & _eq(before, "device", "mobile")
    _same_outside(before, after, scope)
    apac_before = _eq(before, "geo", "apac")[scope].mean()
    apac_after = _eq(after, "geo", "apac")[scope].mean()
    assert apac_after > apac_before + 0.2
    # week over week aligned: the shifted week's mobile geo mix moved, web's did not
    wk1 = ~_mask_days_from(after, 7)
    wk2 = ~wk1
    mobile = _eq(after, "device", "mobile")
    web = _eq(after, "device", "web")
    assert _mix_p(after.filter(pa.array(wk1 & mobile)), after.filter(pa.array(wk2 & mobile)), "geo", GEO) < 1e-6
    assert _mix_p(after.filter(pa.array(wk1 & web)), after.filter(pa.array(wk2 & web)), "geo", GEO) > 1e-3


def test_null_rate_shift() -> None:
    before, after = _shifted(syn.Shift("null_rate", 7, segment="geo=eu", field="answer", rate=0.5))
    scope = _mask_days_from(before, 7) & _eq(before, "geo", "eu")
    _same_outside(before, after, scope)
    was = before["answer"].is_null().to_numpy(zero_copy_only=False)
    now = after["answer"].is_null().to_numpy(zero_copy_only=False)
    assert (now | ~was).all()  # a null stays null
    newly = now & ~was
    assert not newly[~scope].any()
    assert stats.binomtest(int(newly[scope].sum()), int((scope & ~was).sum()), 0.5).pvalue > 1e-3
    other = after.drop_columns(["answer"]).filter(pa.array(scope))
    assert other.equals(before.drop_columns(["answer"]).filter(pa.array(scope)))


def test_null_rate_shift_on_an_attribute() -> None:
    before, after = _shifted(syn.Shift("null_rate", 3, field="device", rate=0.2))
    scope = _mask_days_from(before, 3)
    _same_outside(before, after, scope)
    nulls = after["device"].is_null().to_numpy(zero_copy_only=False)
    assert not nulls[~scope].any()
    assert stats.binomtest(int(nulls[scope].sum()), int(scope.sum()), 0.2).pvalue > 1e-3


def test_latency_tail_shift() -> None:
    before, after = _shifted(syn.Shift("latency_tail", 7, segment="geo=eu", share=0.1, scale=5.0))
    scope = _mask_days_from(before, 7) & _eq(before, "geo", "eu")
    _same_outside(before, after, scope)
    timeouts = before["timeout"].to_numpy(zero_copy_only=False)
    gen_b = pc.struct_field(before["latency_s"], "generate").to_numpy()
    gen_a = pc.struct_field(after["latency_s"], "generate").to_numpy()
    live = scope & ~timeouts
    ratio = gen_a[live] / gen_b[live]
    tail = np.abs(ratio - 5.0) < 0.01
    assert np.all(tail | (np.abs(ratio - 1.0) < 1e-3))
    assert stats.binomtest(int(tail.sum()), int(live.sum()), 0.1).pvalue > 1e-3
    tot_b = pc.struct_field(before["latency_s"], "total").to_numpy()
    tot_a = pc.struct_field(after["latency_s"], "total").to_numpy()
    np.testing.assert_allclose((tot_a - tot_b)[live], (gen_a - gen_b)[live], atol=2e-4)
    assert np.quantile(tot_a[scope], 0.95) > np.quantile(tot_b[scope], 0.95) + 2.0


def test_shift_end_day_and_bad_shifts() -> None:
    _, after = _shifted(syn.Shift("null_rate", 2, end_day=4, field="query", rate=1.0))
    nulls = after["query"].is_null().to_numpy(zero_copy_only=False)
    in_window = _mask_days_from(after, 2) & ~_mask_days_from(after, 4)
    assert (nulls == in_window).all()
    with pytest.raises(HarnessError, match="kind"):
        syn.Shift("volume", 1)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="attribute=value"):
        syn.Shift("topic", 1, segment="eu", topic="travel")
    with pytest.raises(HarnessError, match="segment"):
        syn.Shift("segment_mix", 1, segment="geo=eu", attribute="geo", weights={"eu": 2.0})
    with pytest.raises(HarnessError, match="'geo=mars'"):
        syn.table(syn.StreamSpec(days=1, records_per_day=10,
                                 shifts=(syn.Shift("topic", 0, segment="geo=mars", topic="travel"),)))
    with pytest.raises(HarnessError, match="'sports'"):
        syn.table(syn.StreamSpec(days=1, records_per_day=10, shifts=(syn.Shift("topic", 0, topic="sports"),)))
    with pytest.raises(HarnessError, match="'timestamp'"):
        syn.table(syn.StreamSpec(days=1, records_per_day=10, shifts=(syn.Shift("null_rate", 0, field="timestamp"),)))


def test_golden_cases_and_corpus_are_consistent() -> None:
    from harness.golden import validate_record

    docs = syn.corpus(SPEC)
    cases = syn.golden_cases(SPEC, n_per_topic=8)
    ids = {d["id"] for d in docs}
    assert len(ids) == len(docs) == sum(len(t.intents) + len(t.documents) for t in syn.DEFAULT_TOPICS)
    for i, d in enumerate(docs):
        validate_record("corpus.jsonl", i + 1, d, "corpus_doc.schema.json", "corpus document")
    assert len(cases) == 8 * len(TOPICS) and len({c["id"] for c in cases}) == len(cases)
    for i, c in enumerate(cases):
        validate_record("cases.jsonl", i + 1, c, "golden_case.schema.json", "golden case")
        assert c["relevance"] and set(c["relevance"]) <= ids
        assert next(iter(c["relevance"])) == f"{c['tags']['topic']}-{c['tags']['intent']}"
    assert {c["tags"]["topic"] for c in cases} == set(TOPICS)
    per_intent = {(c["tags"]["topic"], c["tags"]["intent"]) for c in cases}
    assert len(per_intent) == sum(len(t.intents) for t in syn.DEFAULT_TOPICS)  # 8 per topic: every intent
    # the stream's top-1 document for a query of an intent is mostly that intent's document
    recs = list(syn.records(syn.StreamSpec(seed=11, records_per_day=500, days=1)))
    hits = [r["retrieved"][0]["doc_id"] in {d["id"] for d in docs} for r in recs]
    assert all(hits)


def test_write_project_loads_with_its_monitor_table(tmp_path: Path) -> None:
    from harness.golden import load_corpus, load_golden
    from harness.manifest import load_manifest, require_verified

    path = syn.write_project(SPEC, tmp_path / "proj")
    loaded = load_manifest(path)
    require_verified(loaded)
    monitor = loaded.manifest.monitor
    assert monitor is not None
    assert monitor.segments == ("geo", "device")
    assert monitor.slo.latency_s == {"total": {"p95": 5.0}}
    assert monitor.slo.error_rate == 0.03 and monitor.slo.min_records == 1000
    docs = load_corpus(loaded.resolve("corpus"))
    cases = load_golden(loaded.resolve("golden"), {d.id for d in docs})
    assert len(cases) == 12 * len(TOPICS)
    with pytest.raises(HarnessError, match="already exists"):
        syn.write_project(SPEC, tmp_path / "proj")
