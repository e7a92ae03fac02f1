"""The faces of a monitor pass (text, markdown, JSON, HTML) laid out from hand-built MonitorReports: the verdict
line, one row per alarm with its numbers, the SLO and contract failures, what was not judged; markdown that
renders user values as themselves (the oracle: markdown-it-py, a CommonMark renderer with GitHub tables);
JSON that round-trips; HTML that names nothing outside itself."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from html import unescape
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from harness.monitor.model import (
    ContractFinding,
    Distribution,
    MonitorReport,
    SampleNote,
    SeriesPoint,
    SLOResult,
)
from harness.report.monitor import monitor_json, monitor_text
from harness.report.monitor_html import build_monitor_page, monitor_html
from harness.stats.drift import Alarm, AlarmReport, DriftTest

MD = MarkdownIt("commonmark").enable("table")
HOSTILE_SEGMENT = "geo=*eu_1*"
RULE = AlarmReport((), (), 0, 0).rule


def days(last: str, n: int) -> tuple[str, ...]:
    end = date.fromisoformat(last)
    return tuple((end - timedelta(days=n - 1 - i)).isoformat() for i in range(n))


def _series(signals: list[str], segments: tuple[str, ...], windows: tuple[str, ...],
            jump: dict[tuple[str, str], str] | None = None) -> tuple[SeriesPoint, ...]:
    """A smooth weekly cycle per signal and segment; from the window in ``jump`` on, the value jumps."""
    out = []
    for si, sig in enumerate(signals):
        for gi, seg in enumerate(segments):
            for wi, w in enumerate(windows):
                base = 10.0 + si + gi * 0.5 + (wi % 7) * 0.3
                if jump and (sig, seg) in jump and w >= jump[(sig, seg)]:
                    base += 6.0
                gap = sig == "top1_score" and seg == "all" and wi == 2  # a window without a value
                out.append(SeriesPoint(sig, seg, w, None if gap else round(base, 3), 0 if gap else 100 + wi))
    return tuple(out)


ALARM_LEN = Alarm(DriftTest("query_length", HOSTILE_SEGMENT, "week_over_week", "2026-11-17", "2026-11-24", "ks",
                            1.2e-6, 0.4123, "p50 12 -> 19 tokens; p90 30 -> 44"), 0.00042)
ALARM_LANG = Alarm(DriftTest("query_language", "all", "golden", "golden", "2026-11-24", "chi_squared", 0.0004,
                             0.2871, "en 91% -> 70%; de 2% -> 21%"), 0.0123)
WOW_TOP1 = DriftTest("top1_score", "geo=eu", "week_over_week", "2026-11-16", "2026-11-23", "psi", 0.002, 0.31, "")
ALARM_TOP1 = Alarm(DriftTest("top1_score", "geo=eu", "day_over_day", "2026-11-22", "2026-11-23", "psi", 0.001, 0.35,
                             "bin (0.6, 0.7]: 12% -> 31%"), 0.031, WOW_TOP1)
SEASONAL = Alarm(DriftTest("latency_total", "all", "day_over_day", "2026-11-23", "2026-11-24", "wasserstein", 0.003,
                           0.08, "p50 0.21 -> 0.24 s"), 0.04)
SEGMENTS = ("all", "geo=eu", HOSTILE_SEGMENT)
SIGNALS = ["query_length", "query_language", "top1_score", "latency_total"]

SLO_PASS = SLOResult("2026-11-24", "all", "latency total p95", 1.5, 1.21, 900, "pass")
SLO_FAIL = SLOResult("2026-11-24", "geo=eu", "latency total p95", 1.5, 1.83, 410, "fail", "p95 over the limit")
SLO_NJ = SLOResult("2026-11-24", HOSTILE_SEGMENT, "error_rate", 0.01, None, 3, "not_judged",
                   "3 records, fewer than the 20 needed")
CON_PASS = ContractFinding("2026-11-24", "null_rate", "answer", "pass", 0.01, 0.05)
CON_FAIL = ContractFinding("2026-11-24", "new_field", "user_agent", "fail", detail="not in the reference window")
SAMPLES = tuple(SampleNote("query_embedding", w, "all", 500, 12_000 + i) for i, w in enumerate(days("2026-11-24", 7)))
SETTINGS = {"alpha": 0.05, "min_window": 50, "timezone": "UTC", "seed": 0}


def dist_for(a: Alarm, kind: str = "numeric") -> Distribution:
    t = a.test
    if kind == "numeric":
        labels = ("[0, 10)", "[10, 20)", "[20, 40)", "[40, inf)")
        ref, cur = (0.3, 0.45, 0.2, 0.05), (0.1, 0.35, 0.4, 0.15)
    else:
        labels = ("en", "de", "fr", "es")
        ref, cur = (0.91, 0.02, 0.04, 0.03), (0.70, 0.21, 0.05, 0.04)
    return Distribution(t.signal, t.segment, t.reference, t.current, "numeric" if kind == "numeric" else "categorical",
                        labels, ref, cur, 480, 455)


def alarm_report() -> MonitorReport:
    windows = days("2026-11-24", 7)
    drift = AlarmReport((ALARM_LEN, ALARM_LANG, ALARM_TOP1), (SEASONAL,), 120, 3)
    jump = {("query_length", HOSTILE_SEGMENT): "2026-11-24", ("top1_score", "geo=eu"): "2026-11-23"}
    return MonitorReport(
        project="demo", windows=windows, segments=SEGMENTS, n_records=48_213, drift=drift,
        series=_series(SIGNALS, SEGMENTS, days("2026-11-24", 14), jump),
        distributions=(dist_for(ALARM_LEN), dist_for(ALARM_LANG, "categorical"), dist_for(ALARM_TOP1)),
        slo=(SLO_PASS, SLO_FAIL, SLO_NJ), contracts=(CON_PASS, CON_FAIL), samples=SAMPLES,
        not_judged=("2026-11-18 geo=*eu_1*: week-over-week: the reference window 2026-11-11 has 0 records",),
        settings=SETTINGS)


def ok_report() -> MonitorReport:
    return MonitorReport(
        project="scifact", windows=days("2026-11-24", 7), segments=("all", "geo=eu"), n_records=9_000,
        drift=AlarmReport((), (), 84, 0), series=_series(SIGNALS[:2], ("all", "geo=eu"), days("2026-11-24", 14)),
        slo=(SLO_PASS, SLOResult("2026-11-24", "all", "error_rate", 0.01, 0.004, 900, "pass")),
        contracts=(CON_PASS,), samples=SAMPLES, settings=SETTINGS)


def cannot_judge_report() -> MonitorReport:
    return MonitorReport(
        project="tiny", windows=("2026-11-24",), segments=("all",), n_records=12, drift=AlarmReport((), (), 10, 10),
        not_judged=("2026-11-24 all: 12 records, fewer than min_window 50",), settings=SETTINGS)


def slo_only_report() -> MonitorReport:
    return MonitorReport(project="svc", windows=("2026-11-24",), segments=("all", "geo=eu"), n_records=1_310,
                         drift=AlarmReport((), (), 40, 0), slo=(SLO_PASS, SLO_FAIL))


def contract_only_report() -> MonitorReport:
    return MonitorReport(project="svc", windows=("2026-11-24",), segments=("all",), n_records=1_310,
                         drift=AlarmReport((), (), 40, 0), contracts=(CON_PASS, CON_FAIL))


# ---- text ------------------------------------------------------------------------------------------------


def _line_with(text: str, *needles: str) -> str:
    hits = [ln for ln in text.splitlines() if all(n in ln for n in needles)]
    assert len(hits) == 1, (needles, text)
    return hits[0]


def test_text_opens_on_the_alarm_verdict_and_gives_one_row_per_alarm() -> None:
    r = alarm_report()
    assert r.status == "alarm"
    text = monitor_text(r, fmt="text")
    first = text.splitlines()[0]
    assert first == ("monitor demo: ALARM: 3 drift alarms, 1 SLO failure, 1 log-contract failure (of 120 tests, "
                     "Benjamini-Hochberg adjusted, alpha 0.05); 1 SLO limit not judged, 1 comparison not made")
    assert text.splitlines()[1] == "windows 2026-11-18 .. 2026-11-24 (7), 3 segments, 48,213 records"
    row = _line_with(text, "query_length")
    cells = re.split(r"\s{2,}", row.strip())
    assert cells == ["query_length", HOSTILE_SEGMENT, "week-over-week", "2026-11-17 -> 2026-11-24", "ks", "0.4123",
                     "0.00042", "p50 12 -> 19 tokens; p90 30 -> 44"]
    row = _line_with(text, "query_language", "chi_squared")
    assert re.split(r"\s{2,}", row.strip())[2:7] == ["golden", "golden -> 2026-11-24", "chi_squared", "0.2871",
                                                    "0.0123"]
    # a day-over-day alarm names the aligned week-over-week test that confirmed it
    row = _line_with(text, "top1_score", "psi")
    assert "day-over-day + week-over-week" in row and "0.35" in row and "0.031" in row
    # the rows line up: every alarm row's effect column ends where the header's does
    head = _line_with(text, "signal", "segment", "moved")
    end = head.index("effect") + len("effect")
    for sig in ("query_length", "query_language", "top1_score"):
        line = _line_with(text, sig, "->")
        assert line[:end].rstrip() == line[:end] and line[end - 1] != " "
    # SLO and contract failures, what was not judged, then the counts and the rule
    assert "latency total p95" in _line_with(text, "geo=eu", "1.83", "1.5", "410", "fail")
    assert "3 records, fewer than the 20 needed" in _line_with(text, "error_rate", "not judged")
    assert "user_agent" in _line_with(text, "new field", "fail", "not in the reference window")
    assert "tests: 120 in the family, 3 untestable (no p-value), 1 seasonal move set aside" in text
    assert f"rule: {RULE}" in text
    assert "latency_total all: 2026-11-23 -> 2026-11-24 wasserstein p adj 0.04" in text
    assert "query_embedding: 3,500 of 84,021 records (500 per window and segment, over 7 window-segment pairs)" in text
    assert "the reference window 2026-11-11 has 0 records" in text
    assert "settings: alpha 0.05, min_window 50, timezone UTC, seed 0" in text
    head = "drift alarms (3 signal-segment-days, 3 alarmed tests):"
    assert text.index(head) < text.index("SLO failures (1):") < text.index("log-contract failures")
    assert "\x1b" not in text and "[bold" not in text  # plain text: no markup for a pipe


def test_text_is_short_when_all_is_ok() -> None:
    r = ok_report()
    assert r.status == "ok"
    text = monitor_text(r)
    lines = text.splitlines()
    assert lines[0] == ("monitor scifact: OK: no drift alarm in 84 tests, alpha 0.05; 2 SLO limits and 1 contract "
                        "check pass")
    assert "alarms" not in text and "failures" not in text and "not judged" not in text and "rule:" not in text
    assert len([ln for ln in lines if ln]) <= 8, text


@pytest.mark.parametrize(("build", "first"), [
    (cannot_judge_report, "monitor tiny: CANNOT JUDGE: all 10 drift tests untestable (a window empty or too small); "
                          "1 comparison not made"),
    (slo_only_report, "monitor svc: ALARM: 1 SLO failure"),
    (contract_only_report, "monitor svc: ALARM: 1 log-contract failure"),
])
def test_the_verdict_line_says_why(build: Callable[[], MonitorReport], first: str) -> None:
    r = build()
    text = monitor_text(r)
    assert text.splitlines()[0] == first
    md = monitor_text(r, fmt="md")
    word = first.split(": ")[1]
    assert md.splitlines()[0] == f"## harness monitor `{r.project}`: {word}"


def test_cannot_judge_lists_the_reasons_and_an_empty_pass_is_never_ok() -> None:
    text = monitor_text(cannot_judge_report())
    assert "not judged:\n  - 2026-11-24 all: 12 records, fewer than min_window 50" in text
    empty = MonitorReport(project="e", windows=(), segments=(), n_records=0, drift=AlarmReport((), (), 0, 0))
    assert monitor_text(empty).splitlines()[0] == "monitor e: CANNOT JUDGE: no window to judge"
    none = MonitorReport(project="e", windows=("2026-11-24",), segments=("all",), n_records=0,
                         drift=AlarmReport((), (), 0, 0))
    assert monitor_text(none).splitlines()[0] == "monitor e: CANNOT JUDGE: no records in the judged windows"


def test_control_characters_in_user_text_are_shown_not_obeyed() -> None:
    r = alarm_report()
    bad = Alarm(DriftTest("query_length", "geo=\x1b[31mred", "named", "a", "b", "ks", 0.001, 0.5, "x\ny"), 0.01)
    r2 = MonitorReport(project="p\x1b]0;t\x07", windows=r.windows, segments=r.segments, n_records=1,
                       drift=AlarmReport((bad,), (), 1, 0))
    for fmt in ("text", "md"):
        out = monitor_text(r2, fmt=fmt)
        assert "\x1b" not in out and "\x07" not in out and "\\x1b[31mred" in out
        assert "x\\x0ay" in out  # one value, one line


# ---- markdown --------------------------------------------------------------------------------------------


def _tables(md: str) -> list[list[list[str]]]:
    """Every table's body rows as cell texts, as a browser would show them."""
    html = MD.render(md)
    out = []
    for body in re.findall(r"<tbody>(.*?)</tbody>", html, re.S):
        out.append([[unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
                    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)])
    return out


def test_markdown_renders_the_alarm_table_with_user_values_as_themselves() -> None:
    md = monitor_text(alarm_report(), fmt="md")
    lines = md.splitlines()
    assert lines[0] == "## harness monitor `demo`: ALARM"
    assert lines[2].startswith("**ALARM**: 3 drift alarms, 1 SLO failure, 1 log-contract failure (of 120 tests")
    assert "geo=\\*eu_1\\*" in md and f"| {HOSTILE_SEGMENT} |" not in md  # md_text escaped it
    html = MD.render(md)
    assert "<em>" not in html and "<strong>eu" not in html  # no emphasis made of the segment's stars
    alarms, slo_fail, slo_nj, contracts = _tables(md)
    assert alarms[0] == ["query_length", HOSTILE_SEGMENT, "week-over-week", "2026-11-17 -> 2026-11-24", "ks", "0.4123",
                         "0.00042", "p50 12 -> 19 tokens; p90 30 -> 44"]
    assert [row[0] for row in alarms] == ["query_length", "query_language", "top1_score"]
    assert alarms[2][2] == "day-over-day + week-over-week"
    assert slo_fail == [["2026-11-24", "geo=eu", "latency total p95", "1.83", "1.5", "410", "fail",
                         "p95 over the limit"]]
    assert slo_nj[0][1] == HOSTILE_SEGMENT and slo_nj[0][6] == "not judged"
    assert contracts == [["2026-11-24", "new field", "user_agent", "n/a", "n/a", "fail", "not in the reference window"]]
    assert re.search(r"<code>query_embedding</code>: 3,500 of 84,021 records", html)
    assert HOSTILE_SEGMENT in unescape(re.sub(r"<[^>]+>", "", html.split("not judged</strong>")[1]))


# ---- JSON ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [alarm_report, ok_report, cannot_judge_report, slo_only_report])
def test_json_is_the_report_and_round_trips(build: Callable[[], MonitorReport]) -> None:
    r = build()
    out = monitor_json(r)
    text = json.dumps(out, allow_nan=False)
    back = json.loads(text)
    assert back == out
    assert back["status"] == r.status
    assert set(back) == {*r.to_json()}  # nothing invented
    assert len(back["drift"]["alarms"]) == len(r.drift.alarms) and back["drift"]["rule"] == RULE
    assert back["drift"]["n_tests"] == r.drift.n_tests


def test_json_has_no_nan() -> None:
    r = alarm_report()
    nan = MonitorReport(project="n", windows=r.windows, segments=r.segments, n_records=1, drift=r.drift,
                        series=(SeriesPoint("s", "all", "2026-11-24", float("nan"), 0),),
                        slo=(SLOResult("2026-11-24", "all", "latency total p99", float("inf"), None, 0, "not_judged"),))
    out = monitor_json(nan)
    json.dumps(out, allow_nan=False)
    assert out["series"][0]["value"] is None
    assert out["slo"][0]["threshold"] is None and out["slo"][0]["observed"] is None
    a = out["drift"]["alarms"][0]
    assert a["test"]["signal"] == "query_length" and a["p_adjusted"] == 0.00042 and a["test"]["effect"] == 0.4123


# ---- HTML ------------------------------------------------------------------------------------------------


class _Refs(HTMLParser):
    """Every URL-bearing attribute and every element, to find anything fetched from outside the file."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "action", "srcset", "poster", "data", "xlink:href", "formaction") and v:
                self.urls.append(v)


@pytest.mark.parametrize("build", [alarm_report, ok_report, cannot_judge_report, contract_only_report])
def test_html_is_self_contained(build: Callable[[], MonitorReport]) -> None:
    html = monitor_html(build())
    p = _Refs()
    p.feed(html)
    assert p.urls and all(u.startswith("#") for u in p.urls), p.urls  # in-page links only
    assert not {"link", "iframe", "img", "object", "embed"} & set(p.tags)
    assert not re.search(r"(https?:)?//[a-z0-9]", re.sub(r'xmlns="[^"]*"', "", html), re.I)
    assert "@import" not in html and "url(" not in html


def test_html_opens_on_the_verdict_and_marks_each_alarm() -> None:
    r = alarm_report()
    html = monitor_html(r)
    assert html.index('data-status="alarm"') < html.index('id="distributions"') < html.index('id="series"')
    assert "<b>ALARM</b>: 3 drift alarms" in html
    rows = re.findall(r'<tr class="bad">(.*?)</tr>', html, re.S)
    assert len(rows) == 3
    cells = [unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[0], re.S)]
    assert cells[:8] == ["query_length", HOSTILE_SEGMENT, "week-over-week", "2026-11-17 → 2026-11-24", "ks", "0.4123",
                         "0.00042", "p50 12 -> 19 tokens; p90 30 -> 44"]
    page = build_monitor_page(r)
    # one distribution per alarm, linked from its row; the alarm band on that signal and segment's chart
    assert [a.dist_anchor for a in page.alarms] == ["dist-0", "dist-1", "dist-2"]
    for a in page.alarms:
        fig = next(f for s in page.signals for f in s.figures if f.anchor == a.series_anchor)
        assert fig.segment == a.alarm.test.segment and fig.chart is not None
        bands = [b for b in fig.chart.bars if b.cls == "alarm"]
        assert len(bands) == 1 and a.alarm.test.current in bands[0].label
        # the band is drawn over the current window's point
        dot = next(d for d in fig.chart.dots if d.label.startswith(a.alarm.test.current + ":"))
        assert bands[0].x < dot.x < bands[0].x + bands[0].w and dot.cls == "alarm"
    # charts without an alarm carry no band; signals with one are open, the others closed
    unmarked = [f for s in page.signals for f in s.figures if not f.n_alarms]
    assert unmarked and all(f.chart is None or not any(b.cls == "alarm" for b in f.chart.bars) for f in unmarked)
    opened = {sig: bool(o) for o, sig in re.findall(r'<details class="signal" id="signal-\d+"( open)?>\s*<summary>'
                                                     r'<code>(\w+)</code>', html)}
    assert opened == {"query_length": True, "query_language": True, "top1_score": True, "latency_total": False}
    # the other sections are closed
    closed = re.findall(r'<details id="([\w-]+)" class="section"( open)?>', html)
    assert closed == [("slo", ""), ("contracts", ""), ("seasonal", ""), ("not-judged", ""), ("details", "")]


def test_html_series_share_an_axis_and_break_at_a_missing_window() -> None:
    page = build_monitor_page(alarm_report())
    top1 = next(s for s in page.signals if s.signal == "top1_score")
    ticks = {tuple(t.label for t in f.chart.yticks) for f in top1.figures if f.chart}
    assert len(ticks) == 1  # one y axis for the signal's small multiples
    all_fig = next(f for f in top1.figures if f.segment == "all")
    assert all_fig.chart is not None and len(all_fig.chart.lines) == 2 and len(all_fig.chart.dots) == 13
    xs = [t.label for t in all_fig.chart.xticks]
    assert xs[0] == "2026-11-11" and xs[-1] == "2026-11-24"
    # the y axis covers every value, on round ticks
    vals = [p.value for p in alarm_report().series if p.signal == "top1_score" and p.value is not None]
    lo, hi = float(all_fig.chart.yticks[0].label), float(all_fig.chart.yticks[-1].label)
    assert lo <= min(vals) and hi >= max(vals)


def test_html_distribution_bars_are_the_shares() -> None:
    r = alarm_report()
    page = build_monitor_page(r)
    f = page.distributions[1]
    assert f.dist.signal == "query_language" and [t.label for t in f.chart.yticks] == ["en", "de", "fr", "es"]
    left, _, right, _ = f.chart.plot
    top = float(f.chart.xticks[-1].label)
    ref = [b for b in f.chart.bars if b.cls == "base"]
    cur = [b for b in f.chart.bars if b.cls == "head"]
    assert [round(b.w / (right - left) * top, 3) for b in ref] == list(f.dist.reference)
    assert [round(b.w / (right - left) * top, 3) for b in cur] == list(f.dist.current)
    assert [n for _, n in f.chart.legend] == ["reference golden", "current 2026-11-24"]


def test_html_escapes_user_text() -> None:
    r = alarm_report()
    evil = "<script>alert(1)</script>"
    bad = Alarm(DriftTest("query_length", f"geo={evil}", "named", "a", "b", "ks", 0.001, 0.5, evil), 0.01)
    r2 = MonitorReport(project=evil, windows=r.windows, segments=("all", f"geo={evil}"), n_records=1,
                       drift=AlarmReport((bad,), (), 1, 0),
                       series=(SeriesPoint("query_length", f"geo={evil}", "2026-11-24", 1.0, 3),))
    html = monitor_html(r2)
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # the page's own
