"""The canary verdict on synthetic logged traffic: A/A splits pass (false-alarm rate measured over seeds), a
canary that breaks the output contract in one segment or whose index is coarse fails with the segment named,
a neutral change passes, and what cannot be judged says so."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as sps

from harness.errors import HarnessError
from harness.manifest import LoadedManifest, load_manifest
from harness.monitor.synthetic import StreamSpec
from harness.shadow.canary import (
    DEFAULT_TOLERANCE,
    CanaryRequest,
    canary,
    canary_signals,
    plan_canary,
    plan_canary_records,
    run_canary,
)
from harness.shadow.logs import read_log_file
from harness.shadow.model import CanaryReport
from harness.storage import Layout
from harness.testing.shadow import distractors, logged_traffic, write_shadow_project
from harness.types import CanaryConfig, CanarySignal, GateRule, LogFieldMap, MonitorConfig

os.environ.setdefault("OPENAI_API_KEY", "test")
SPEC = StreamSpec(days=2, records_per_day=1500)
BASE, CAN = "baseline-id", "canary-id"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> LoadedManifest:
    root = tmp_path_factory.mktemp("canary-project")
    sp = write_shadow_project(root, base_url="http://127.0.0.1:9", spec=SPEC, n_distractors=50)
    return load_manifest(sp.baseline)


def _request(project: LoadedManifest, log: Path | None = None, config: CanaryConfig | None = None,
             with_project: bool = True) -> CanaryRequest:
    monitor = project.manifest.monitor or MonitorConfig()
    return CanaryRequest(layout=Layout.for_manifest(project.path), config=config or CanaryConfig(), monitor=monitor,
                         baseline_id=BASE, candidate_id=CAN, project=project if with_project else None, log=log)


def _run(project: LoadedManifest, tmp_path: Path, edit: Callable[[dict[str, Any], bool], dict[str, Any]] | None = None,
         *, share: float = 0.3, config: CanaryConfig | None = None) -> CanaryReport:
    log = logged_traffic(SPEC, tmp_path / "log.jsonl", manifest_id=BASE, canary_id=CAN, canary_share=share, edit=edit)
    return canary(_request(project, log, config))


def _test(report: CanaryReport, signal: str, segment: str) -> Any:
    (t,) = [t for t in report.tests if t.signal == signal and t.segment == segment]
    return t


def test_signal_names():
    names = canary_signals()
    assert {"format_valid", "top1_score", "error_rate", "groundedness", "timeout"} <= set(names)
    assert "query_chars" not in names and "error_kind" not in names


def test_aa_passes_and_false_alarm_rate(project: LoadedManifest, tmp_path: Path):
    log = logged_traffic(SPEC, tmp_path / "all.jsonl", manifest_id=BASE)
    table = read_log_file(log, (project.manifest.monitor or MonitorConfig()).mapping)
    req = _request(project)
    statuses = []
    min_p = []
    seeds = 20
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        ids = np.where(rng.random(table.num_rows) < 0.3, CAN, BASE)
        split = table.set_column(table.schema.get_field_index("manifest_id"), "manifest_id", pa.array(ids))
        report = run_canary(plan_canary_records(req, split))
        statuses.append(report.status)
        min_p.append(min(t.p_adjusted for t in report.tests if t.p_adjusted is not None))
        if seed == 0:
            assert report.status == "pass", report.reasons
            assert report.family_size >= 40  # constant rate tests (no empty answer on either side) stay out
            assert {s.segment for s in report.scores} >= {"all", "geo=eu", "geo=us", "device=mobile"}
    alarms = sum(s != "pass" for s in statuses)
    rate = alarms / seeds
    # at most alpha plus the binomial margin: the 97th percentile of Binomial(20, 0.05) alarms
    limit = int(sps.binom.ppf(0.97, seeds, 0.05))
    assert alarms <= limit, (rate, statuses)
    print(f"A/A false-alarm rate {rate:.3f} over {seeds} seeds; smallest adjusted p {min(min_p):.3g}")


def _plain_in_eu(rec: dict[str, Any], is_canary: bool) -> dict[str, Any]:
    if is_canary and rec.get("geo") == "eu" and isinstance(rec.get("answer"), str):
        rec["answer"] = json.loads(rec["answer"])["answer"]  # plain text: the JSON contract breaks
    return rec


def test_format_breaking_canary_fails_in_its_segment(project: LoadedManifest, tmp_path: Path):
    critical = CanaryConfig(signals=tuple(CanarySignal(name=n, critical=n == "format_valid") for n in
                                          ("format_valid", "top1_score", "answer_empty", "error_rate",
                                           "latency:total", "groundedness")))
    report = _run(project, tmp_path, _plain_in_eu, config=critical)
    assert report.status == "fail", report.reasons
    eu = _test(report, "format_valid", "geo=eu")
    assert eu.classification == "low" and eu.failed and eu.canary_value == 0.0 and eu.baseline_value == 1.0
    assert eu.p_adjusted is not None and eu.p_adjusted < 1e-9
    assert eu.test == "cmh"  # Cochran-Mantel-Haenszel over the hours (checked against R in test_unpaired.py)
    assert any(r.startswith("format_valid in geo=eu: 0 vs 1 (-100%)") for r in report.reasons), report.reasons
    for seg in ("geo=us", "geo=apac"):
        t = _test(report, "format_valid", seg)
        assert t.classification == "pass" and not t.failed
    assert "format_valid" in next(s for s in report.scores if s.segment == "geo=eu").critical_failed
    print("format-breaking:", eu.message, [(s.segment, s.score, s.status) for s in report.scores])

    # with every signal at its defaults one failed signal of eleven scores 90.9 (marginal), but format_valid is
    # critical by default (an answer that breaks its contract is unusable): the canary fails
    default = _run(project, tmp_path, _plain_in_eu)
    eu_score = next(s for s in default.scores if s.segment == "geo=eu")
    assert default.status == "fail" and eu_score.status == "fail"
    assert "format_valid" in eu_score.critical_failed
    print("format-breaking, default config:", default.status, [(s.segment, s.score) for s in default.scores])


def test_coarse_index_canary_fails(project: LoadedManifest, tmp_path: Path):
    unrelated = [d["text"] for d in distractors(SPEC, 40, seed=3)]
    rng = np.random.default_rng(7)

    def coarse(rec: dict[str, Any], is_canary: bool) -> dict[str, Any]:
        if not is_canary:
            return rec
        rec["retrieved"] = [{**d, "score": round(d["score"] * 0.9, 4)} for d in rec.get("retrieved") or ()]
        if rng.random() < 0.5 and rec.get("contexts"):
            rec["contexts"] = [unrelated[int(i)] for i in rng.integers(0, len(unrelated), len(rec["contexts"]))]
        return rec

    report = _run(project, tmp_path, coarse)
    assert report.status == "fail", report.reasons
    top1 = _test(report, "top1_score", "all")
    grounded = _test(report, "groundedness", "all")
    assert top1.classification == "low" and top1.failed
    assert grounded.classification == "low" and grounded.failed
    assert top1.ci_high is not None and top1.ci_high < 0
    assert any(r.startswith("top1_score in all:") for r in report.reasons)
    score_all = report.scores[0]
    assert score_all.score is not None and score_all.score < report.marginal_score
    print("coarse:", top1.message, "|", grounded.message, "| score all", score_all.score)


def test_neutral_canary_passes(project: LoadedManifest, tmp_path: Path):
    def reword(rec: dict[str, Any], is_canary: bool) -> dict[str, Any]:
        if is_canary and isinstance(rec.get("answer"), str):
            body = json.loads(rec["answer"])
            body["answer"] = body["answer"].replace("You can", "You may")
            rec["answer"] = json.dumps(body)
        return rec

    report = _run(project, tmp_path, reword)
    assert report.status == "pass", report.reasons
    assert all(s.status == "pass" for s in report.scores)


def test_shared_windows_only(project: LoadedManifest, tmp_path: Path):
    # the canary serves only from 00:00 to 06:00 UTC; the baseline all day
    def night(rec: dict[str, Any], is_canary: bool) -> dict[str, Any]:
        hour = int(str(rec["timestamp"])[11:13])
        rec["manifest_id"] = CAN if hour < 6 and is_canary else BASE
        return rec

    report = _run(project, tmp_path, night, share=0.5, config=CanaryConfig(min_records=20))
    assert report.windows == ("2026-11-02T00:00+00:00/2026-11-02T06:00+00:00",
                              "2026-11-03T00:00+00:00/2026-11-03T06:00+00:00")
    assert report.baseline.first is not None and report.baseline.first < "2026-11-02T06"
    assert any("baseline" in n and "outside the hours" in n for n in report.notes)


def test_no_shared_window_cannot_judge(project: LoadedManifest, tmp_path: Path):
    def split_by_hour(rec: dict[str, Any], is_canary: bool) -> dict[str, Any]:
        rec["manifest_id"] = CAN if int(str(rec["timestamp"])[11:13]) < 8 else BASE
        return rec

    report = _run(project, tmp_path, split_by_hour)
    assert report.status == "cannot_judge"
    assert "no common hour" in report.reasons[0]
    assert report.windows == ()


def test_too_few_canary_records_cannot_judge(project: LoadedManifest, tmp_path: Path):
    report = _run(project, tmp_path, share=0.01)
    assert report.canary.records < 50
    assert report.status == "cannot_judge", report.reasons
    assert all(t.classification == "nodata" for t in report.tests if t.segment == "all")
    assert any("not judged" in r for r in report.reasons)


def test_unknown_signal_is_an_error_before_anything_runs(project: LoadedManifest, tmp_path: Path):
    missing = tmp_path / "no-such-log.jsonl"  # never read: the check comes first
    with pytest.raises(HarnessError, match="did you mean 'format_valid'"):
        plan_canary(_request(project, missing, CanaryConfig(signals=(CanarySignal(name="format_vaild"),))))
    with pytest.raises(HarnessError, match="not a canary signal"):
        plan_canary(_request(project, missing, CanaryConfig(gates=(GateRule(metric="top1", min=0.5),))))
    with pytest.raises(HarnessError, match="not a \\[monitor\\] segment"):
        plan_canary(_request(project, missing, CanaryConfig(gates=(GateRule(metric="format_valid", min=0.5,
                                                                             segment="planet=*"),))))


def test_canary_gates(project: LoadedManifest, tmp_path: Path):
    rules = (
        GateRule(metric="error_rate", max_rate=0.05),
        GateRule(name="format per geo", metric="format_valid", segment="geo=*", min=0.9, min_segment_size=400,
                 max_skipped=0),
        GateRule(metric="latency", stage="total", max_seconds=60.0, quantile=0.99),
    )
    cfg = CanaryConfig(gates=rules)
    report = _run(project, tmp_path, config=cfg)
    by_rule = {(r.rule, r.segment): r for r in report.results}
    err = by_rule[("error_rate max_rate=0.05", None)]
    assert err.status == "pass" and err.observed is not None and err.observed < 0.05
    geo = [r for r in report.results if r.rule == "format per geo" and r.segment not in (None, "geo=*")]
    skipped = [r for r in geo if r.status == "skip"]
    judged = [r for r in geo if r.status == "pass"]
    canary_counts = {r.segment: _test(report, "format_valid", str(r.segment)).canary_n for r in geo}
    assert skipped and judged
    assert all(canary_counts[r.segment] < 400 for r in skipped)
    assert all("fewer than min_segment_size=400" in r.message for r in skipped)
    over = [r for r in report.results if r.rule == "format per geo" and r.segment == "geo=*"]
    assert over and over[0].status == "fail"  # max_skipped = 0
    assert report.status == "fail"

    def errors(rec: dict[str, Any], is_canary: bool) -> dict[str, Any]:
        if is_canary and rec["id"].endswith(("1", "3")):
            rec["error"] = "upstream_error"
        return rec

    failing = _run(project, tmp_path, errors, config=CanaryConfig(gates=rules[:1]))
    err2 = next(r for r in failing.results if r.metric == "error_rate")
    assert err2.status == "fail" and err2.observed is not None and err2.observed > 0.05
    assert failing.status == "fail"
    assert any(r.startswith("gate error_rate") for r in failing.reasons)


def test_from_the_store_with_holm(project: LoadedManifest, tmp_path: Path):
    from harness.monitor.ingest import ingest

    home = tmp_path / "home"
    layout = Layout(home, project=project.base_dir)
    layout.cache_dir = Layout.for_manifest(project.path).cache_dir  # the groundedness checked before stays cached
    log = logged_traffic(SPEC, tmp_path / "store.jsonl", manifest_id=BASE, canary_id=CAN, canary_share=0.3,
                         edit=_plain_in_eu)
    ingest([log], layout=layout, mapping=LogFieldMap())
    req = CanaryRequest(layout=layout, config=CanaryConfig(correction="holm"),
                        monitor=project.manifest.monitor or MonitorConfig(), baseline_id=BASE, candidate_id=CAN,
                        project=project)
    from_store = canary(req)
    from_log = canary(CanaryRequest(layout=layout, config=CanaryConfig(correction="holm"), monitor=req.monitor,
                                    baseline_id=BASE, candidate_id=CAN, project=project, log=log))
    assert from_store.correction == "holm"
    assert from_store.status == from_log.status == "fail"  # format_valid is critical by default
    assert [(t.signal, t.segment, t.p_value) for t in from_store.tests] == \
        [(t.signal, t.segment, t.p_value) for t in from_log.tests]
    eu = _test(from_store, "format_valid", "geo=eu")
    assert eu.failed and eu.p_adjusted is not None and eu.p_adjusted <= eu.p_value * from_store.family_size


def test_unmeasured_or_missing_side_cannot_judge(project: LoadedManifest, tmp_path: Path):
    # instructions are never logged: a signal asked for by name that nobody measured is not a pass
    cfg = CanaryConfig(signals=(CanarySignal(name="top1_score"), CanarySignal(name="instructions_followed")))
    report = _run(project, tmp_path, config=cfg)
    assert report.status == "cannot_judge"
    assert any("instructions_followed in all: not judged" in r for r in report.reasons)
    # no canary record at all
    none = _run(project, tmp_path, share=0.0)
    assert none.status == "cannot_judge" and "no records of the candidate" in none.reasons[0]


def _hour(rec: dict[str, Any]) -> int:
    return int(str(rec["timestamp"])[11:13])


def test_ramp_and_daily_cycle_aa_passes(project: LoadedManifest, tmp_path: Path):
    # one system on both sides; retrieval scores follow the time of day and the canary's share ramps from 5%
    # before noon to 50% after: pooling the hours would fail it (Simpson's paradox), the hourly strata do not
    def morning_scores(rec: dict[str, Any], _: bool) -> dict[str, Any]:
        if _hour(rec) < 12:
            rec["retrieved"] = [{**d, "score": round(d["score"] + 0.15, 4)} for d in rec.get("retrieved") or ()]
        return rec

    log = logged_traffic(SPEC, tmp_path / "cycle.jsonl", manifest_id=BASE, edit=morning_scores)
    table = read_log_file(log, (project.manifest.monitor or MonitorConfig()).mapping)
    hours = np.array([t.hour for t in table["ts"].to_pylist()])
    req = _request(project)
    seeds = 10
    statuses = []
    for seed in range(seeds):
        rng = np.random.default_rng(2000 + seed)
        ids = np.where(rng.random(table.num_rows) < np.where(hours < 12, 0.05, 0.5), CAN, BASE)
        split = table.set_column(table.schema.get_field_index("manifest_id"), "manifest_id", pa.array(ids))
        report = run_canary(plan_canary_records(req, split))
        statuses.append(report.status)
        if report.status != "pass":
            print("ramp A/A alarm:", seed, report.reasons)
        if seed == 0:
            assert report.status == "pass", report.reasons
            top1 = _test(report, "top1_score", "all")
            # the scenario bites: pooled, the canary's scores look far lower
            plan = plan_canary_records(req, split)
            vals = np.array(plan.table["top1_score"].to_pylist(), dtype=float)
            is_can = np.array(plan.table["is_canary"].to_pylist())
            pooled = sps.mannwhitneyu(vals[is_can], vals[~is_can])
            assert pooled.pvalue < 1e-10
            # the values shown compare the same hours: the baseline re-weighted to the canary's hourly mix
            assert top1.baseline_value == pytest.approx(top1.canary_value, rel=0.03)
            assert abs(np.median(vals[~is_can]) - np.median(vals[is_can])) > 0.05
            assert top1.test == "van-elteren"
            assert any("compared hour by hour" in n for n in report.notes)
            # a drop rule compares the canary's mean with the baseline's over the canary's hours too
            rule = GateRule(metric="top1_score", max_drop=0.03, require_significant=False)
            gated = run_canary(plan_canary_records(_request(project, config=CanaryConfig(gates=(rule,))), split))
            (res,) = gated.results
            assert res.status == "pass" and res.observed is not None and abs(res.observed) < 0.03, res.message
            pooled_drop = (np.mean(vals[~is_can]) - np.mean(vals[is_can])) / np.mean(vals[~is_can])
            assert pooled_drop > 0.05
    alarms = sum(s != "pass" for s in statuses)
    assert alarms <= int(sps.binom.ppf(0.97, seeds, 0.05)), statuses
    print(f"ramp + daily cycle A/A: {alarms} alarms over {seeds} seeds")


def test_segment_vanished_from_the_canary_cannot_judge(project: LoadedManifest, tmp_path: Path):
    # the canary serves no geo=eu request (say they crash before logging); a rare device is small on both sides
    def no_eu(rec: dict[str, Any], is_canary: bool) -> dict[str, Any]:
        if is_canary and rec.get("geo") == "eu":
            rec["manifest_id"] = BASE
        if str(rec["id"]).endswith("17"):
            rec["device"] = "tv"
        return rec

    report = _run(project, tmp_path, no_eu)
    assert report.status == "cannot_judge", report.reasons
    (line,) = [r for r in report.reasons if "geo=eu" in r]
    eu_base = _test(report, "top1_score", "geo=eu").baseline_n
    assert line.startswith("cannot judge: segment geo=eu has ") and " but 0 canary records" in line
    assert str(eu_base) in line or eu_base >= 50
    # a segment small on both sides stays a note
    assert not any("device=tv" in r for r in report.reasons)
    assert any("device=tv not judged" in n for n in report.notes), report.notes
    # without the vanished segment the same traffic passes
    def rare_only(rec: dict[str, Any], _: bool) -> dict[str, Any]:
        if str(rec["id"]).endswith("17"):
            rec["device"] = "tv"
        return rec

    assert _run(project, tmp_path, rare_only).status == "pass"


def _synthetic(project: LoadedManifest, tmp_path: Path, signal: str, base: np.ndarray, can: np.ndarray,
               tolerance: float | None = None) -> CanaryReport:
    """A plan whose records are synthetic values of one default signal over 24 hours (the signal's plan as the
    default signal list makes it, unless ``tolerance`` replaces its tolerance)."""
    import dataclasses

    log = logged_traffic(SPEC, tmp_path / "small.jsonl", manifest_id=BASE, canary_id=CAN, canary_share=0.3,
                         limit=400)
    plan = plan_canary_records(_request(project), read_log_file(log, (project.manifest.monitor or
                                                                      MonitorConfig()).mapping))
    (sp,) = [p for p in plan.signals if p.name == signal]
    if tolerance is not None:
        sp = dataclasses.replace(sp, tolerance=tolerance, abs_tolerance=0.0, explicit=True)
    rng = np.random.default_rng(5)
    n = base.size + can.size
    start = 1_790_000_000 * 1_000_000
    ts = start + rng.integers(0, 24 * 3_600_000_000, n)
    table = pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                      "is_canary": pa.array(np.r_[np.zeros(base.size, bool), np.ones(can.size, bool)]),
                      signal: pa.array(np.r_[base, can])})
    synthetic = dataclasses.replace(plan, signals=(sp,), table=table, segments=("all",), records=None)
    return run_canary(synthetic)


def test_default_tolerance(project: LoadedManifest, tmp_path: Path):
    # with 50,000 records a side every real move is significant; the defaults let a trivial one pass
    rng = np.random.default_rng(3)
    n = 50_000
    base = np.round(rng.beta(30, 38, n), 4)  # top1_score-like: mean 0.44, sd 0.06
    fresh = np.round(rng.beta(30, 38, n), 4)
    assert DEFAULT_TOLERANCE == {"numeric": 0.02, "rate": 0.005}
    small = _synthetic(project, tmp_path, "top1_score", base, fresh * 0.995)
    (t,) = small.tests
    assert t.p_adjusted is not None and t.p_adjusted < 1e-3  # significant...
    assert t.classification == "pass" and small.status == "pass", small.reasons  # ... but within 2%
    assert t.tolerance == DEFAULT_TOLERANCE["numeric"] and "within the tolerance" in t.message
    big = _synthetic(project, tmp_path, "top1_score", base, fresh * 0.90)
    assert big.tests[0].classification == "low" and big.status == "fail"
    # a listed signal keeps its own tolerance (0: every significant move counts)
    strict = _synthetic(project, tmp_path, "top1_score", base, fresh * 0.995, tolerance=0.0)
    assert strict.tests[0].classification == "low" and strict.status == "fail"
    # rates: an absolute half point; format_valid 0.95 -> 0.9453 (-0.5%) passes, -> 0.855 (-10%) fails
    ok_b = rng.permutation(np.repeat([1.0, 0.0], [47_500, n - 47_500]))
    for scale, label in ((0.995, "pass"), (0.90, "low")):
        k = round(n * 0.95 * scale)
        ok_c = rng.permutation(np.repeat([1.0, 0.0], [k, n - k]))
        r = _synthetic(project, tmp_path, "format_valid", ok_b, ok_c)
        assert r.tests[0].classification == label, r.tests[0].message
        print(f"format_valid x{scale}:", r.tests[0].message)
    print("top1 -0.5%:", t.message, "| -10%:", big.tests[0].message)
