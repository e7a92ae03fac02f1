"""A monitor pass as one self-contained HTML file (inline CSS, JS and SVG; nothing fetched when opened).

It opens on the verdict and the alarm table (with the SLO and log-contract failures); then, for each alarm,
the drifted signal's distribution in its two windows side by side (grouped bars: reference and current
shares per bin or category); then a time series per signal and segment as small multiples, one shared
axis per signal, with each alarm's current window marked (and its reference window shaded) on that signal
and segment's chart. A signal's charts sit in a ``<details>`` that is open only when the signal has an
alarm, and a segment selector narrows every signal to one segment, so a pass over 12 signals x 7 segments
x 28 windows stays a few screens long. The full SLO and contract tables, the day-over-day moves set aside
as seasonality, what could not be judged, the sample sizes and the settings are in closed ``<details>``.

Layout only: every number comes from the :class:`~harness.monitor.model.MonitorReport`. The charts are the
report's labelled :class:`~harness.report.html.Chart` (ticks and a title on both axes, a legend), rendered
by the same Jinja2 environment and stylesheet as ``harness report``; the page works without JavaScript
(the selector is the only script).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.monitor.model import Distribution, MonitorReport, SeriesPoint
from harness.report.html import Bar, Chart, Tick, _environment, _generator, _nice_step, _num_label, _static
from harness.report.monitor import (
    STATUS_WORD,
    comparison_text,
    confirmed_text,
    group_comparison_text,
    num,
    pval,
    sample_lines,
    scope_text,
    tests_text,
    verdict_reason,
)
from harness.stats.drift import Alarm

__all__ = ["MonitorPage", "build_monitor_page", "monitor_html", "render_monitor_page"]

SERIES_W, SERIES_H = 300, 168
SERIES_PLOT = (46.0, 24.0, 288.0, 132.0)  # left, top, right, bottom
DIST_W = 340
DIST_LEFT, DIST_RIGHT, DIST_TOP = 122.0, 330.0, 26.0
DIST_ROW = 16
MAX_DIST_LABELS = 24
CHAR_PX = 5.6  # the width of a character of a 10 px tick label, about


# ---- view model -------------------------------------------------------------------------------------


@dataclass
class Dot:
    x: float
    y: float
    label: str
    cls: str = ""


@dataclass
class Figure(Chart):
    """A :class:`Chart` that may also draw lines (``lines``: SVG polyline point lists, broken where a window has
    no value) and dots; ``legend_at`` places each legend entry along the top; ``edge_xticks`` anchors the first
    and last x tick labels inside the plot (so no label sticks out of the chart at a phone's width)."""

    lines: list[str] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    legend_at: list[float] = field(default_factory=list)
    edge_xticks: bool = False


@dataclass
class AlarmRow:
    alarm: Alarm
    comparison: str
    series_anchor: str | None
    dist_anchor: str | None
    confirmed: str = ""  # a day-over-day alarm's confirming week-over-week test
    tests: str = ""  # the shown test and the others that agreed on this signal, segment and window


@dataclass
class SeriesFigure:
    segment: str
    anchor: str
    chart: Figure | None  # None: no window has a value
    n_alarms: int
    n_range: str  # records per window, e.g. "80-120"


@dataclass
class SignalSeries:
    signal: str
    anchor: str
    figures: list[SeriesFigure]
    n_alarms: int


@dataclass
class DistFigure:
    anchor: str
    dist: Distribution
    chart: Figure
    hidden_labels: int  # labels left out of the chart (the smallest shares) beyond MAX_DIST_LABELS


@dataclass
class MonitorPage:
    report: MonitorReport
    title: str
    status: str
    status_word: str
    reason: str
    scope: str
    alarms: list[AlarmRow]
    distributions: list[DistFigure]
    signals: list[SignalSeries]
    samples: list[tuple[str, str]]
    counts: list[tuple[str, str, bool]]  # (value, what, warn)
    generated_by: str = "rag-harness"


# ---- charts ------------------------------------------------------------------------------------------


def _nice_range(lo: float, hi: float) -> tuple[float, float, float]:
    """A range covering [lo, hi] whose ends are multiples of a 1, 2 or 5 step (and the step)."""
    if lo >= 0.0 and hi <= 1.0 and hi - lo > 0.2:
        return 0.0, 1.0, 0.25
    if hi <= lo:
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, 4)
    a, b = math.floor(lo / step) * step, math.ceil(hi / step) * step
    if b <= a:
        b = a + step
    return a, b, step


def _ticks_between(lo: float, hi: float, step: float, a: float, b: float) -> list[Tick]:
    """Ticks at every multiple of ``step`` from lo to hi, placed on the pixel span a .. b."""
    n = round((hi - lo) / step)
    return [Tick(round(a + (b - a) * i / n, 2), _num_label(lo + step * i)) for i in range(n + 1)]


def _legend_at(start: float, names: Sequence[str]) -> list[float]:
    out, x = [], start
    for name in names:
        out.append(round(x, 2))
        x += 14 + len(name) * CHAR_PX + 12
    return out


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def series_chart(signal: str, segment: str, windows: Sequence[str], points: dict[str, SeriesPoint],
                 domain: tuple[float, float, float], alarms: Sequence[Alarm]) -> Figure | None:
    """One signal in one segment over ``windows`` (a shared x axis): its value per window as a line with
    dots, each alarm's current window as a band (and its reference window shaded)."""
    if not any(p.value is not None for p in points.values()):
        return None
    left, top, right, bottom = SERIES_PLOT
    lo, hi, step = domain
    n = len(windows)
    band = (right - left) / n

    def x(i: int) -> float:
        return round(left + band * (i + 0.5), 2)

    def y(v: float) -> float:
        return round(bottom - (bottom - top) * (v - lo) / (hi - lo), 2)

    index = {w: i for i, w in enumerate(windows)}
    bars: list[Bar] = []
    cur_windows = {a.test.current for a in alarms}
    for w in sorted({a.test.reference for a in alarms} - cur_windows):
        if w in index:
            bars.append(Bar(round(x(index[w]) - band / 2, 2), top, round(band, 2), bottom - top,
                            f"reference window {w} of an alarm", "ref"))
    for a in alarms:
        if a.test.current in index:
            t = a.test
            bars.append(Bar(round(x(index[t.current]) - band / 2, 2), top, round(max(band, 2.0), 2), bottom - top,
                            f"ALARM {t.current}: {t.test} {comparison_text(a)} {t.reference} -> {t.current}, "
                            f"effect {_num_label(t.effect) if t.effect is not None else 'n/a'}, "
                            f"p adj {a.p_adjusted:.3g}", "alarm"))
    lines: list[str] = []
    run: list[str] = []
    dots: list[Dot] = []
    for i, w in enumerate(windows):
        p = points.get(w)
        if p is None or p.value is None or not math.isfinite(p.value):
            if run:
                lines.append(" ".join(run))
            run = []
            continue
        run.append(f"{x(i)},{y(p.value)}")
        dots.append(Dot(x(i), y(p.value), f"{w}: {p.value:.4g} (n={p.n:,})", "alarm" if w in cur_windows else ""))
    if run:
        lines.append(" ".join(run))
    longest = max(len(w) for w in windows)
    k = max(2, min(n, int((right - left) // (longest * CHAR_PX + 14))))
    picks = sorted({round(j * (n - 1) / (k - 1)) for j in range(k)}) if n > 1 else [0]
    xticks = [Tick(x(i), windows[i]) for i in picks]
    names = ["value"] + (["alarm"] if any(b.cls == "alarm" for b in bars) else []) + (
        ["reference"] if any(b.cls == "ref" for b in bars) else [])
    legend = [({"value": "line", "alarm": "alarm", "reference": "ref"}[nm], nm) for nm in names]
    n_alarms = f"; {len(alarms)} alarm{'s' * (len(alarms) != 1)}" if alarms else ""
    caption = (f"{signal} in {segment} per window ({sum(1 for p in points.values() if p.value is not None)} of "
               f"{n} windows with a value{n_alarms})")
    return Figure(SERIES_W, SERIES_H, SERIES_PLOT, bars, xticks, _ticks_between(lo, hi, step, bottom, top),
                  "window", _short(signal, 24), legend, caption, lines=lines, dots=dots,
                  legend_at=_legend_at(left, names), edge_xticks=True)


def distribution_chart(d: Distribution) -> tuple[Figure, int]:
    """A distribution in its two windows, one row per bin or category with the reference share beside the
    current one (horizontal bars, so long category names fit); beyond MAX_DIST_LABELS rows, the labels with
    the smallest shares are left out (and counted)."""
    rows = list(zip(d.labels, d.reference, d.current, strict=True))
    hidden = 0
    if len(rows) > MAX_DIST_LABELS:
        keep = set(sorted(range(len(rows)), key=lambda i: -max(rows[i][1], rows[i][2]))[:MAX_DIST_LABELS])
        hidden = len(rows) - len(keep)
        rows = [r for i, r in enumerate(rows) if i in keep]
    top = max((max(r, c) for _, r, c in rows), default=0.0)
    if top > 0:
        step = _nice_step(top, 4)
        hi = step * math.ceil(top / step - 1e-9)
    else:
        step, hi = 0.25, 1.0
    left, right, ptop = DIST_LEFT, DIST_RIGHT, DIST_TOP
    bottom = ptop + DIST_ROW * max(len(rows), 1)
    bh = (DIST_ROW - 3) / 2
    bars, yticks = [], []
    for i, (label, r, c) in enumerate(rows):
        yticks.append(Tick(round(ptop + DIST_ROW * i + DIST_ROW / 2, 2), _short(label, 19)))
        for k, (cls, name, v, nn) in enumerate((("base", "reference", r, d.n_reference),
                                                ("head", "current", c, d.n_current))):
            w = (right - left) * min(v, hi) / hi
            bars.append(Bar(left, round(ptop + DIST_ROW * i + 1.5 + k * bh, 2), round(max(w, 0.5), 2), round(bh, 2),
                            f"{label}: {name} {v:.1%} of {nn:,}", cls))
    names = [f"reference {d.reference_window}", f"current {d.current_window}"]
    caption = (f"{d.signal} in {d.segment}: share per {'bin' if d.kind == 'numeric' else 'category'}, "
               f"reference {d.reference_window} (n={d.n_reference:,}) vs current {d.current_window} "
               f"(n={d.n_current:,})")
    chart = Figure(DIST_W, int(bottom + 40), (left, ptop, right, bottom), bars,
                   _ticks_between(0.0, hi, step, left, right), yticks, "share of the window's records",
                   "", [("base", names[0]), ("head", names[1])], caption, grid="x",
                   legend_at=_legend_at(8.0, names))
    return chart, hidden


# ---- building -----------------------------------------------------------------------------------------


def _key(signal: str, segment: str, reference: str, current: str) -> tuple[str, str, str, str]:
    return signal, segment, reference, current


def build_monitor_page(report: MonitorReport) -> MonitorPage:
    """Everything the template shows, laid out from the report."""
    alarms = report.drift.alarms
    # the signals and segments in the order the report gives them (segments: the report's own order)
    signals: list[str] = []
    by_cell: dict[tuple[str, str], dict[str, SeriesPoint]] = {}
    for p in report.series:
        if p.signal not in signals:
            signals.append(p.signal)
        by_cell.setdefault((p.signal, p.segment), {})[p.window] = p
    windows = sorted({p.window for p in report.series} | {a.test.current for a in alarms if report.series})
    seg_order = {s: i for i, s in enumerate(report.segments)}
    alarms_at: dict[tuple[str, str], list[Alarm]] = {}
    for a in alarms:
        alarms_at.setdefault((a.test.signal, a.test.segment), []).append(a)

    series_anchor: dict[tuple[str, str], str] = {}
    views: list[SignalSeries] = []
    for si, signal in enumerate(signals):
        segs = sorted({seg for (sig, seg) in by_cell if sig == signal},
                      key=lambda s: (seg_order.get(s, len(seg_order)), s))
        vals = [p.value for seg in segs for p in by_cell[(signal, seg)].values()
                if p.value is not None and math.isfinite(p.value)]
        domain = _nice_range(min(vals), max(vals)) if vals else (0.0, 1.0, 0.25)
        figs = []
        for gi, seg in enumerate(segs):
            anchor = f"series-{si}-{gi}"
            series_anchor[(signal, seg)] = anchor
            pts = by_cell[(signal, seg)]
            cell_alarms = alarms_at.get((signal, seg), [])
            ns = [p.n for p in pts.values()]
            n_range = f"{min(ns):,}" if min(ns) == max(ns) else f"{min(ns):,}-{max(ns):,}"
            figs.append(SeriesFigure(seg, anchor, series_chart(signal, seg, windows, pts, domain, cell_alarms),
                                     len(cell_alarms), n_range))
        views.append(SignalSeries(signal, f"signal-{si}", figs, sum(f.n_alarms for f in figs)))

    dists: list[DistFigure] = []
    dist_anchor: dict[tuple[str, str, str, str], str] = {}
    for i, dist in enumerate(report.distributions):
        anchor = f"dist-{i}"
        dist_anchor.setdefault(_key(dist.signal, dist.segment, dist.reference_window, dist.current_window), anchor)
        chart, hidden = distribution_chart(dist)
        dists.append(DistFigure(anchor, dist, chart, hidden))

    rows = [AlarmRow(g.alarm, group_comparison_text(g), series_anchor.get((g.alarm.test.signal, g.alarm.test.segment)),
                     dist_anchor.get(_key(g.alarm.test.signal, g.alarm.test.segment, g.alarm.test.reference,
                                          g.alarm.test.current)),
                     confirmed_text(g.alarm), tests_text(g))
            for g in report.alarm_groups]
    d = report.drift
    counts = [
        (f"{len(d.alarms):,}", "drift alarms", bool(d.alarms)),
        (f"{len(report.slo_failures):,}", "SLO failures", bool(report.slo_failures)),
        (f"{len(report.contract_failures):,}", "contract failures", bool(report.contract_failures)),
        (f"{d.n_tests:,}", "tests in the family", False),
        (f"{d.untestable:,}", "untestable", d.untestable > 0),
        (f"{len(d.seasonal):,}", "seasonal moves set aside", False),
        (f"{report.n_records:,}", "records", report.n_records == 0),
    ]
    status = report.status
    return MonitorPage(report=report, title=f"harness monitor — {report.project}", status=status,
                       status_word=STATUS_WORD[status], reason=verdict_reason(report), scope=scope_text(report),
                       alarms=rows, distributions=dists, signals=views, samples=sample_lines(report.samples),
                       counts=counts, generated_by=_generator())


# ---- rendering ----------------------------------------------------------------------------------------


def render_monitor_page(page: MonitorPage) -> str:
    env = _environment()
    return str(env.get_template("monitor.html.j2").render(m=page, css=_static("report.css"), num=num, pval=pval))


def monitor_html(report: MonitorReport) -> str:
    """The monitor pass as one self-contained HTML page."""
    return render_monitor_page(build_monitor_page(report))
