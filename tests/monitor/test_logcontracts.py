from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as sps

from harness.monitor.logcontracts import check_log, duplicate_count, null_rate_test
from harness.monitor.model import ContractFinding
from harness.monitor.schema import LOG_SCHEMA
from harness.types import LogContract

T0 = dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC)
NO_LIMITS = LogContract()


def _record(i: int, fields: dict[str, str] | None = None, **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "record_id": f"r{i}", "ts": T0 + dt.timedelta(seconds=i), "query": f"q{i}", "answer": f"a{i}",
        "latency": {"total": 0.5}, "error": None, "timeout": False, "source": f"log.jsonl:{i + 1}",
        "ingested_at": T0 + dt.timedelta(seconds=i + 60), "attrs": {"geo": "eu"},
        "fields": {"query": "string", "geo": "string"} if fields is None else fields}
    rec.update(over)
    return rec


def _table(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=LOG_SCHEMA)


def _by(findings: list[ContractFinding], check: str) -> dict[str, ContractFinding]:
    return {f.field: f for f in findings if f.check == check}


# --- null rates --------------------------------------------------------------------------------------------


def test_null_rate_counts_present_null_and_absent_over_all_records() -> None:
    records = [_record(i, {"query": "string", "geo": "string", "device": "string"}) for i in range(10)]
    records[0]["fields"] = {"query": "string", "geo": "null", "device": "string"}
    records[1]["fields"] = {"query": "string", "geo": "null", "device": "null"}
    records[2]["fields"] = {"query": "string"}  # geo and device absent
    records[3]["fields"] = None  # no fields at all: every field absent
    contract = LogContract(max_null_rate={"geo": 0.35, "*": 0.25, "user": 0.5})
    findings, tests = check_log(_table(records), contract, window="2026-11-24")
    nulls = _by(findings, "null_rate")
    assert set(nulls) == {"query", "geo", "device", "user"}
    assert nulls["geo"].observed == pytest.approx(4 / 10) and nulls["geo"].threshold == 0.35  # own limit wins
    assert nulls["geo"].status == "fail" and "2 null and 2 absent of 10 records" in nulls["geo"].detail
    assert nulls["device"].observed == pytest.approx(3 / 10) and nulls["device"].status == "fail"
    assert nulls["query"].observed == pytest.approx(1 / 10) and nulls["query"].status == "pass"
    assert nulls["user"].observed == 1.0 and nulls["user"].status == "fail"  # named, never logged: fails
    assert tests == []  # no reference window: no change tests


def test_star_covers_fields_seen_only_in_the_reference() -> None:
    ref = _table([_record(i, {"query": "string", "geo": "string"}) for i in range(50)])
    cur = _table([_record(i, {"query": "string"}) for i in range(50)])
    findings, _ = check_log(cur, LogContract(max_null_rate={"*": 0.1}), window="d2", reference=ref,
                            reference_window="d1")
    assert _by(findings, "null_rate")["geo"].status == "fail"


def test_no_limits_no_findings_and_an_empty_window_is_not_judged() -> None:
    findings, _ = check_log(_table([_record(i) for i in range(5)]), NO_LIMITS, window="w")
    assert findings == []
    contract = LogContract(max_null_rate={"geo": 0.1}, max_duplicate_rate=0.1, max_freshness_s=60)
    findings, _ = check_log(_table([]), contract, window="w")
    assert [f.status for f in findings] == ["not_judged"] * 3
    assert {f.check for f in findings} == {"null_rate", "duplicates", "freshness"}


# --- duplicates ---------------------------------------------------------------------------------------------


def test_duplicates_by_id_and_by_content() -> None:
    base = [_record(i) for i in range(10)]
    same_content = dict(base[0], record_id="other-id", source="log.jsonl:99")  # identical content, new id
    same_id = _record(50, record_id="r1")  # repeated id, different content
    reordered = dict(base[2], record_id="x2", attrs={"b": "2", "a": "1"})
    reordered_twin = dict(base[2], record_id="y2", attrs={"a": "1", "b": "2"})  # same pairs, other key order
    other_value = dict(base[2], record_id="z2", attrs={"a": "1", "b": "3"})  # differs: not a duplicate
    null_answer = dict(base[3], record_id="n3", answer=None)  # answer null vs "a3": not a duplicate
    later = dict(base[4], record_id="t4", ts=base[4]["ts"] + dt.timedelta(microseconds=1))  # other ts
    table = _table([*base, same_content, same_id, reordered, reordered_twin, other_value, null_answer, later])
    dups, by_id, by_content = duplicate_count(table)
    assert (dups, by_id, by_content) == (3, 1, 2)
    n = table.num_rows
    findings, _ = check_log(table, LogContract(max_duplicate_rate=0.1), window="w")
    (f,) = findings
    assert f.check == "duplicates" and f.observed == pytest.approx(3 / n) and f.status == "fail"
    findings, _ = check_log(table, LogContract(max_duplicate_rate=0.2), window="w")
    assert findings[0].status == "pass"


def test_duplicates_group_through_both_relations() -> None:
    # A and B share an id, B and C share content: one group of three, two duplicates, in any order
    a = _record(0)
    b = _record(1, record_id="r0")
    c = dict(b, record_id="c")
    for order in ([a, b, c], [a, c, b], [c, b, a], [b, a, c]):
        assert duplicate_count(_table(order))[0] == 2
    assert duplicate_count(_table([_record(i) for i in range(20)])) == (0, 0, 0)


# --- freshness ---------------------------------------------------------------------------------------------


def test_freshness_is_the_quantile_of_ingest_minus_event_time() -> None:
    rng = np.random.default_rng(7)
    lags = rng.exponential(120.0, 200)
    lags[0] = -3.5  # a clock-skewed record
    records = [_record(i, ingested_at=T0 + dt.timedelta(seconds=i) + dt.timedelta(microseconds=round(lag * 1e6)))
               for i, lag in enumerate(lags)]
    exact = np.round(lags * 1e6) / 1e6
    contract = LogContract(max_freshness_s=300.0, freshness_quantile=0.9)
    (f,) = check_log(_table(records), contract, window="w")[0]
    assert f.check == "freshness" and f.observed == pytest.approx(np.quantile(exact, 0.9), rel=1e-12)
    assert f.status == ("pass" if np.quantile(exact, 0.9) <= 300 else "fail")
    assert "1 records ingested before their event time" in f.detail
    (g,) = check_log(_table(records), LogContract(max_freshness_s=1.0, freshness_quantile=0.9), window="w")[0]
    assert g.status == "fail"


# --- shape against the reference ------------------------------------------------------------------------------


def test_new_missing_and_retyped_fields() -> None:
    ref_fields = {"query": "string", "geo": "string", "score": "number", "count": "integer", "legacy": "string",
                  "maybe": "string", "user": "string"}
    ref = [_record(i, dict(ref_fields)) for i in range(200)]
    ref[0]["fields"]["rare"] = "string"  # in 1 of 200 records: 0.5%, below the missing rule's share
    ref[1]["fields"]["score"] = "null"
    cur_fields = {"query": "string", "geo": "number", "score": "string", "count": "number", "maybe": "null",
                  "user": "string", "tenant": "string"}  # legacy gone, tenant new
    cur = [_record(i, dict(cur_fields)) for i in range(100)]
    cur[0]["fields"]["geo"] = "string"  # a minority keeps the old type: geo is still retyped
    findings, tests = check_log(_table(cur), NO_LIMITS, window="d2", reference=_table(ref), reference_window="d1")
    assert set(_by(findings, "new_field")) == {"tenant"}
    assert set(_by(findings, "missing_field")) == {"legacy"}
    retyped = _by(findings, "retyped_field")
    assert set(retyped) == {"geo", "score"}  # integer -> number is not a retype; all-null "maybe" is not judged
    assert all(f.status == "fail" and "d1" in f.detail for f in findings)
    assert "string (100.0% of non-null values)" in retyped["geo"].detail and "number (99.0%)" in retyped["geo"].detail
    assert _by(findings, "missing_field")["legacy"].threshold == 1.0
    assert {t.signal for t in tests} == {f"null_rate:{n}" for n in {*ref_fields, *cur_fields, "rare"}}


def test_missing_needs_a_small_chance_of_absence() -> None:
    # present in 10% of the reference: 5 current records would lack it by chance 59% of the time (not reported);
    # 100 current records only 0.003% of the time (reported)
    ref = [_record(i, {"query": "string", **({"coupon": "string"} if i % 10 == 0 else {})}) for i in range(500)]
    few = check_log(_table([_record(i, {"query": "string"}) for i in range(5)]), NO_LIMITS, window="d2",
                    reference=_table(ref), reference_window="d1")[0]
    many = check_log(_table([_record(i, {"query": "string"}) for i in range(100)]), NO_LIMITS, window="d2",
                     reference=_table(ref), reference_window="d1")[0]
    assert _by(few, "missing_field") == {}
    assert set(_by(many, "missing_field")) == {"coupon"}


def test_shape_not_judged_on_an_empty_window() -> None:
    findings, tests = check_log(_table([]), NO_LIMITS, window="d2", reference=_table([_record(0)]),
                                reference_window="d1")
    assert {(f.check, f.status) for f in findings} == {
        ("new_field", "not_judged"), ("missing_field", "not_judged"), ("retyped_field", "not_judged")}
    assert tests and all(t.p_value is None for t in tests)  # untestable, counted by the family


def test_reference_needs_a_label() -> None:
    with pytest.raises(ValueError, match="reference_window"):
        check_log(_table([_record(0)]), NO_LIMITS, window="d2", reference=_table([_record(0)]))


# --- null-rate change tests ---------------------------------------------------------------------------------


def _null_window(n: int, nulls: int, start: int = 0) -> pa.Table:
    return _table([_record(start + i, {"query": "string", "geo": "null" if i < nulls else "string"})
                   for i in range(n)])


def test_null_rate_test_equals_scipy_chi2_contingency() -> None:
    ref, cur = _null_window(1000, 20), _null_window(800, 60)
    _, tests = check_log(cur, NO_LIMITS, window="2026-11-24", reference=ref, reference_window="2026-11-17",
                         comparison="week_over_week", segment="geo=eu")
    geo = {t.signal: t for t in tests}["null_rate:geo"]
    expected = sps.chi2_contingency(np.array([[20, 980], [60, 740]]), correction=False)
    assert geo.p_value == pytest.approx(float(expected.pvalue), rel=1e-10)
    assert geo.test == "chi2" and geo.comparison == "week_over_week" and geo.segment == "geo=eu"
    assert (geo.reference, geo.current) == ("2026-11-17", "2026-11-24")
    assert geo.effect == pytest.approx(60 / 800 - 20 / 1000)
    assert geo.moved == "null rate 2.0% -> 7.5%"
    query = {t.signal: t for t in tests}["null_rate:query"]
    assert query.p_value == 1.0 and query.effect == 0.0  # never null in either window


def test_small_counts_use_fisher_exact() -> None:
    p, how = null_rate_test(1, 40, 6, 40)
    assert p == pytest.approx(float(sps.fisher_exact([[1, 39], [6, 34]]).pvalue), rel=1e-12)
    assert how.startswith("Fisher")
    assert null_rate_test(0, 10, 0, 0) == (None, "empty window")
    p_big, how_big = null_rate_test(100, 1000, 150, 1000)
    assert how_big == "chi-squared"
    assert p_big == pytest.approx(float(sps.chi2_contingency([[100, 900], [150, 850]], correction=False).pvalue))


def test_aa_windows_do_not_alarm_and_a_spike_is_detected() -> None:
    rng = np.random.default_rng(11)
    p_values = []
    for _ in range(40):
        a, b = rng.binomial(600, 0.05), rng.binomial(600, 0.05)
        _, tests = check_log(_null_window(600, b, 10_000), NO_LIMITS, window="cur",
                             reference=_null_window(600, a), reference_window="ref")
        p = {t.signal: t.p_value for t in tests}["null_rate:geo"]
        assert p is not None
        p_values.append(p)
    arr = np.array(p_values)
    assert arr.min() > 0.001  # no A/A pair looks like a spike
    assert (arr < 0.05).mean() <= 0.15  # about alpha of them below 0.05, not most
    assert sps.kstest(arr, "uniform").pvalue > 0.001  # roughly uniform under the null
    _, tests = check_log(_null_window(600, 189), NO_LIMITS, window="cur", reference=_null_window(600, 1),
                         reference_window="ref")
    spike = {t.signal: t for t in tests}["null_rate:geo"]
    assert spike.p_value is not None and spike.p_value < 1e-30
    assert spike.moved == "null rate 0.17% -> 31.5%"


def test_attrs_null_empty_and_sliced_tables() -> None:
    records = [_record(0, attrs=None), _record(1, attrs=None), _record(2, attrs={}), _record(3, attrs={}),
               _record(4, attrs={"geo": None}), _record(5, attrs={"geo": None}), _record(6, attrs={"geo": ""})]
    for r in records:  # everything but the id and attrs alike
        r.update(query="q", answer="a", ts=T0)
    table = _table(records)
    # groups: {0,1} null map, {2,3} empty map, {4,5} null value, {6} empty-string value
    assert duplicate_count(table) == (3, 0, 3)
    # a slice (an offset into the Arrow buffers) is judged on its own rows
    assert duplicate_count(table.slice(1, 4)) == (1, 0, 1)  # records 1..4: only {2,3} pair up
    assert duplicate_count(pa.concat_tables([table.slice(0, 3), table.slice(3)])) == (3, 0, 3)
