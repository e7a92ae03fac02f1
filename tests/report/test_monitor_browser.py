"""The monitor's HTML report in a real headless Chromium (tests/report/browser.py: the DevTools protocol on a
pipe), at a desktop width (1400 px) and a phone's (400 px): nothing makes the page scroll sideways, the page
stays a few screens long with 12 signals x 7 segments x 28 windows, every chart has its axis titles, ticks and
legend, each alarm's band is drawn on its signal and segment's chart, and the segment selector works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.monitor.model import Distribution, MonitorReport, SeriesPoint, SLOResult
from harness.report.monitor_html import monitor_html
from harness.stats.drift import Alarm, AlarmReport, DriftTest
from tests.report.browser import OVERFLOW, Page
from tests.report.test_monitor_faces import alarm_report, days, dist_for

# every visible chart: its axis titles, how many ticks it labels, its legend, and whether it marks an alarm
CHARTS = """[...document.querySelectorAll("svg.chart")].filter(s => s.checkVisibility()).map(s => ({
  fig: s.closest("figure").id, seg: s.closest("figure").getAttribute("data-segment"),
  titles: [...s.querySelectorAll("text.axis-title")].map(t => t.textContent),
  ticks: s.querySelectorAll("text.tick").length, legend: [...s.querySelectorAll("text.legend")].map(t => t.textContent),
  alarm: [...s.querySelectorAll("rect.alarm:not(.key)")].map(r => r.getBoundingClientRect().width),
  lines: s.querySelectorAll("polyline.series").length,
  width: s.getBoundingClientRect().width}))"""

SIGNALS = [f"signal_{i:02d}" for i in range(12)]
SEGMENTS = ("all", *(f"geo={g}" for g in ("eu", "us", "apac")), *(f"device={d}" for d in ("mobile", "desktop", "tv")))


def many_report() -> MonitorReport:
    """12 signals x 7 segments x 28 daily windows, three alarms on two signals."""
    windows = days("2026-11-28", 28)
    series = []
    for si, sig in enumerate(SIGNALS):
        for gi, seg in enumerate(SEGMENTS):
            for wi, w in enumerate(windows):
                v = (0.2 + 0.02 * si + 0.01 * gi + 0.03 * (wi % 7)) if si % 2 else 120 + 10 * si + 8 * (wi % 7) + gi
                if (sig, seg, w) >= ("signal_03", "geo=eu", "2026-11-27") and (sig, seg) == ("signal_03", "geo=eu"):
                    v = 0.9
                series.append(SeriesPoint(sig, seg, w, v, 400 + wi))
    a1 = Alarm(DriftTest("signal_03", "geo=eu", "week_over_week", "2026-11-20", "2026-11-27", "psi", 1e-9, 0.61,
                         "bin (0.8, 1]: 3% -> 58%"), 2.4e-7)
    a2 = Alarm(DriftTest("signal_03", "geo=eu", "week_over_week", "2026-11-21", "2026-11-28", "psi", 1e-8, 0.58,
                         "bin (0.8, 1]: 3% -> 55%"), 1.2e-6)
    a3 = Alarm(DriftTest("signal_08", "device=tv", "golden", "golden", "2026-11-28", "ks", 1e-4, 0.22,
                         "p50 131 -> 160"), 0.009)
    cats = Distribution("signal_08", "device=tv", "golden", "2026-11-28", "categorical",
                        tuple(f"category number {i} with a long name" for i in range(30)),
                        tuple(1 / 30 for _ in range(30)), tuple((2 if i < 10 else 0.5) / 30 for i in range(30)),
                        300, 412)
    slo = tuple(SLOResult(w, seg, lim, 1.5, 1.1, 400, "pass") for w in windows for seg in SEGMENTS
                for lim in ("latency total p50", "latency total p95", "error_rate"))
    return MonitorReport(project="big", windows=windows[-14:], segments=SEGMENTS, n_records=1_000_000,
                         drift=AlarmReport((a1, a2, a3), (), 12 * 7 * 14 * 3, 12),
                         series=tuple(series), distributions=(dist_for(a1), dist_for(a2), cats), slo=slo,
                         settings={"alpha": 0.05, "seed": 0})



@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("monitor-html")
    out = {}
    for name, report in (("small", alarm_report()), ("many", many_report())):
        out[name] = folder / f"{name}.html"
        out[name].write_text(monitor_html(report), "utf-8")
    return out


SHOTS = Path("/tmp") / "monitor-report-shots"


def _shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    w, h = page.screenshot(path, max_height=6000)
    assert w > 0 and h > 0 and path.stat().st_size > 10_000
    return path


@pytest.mark.parametrize("width", [1400, 400])
def test_the_small_report_fits_and_marks_every_alarm(pages: dict[str, Path], page: Page, width: int) -> None:
    page.open(pages["small"].as_uri(), width)
    assert page.eval("document.documentElement.getAttribute('data-ready')") == "1"
    m = page.eval(OVERFLOW)
    assert m["width"] == width and m["scroll_width"] <= width and m["overflowing"] == [], m
    charts = page.eval(CHARTS)
    series = [c for c in charts if c["fig"].startswith("series-")]
    dists = [c for c in charts if c["fig"].startswith("dist-")]
    assert len(dists) == 3
    # three signals have an alarm (open), latency_total none (closed): 3 signals x 3 segments drawn
    assert len(series) == 9
    for c in series:
        assert c["titles"][0] == "window" and c["titles"][1] in ("query_length", "query_language", "top1_score")
        assert c["ticks"] >= 4 and c["legend"][0] == "value" and c["lines"] >= 1
        assert c["width"] <= width - 20
    for c in dists:
        assert c["titles"] == ["share of the window's records"] and c["ticks"] >= 5
        assert c["legend"][0].startswith("reference ") and c["legend"][1].startswith("current ")
    marked = {(c["fig"], c["seg"]) for c in series if c["alarm"]}
    assert {seg for _, seg in marked} == {"geo=*eu_1*", "all", "geo=eu"}
    assert all(w > 3 for c in series for w in c["alarm"])  # a band you can see, at either width
    # the verdict is the first thing on the page
    top = page.eval("document.querySelector('.verdict').getBoundingClientRect().top")
    assert top < 260
    print(f"small report at {width}px: {m['height']} px high")
    _shot(page, f"small-{width}")
    # the overflow probe sees a page that does scroll sideways (so its empty list above means something)
    page.eval("document.querySelector('main')"
              ".insertAdjacentHTML('beforeend', '<div id=wide style=\"width:1600px\">x</div>')")
    assert "DIV#wide." in page.eval(OVERFLOW)["overflowing"]


@pytest.mark.parametrize("width", [1400, 400])
def test_many_signals_stay_a_few_screens(pages: dict[str, Path], page: Page, width: int) -> None:
    page.open(pages["many"].as_uri(), width)
    m = page.eval(OVERFLOW)
    assert m["scroll_width"] <= width and m["overflowing"] == [], m
    # 12 x 7 charts, of which only signal_03's and signal_08's 14 are open (the others are a click away)
    n_svg = page.eval("document.querySelectorAll('figure.series svg.chart').length")
    assert n_svg == 12 * 7
    charts = page.eval(CHARTS)
    series = [c for c in charts if c["fig"].startswith("series-")]
    assert len(series) == 14
    assert {c["seg"] for c in series if c["alarm"]} == {"geo=eu", "device=tv"}
    assert [len(c["alarm"]) for c in series if c["seg"] == "geo=eu" and c["alarm"]] == [2]
    limit = 6000 if width == 1400 else 16000
    assert m["height"] < limit, m
    print(f"many-signal report at {width}px: {m['height']} px high")
    _shot(page, f"many-{width}")

    # the segment selector narrows every signal to one segment
    page.eval("const s = document.getElementById('segment-filter'); s.value = 'device=tv';"
              "s.dispatchEvent(new Event('change'))")
    shown = page.eval(CHARTS)
    assert {c["seg"] for c in shown if c["fig"].startswith("series-")} == {"device=tv"}
    assert len([c for c in shown if c["fig"].startswith("series-")]) == 2
    narrowed = page.eval(OVERFLOW)
    assert narrowed["height"] < m["height"]
    # everything open: still nothing sideways (wide tables scroll in their own box)
    page.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
    m = page.eval(OVERFLOW)
    assert m["scroll_width"] <= width and m["overflowing"] == [], m


def test_a_link_to_a_hidden_chart_opens_it(pages: dict[str, Path], page: Page) -> None:
    page.open(pages["many"].as_uri() + "#series-0-0", 1400)
    assert page.eval("document.getElementById('signal-0').open")
    # the page scrolls there (smoothly: wait for it), below the sticky header
    state = page.eval("""new Promise(done => { const t0 = Date.now(); (function poll() {
      const top = document.getElementById('series-0-0').getBoundingClientRect().top;
      if ((scrollY > 0 && Math.abs(top - (window.lastTop ?? -1)) < 0.5) || Date.now() - t0 > 3000)
        done(JSON.stringify([top, scrollY, document.querySelector('header.top').getBoundingClientRect().bottom]));
      else { window.lastTop = top; setTimeout(poll, 100); } })(); })""")
    top, scrolled, header = json.loads(state)
    assert scrolled > 0 and header <= top < header + 100, (top, scrolled, header)
