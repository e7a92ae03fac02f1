"""The monitor pass on seeded synthetic streams (issue 13, "Measured"): strong daily and weekly seasonality
in volume, segment mix and topic mix and no drift raise no alarm; each injected shift (a topic, a segment
mix, a null-rate spike, a latency tail) is caught on its first day, in its segment, and not the day before.

The projects use the hashing embedder (no weights): the embedding signals are lexical here; the real-query
check with MiniLM is tests/monitor/test_monitor_scifact.py."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit

from harness.monitor.model import MonitorReport
from harness.monitor.synthetic import Shift, StreamSpec, write_jsonl, write_project

PER_DAY = 600
SHIFT_DAY = 15  # 2026-11-17, a Tuesday


def _project(root: Path, spec: StreamSpec) -> Path:
    from harness.monitor.ingest import ingest
    from harness.storage import Layout
    from harness.types import LogFieldMap

    manifest = write_project(spec, root / "proj")
    doc = tomlkit.parse(manifest.read_text())
    doc["artifacts"]["embedding"]["params"] = {"backend": "hashing", "dim": 256}  # type: ignore[index]
    # a day's traffic is judged; limits a few hundred records' Wilson bounds meet (1% errors, 0.3% timeouts)
    doc["monitor"]["slo"].update({"min_records": 300, "error_rate": 0.06, "timeout_rate": 0.04})  # type: ignore[union-attr,index]
    manifest.write_text(tomlkit.dumps(doc))
    log = write_jsonl(spec, root / "proj" / "logs" / "log.jsonl")
    report = ingest([log], layout=Layout.for_manifest(manifest), mapping=LogFieldMap())
    assert report.rejected == 0 and report.added > 0
    return manifest


def _run(manifest: Path, first: dt.date, last: dt.date) -> MonitorReport:
    from harness.manifest import load_manifest
    from harness.monitor.project import monitor_inputs
    from harness.monitor.run import judged_days, run_monitor
    from harness.storage import Layout

    inputs, cache = monitor_inputs(load_manifest(manifest), Layout.for_manifest(manifest))
    try:
        return run_monitor(inputs, days=judged_days(inputs.parts_by_day, first, last))
    finally:
        cache.close()


def _day(spec: StreamSpec, i: int) -> dt.date:
    return spec.day(i)


@pytest.fixture(scope="module")
def seasonal(tmp_path_factory: pytest.TempPathFactory) -> tuple[StreamSpec, Path]:
    spec = StreamSpec(seed=7, records_per_day=PER_DAY, days=21)
    return spec, _project(tmp_path_factory.mktemp("seasonal"), spec)


def test_a_seasonal_stream_without_drift_raises_no_alarm(seasonal: tuple[StreamSpec, Path]) -> None:
    spec, manifest = seasonal
    report = _run(manifest, _day(spec, 7), _day(spec, 20))
    assert len(report.windows) == 14 and report.drift.n_tests > 3000
    alarm_days = sorted({a.test.current for a in report.drift.alarms})
    assert alarm_days == [], [(g.alarm.test.current, g.alarm.test.segment, g.alarm.test.signal, g.tests)
                              for g in report.alarm_groups]
    # the seasonality is real and seen: day-over-day moves (weekday vs weekend) are set aside, not alarmed
    assert report.drift.seasonal
    assert {a.test.comparison for a in report.drift.seasonal} == {"day_over_day"}
    assert not report.slo_failures and not report.contract_failures
    assert report.status == "ok"
    assert {s.signal for s in report.samples} == {"query_embedding"}


SHIFTS = {
    "topic": (Shift("topic", SHIFT_DAY, segment="geo=eu", topic="travel", share=0.4), "geo=eu",
              {"golden_distance", "query_embedding", "golden_cluster", "query_chars", "top1_score"}),
    "segment_mix": (Shift("segment_mix", SHIFT_DAY, segment="device=mobile", attribute="geo",
                          weights={"apac": 5.0}), "all", {"segment:geo"}),
    "null_rate": (Shift("null_rate", SHIFT_DAY, field="answer", rate=0.3), "all", {"null_rate:answer"}),
    "latency_tail": (Shift("latency_tail", SHIFT_DAY, segment="geo=apac", share=0.25, stage="generate", scale=6.0),
                     "geo=apac", {"latency:generate", "latency:total"}),
}


@pytest.mark.parametrize("kind", list(SHIFTS))
def test_an_injected_shift_is_caught_on_its_first_day_in_its_segment(kind: str,
                                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    shift, segment, signals = SHIFTS[kind]
    spec = StreamSpec(seed=7, records_per_day=PER_DAY, days=SHIFT_DAY + 1, shifts=(shift,))
    manifest = _project(tmp_path_factory.mktemp(kind), spec)
    report = _run(manifest, _day(spec, SHIFT_DAY - 1), _day(spec, SHIFT_DAY))
    first = _day(spec, SHIFT_DAY).isoformat()
    before = _day(spec, SHIFT_DAY - 1).isoformat()
    assert {a.test.current for a in report.drift.alarms} == {first}, "alarms on the day before the shift"
    caught = {a.test.signal for a in report.drift.alarms if a.test.segment == segment}
    assert caught & signals, (kind, sorted(caught))
    assert report.status == "alarm"
    assert not [c for c in report.contract_failures if c.window == before]
    for g in report.alarm_groups:  # every alarm names its windows, effect and what moved; a distribution to show
        assert g.alarm.test.comparison == "week_over_week" or g.alarm.confirmed_by is not None
        assert g.alarm.test.effect is not None and g.alarm.test.moved
    if kind != "null_rate":  # a null rate's move is told in words; the others' distributions are drawn
        assert report.distributions
    else:  # the log's contract (answer null at most 5%) fails on that day too
        assert {(c.window, c.check, c.field) for c in report.contract_failures} >= {(first, "null_rate", "answer")}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "-q", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_command_exit_codes_and_faces(seasonal: tuple[StreamSpec, Path], tmp_path: Path) -> None:
    spec, manifest = seasonal
    cwd = manifest.parent
    day = _day(spec, 14).isoformat()
    ok = _cli("monitor", "--since", day, "--until", day, "--format", "json", cwd=cwd)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["status"] == "ok" and data["windows"] == [day] and data["drift"]["alarms"] == []
    md = _cli("monitor", "--until", day, "--format", "md", cwd=cwd)
    assert md.returncode == 0 and "OK" in md.stdout.splitlines()[0]
    html = _cli("monitor", "--until", day, "--format", "html", "--out", "reports/monitor.html", cwd=cwd)
    assert html.returncode == 0, html.stderr
    assert (cwd / "reports" / "monitor.html").read_text().lstrip().lower().startswith("<!doctype html")
    named = _cli("monitor", "--reference", f"{_day(spec, 0)}..{_day(spec, 6)}",
                 "--current", f"{_day(spec, 7)}..{_day(spec, 13)}", "--format", "json", cwd=cwd)
    assert named.returncode == 0, named.stderr  # two whole weeks: the cycles cancel
    assert json.loads(named.stdout)["settings"]["comparisons"] == ["named"]
    # bad input: one line, exit 2, nothing written
    for args in (["--format", "html"], ["--since", "2026-13-01"], ["--reference", _day(spec, 0).isoformat()],
                 ["--format", "html", "--out", str(tmp_path / "outside.html")]):
        bad = _cli("monitor", *args, cwd=cwd)
        assert bad.returncode == 2, (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1 and bad.stderr.startswith("error:")
    assert not (tmp_path / "outside.html").exists()


def test_nothing_ingested_is_an_error_not_a_pass(tmp_path: Path) -> None:
    spec = StreamSpec(seed=1, records_per_day=50, days=2)
    manifest = write_project(spec, tmp_path / "empty")
    out = _cli("monitor", cwd=manifest.parent)
    assert out.returncode == 2 and "harness ingest" in out.stderr


def test_too_few_records_cannot_be_judged(tmp_path: Path) -> None:
    spec = StreamSpec(seed=2, records_per_day=40, days=9)  # windows below min_window in every segment
    manifest = _project(tmp_path, spec)
    doc = tomlkit.parse(manifest.read_text())
    doc["monitor"]["min_window"] = 500  # type: ignore[index]
    doc["monitor"]["slo"]["min_records"] = 500  # type: ignore[index]
    doc["monitor"]["log_contract"] = {}  # type: ignore[index]
    manifest.write_text(tomlkit.dumps(doc))
    report = _run(manifest, _day(spec, 8), _day(spec, 8))
    assert report.drift.untestable == report.drift.n_tests > 0
    assert report.status == "cannot_judge"
    out = _cli("monitor", "--until", _day(spec, 8).isoformat(), cwd=manifest.parent)
    assert out.returncode == 1 and "CANNOT JUDGE" in out.stdout


def test_a_move_no_week_over_week_comparison_can_check_is_not_called_seasonal(tmp_path: Path) -> None:
    spec = StreamSpec(seed=5, records_per_day=PER_DAY, days=5,
                      shifts=(Shift("topic", 3, topic="travel", share=0.6),))
    manifest = _project(tmp_path, spec)
    report = _run(manifest, _day(spec, 3), _day(spec, 3))  # the shift's first day: nothing a week back
    assert report.drift.alarms == () and report.drift.unconfirmed
    assert not any(a.test.signal == "top1_score" for a in report.drift.seasonal)
    assert report.status == "cannot_judge"
    assert any("no week-over-week comparison" in why for why in report.cannot_judge)
    out = _cli("monitor", "--since", _day(spec, 3).isoformat(), "--until", _day(spec, 3).isoformat(),
               cwd=manifest.parent)
    assert out.returncode == 1 and "CANNOT JUDGE" in out.stdout and "unconfirmed" in out.stdout


def test_a_day_without_records_or_with_only_the_golden_set_is_still_judged(tmp_path: Path) -> None:
    spec = StreamSpec(seed=6, records_per_day=400, days=2)
    manifest = _project(tmp_path, spec)
    gap = _run(manifest, _day(spec, 0), _day(spec, 3))  # days 3 and 4 hold no record: a logging gap
    assert gap.empty_windows == (_day(spec, 2).isoformat(), _day(spec, 3).isoformat())
    assert gap.status == "cannot_judge"
    doc = tomlkit.parse(manifest.read_text())
    doc["monitor"]["slo"]["latency_s"] = {"total": {"p95": 0.1}}  # type: ignore[index]  # broken by every day
    manifest.write_text(tomlkit.dumps(doc))
    first = _day(spec, 0).isoformat()  # no reference at all; judged against the golden set only
    out = _cli("monitor", "--until", first, "--golden", "--format", "json", cwd=manifest.parent)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "alarm" and data["windows"] == [first]
    assert any(r["limit"] == "latency total p95" and r["status"] == "fail" and r["segment"] == "all"
               for r in data["slo"])
