"""An incident snapshot as one self-contained HTML file (inline CSS and SVG, no script needed, nothing fetched).

It opens on the verdict line and the moved signals of the first moved window; then the traffic by manifest
id per window (stacked shares) with each deployment marked; one small-multiple time series per moved signal
and segment (the value per window, the reference's value as a dashed line, the deployments as vertical
lines, the first moved window as a red band and every moved window's point in red); the segments hit;
the versions before and after with their artifact diff (a prompt's text diff coloured per line); what was
tested; the full deployment and live-id tables. Same stylesheet and chart conventions as the monitor's page
(:mod:`harness.report.monitor_html`: its figure record, ranges, ticks and legends are reused here).

Layout only: every number comes from the :class:`~harness.shadow.incident.IncidentSnapshot`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.report.html import Bar, Tick, _environment, _generator, _static
from harness.report.incident import (
    STATUS_WORD,
    by_manifest_text,
    first_moves,
    move_value,
    reference_text,
    scope_text,
    short_id,
    tested_text,
    when,
)
from harness.report.monitor import num, pval
from harness.report.monitor_html import (
    CHAR_PX,
    SERIES_H,
    SERIES_PLOT,
    SERIES_W,
    Dot,
    Figure,
    _legend_at,
    _nice_range,
    _short,
    _ticks_between,
)
from harness.shadow.incident import VOLUME, IncidentSnapshot, Move, SeriesPoint

__all__ = ["IncidentPage", "build_incident_page", "incident_html"]

TRAFFIC_W, TRAFFIC_H = 380, 190
TRAFFIC_PLOT = (46.0, 26.0, 368.0, 140.0)
MANIFEST_CLASSES = 6


@dataclass
class VLine:
    x: float
    cls: str
    label: str


@dataclass
class IncidentFigure(Figure):
    """A monitor :class:`Figure` with vertical marks (deployments, --since) and a dashed reference level."""

    vlines: list[VLine] = field(default_factory=list)
    ref_y: float | None = None
    ref_label: str = ""
    ref_lines: list[str] = field(default_factory=list)  # the volume's expected records per window (dashed)


@dataclass
class SeriesView:
    signal: str
    segment: str
    anchor: str
    chart: IncidentFigure
    first: Move | None


@dataclass
class DiffLine:
    cls: str
    text: str


@dataclass
class ChangeView:
    role: str
    change: str
    kind: str
    versions: str
    sha: str
    params: list[tuple[str, str, str]]
    diff: list[DiffLine]


@dataclass
class DiffView:
    before: str
    after: str
    note: str
    changes: list[ChangeView]


@dataclass
class IncidentPage:
    snap: IncidentSnapshot
    title: str
    status_word: str
    scope: str
    reference: str
    tested: str
    first: list[Move]
    later: list[Move]
    series: list[SeriesView]
    traffic: IncidentFigure | None
    manifests: list[tuple[str, str, str]]  # (class, short id, label)
    diffs: list[DiffView]
    counts: list[tuple[str, str, bool]]
    generated_by: str = "rag-harness"


def _x_of(n: int, left: float, right: float) -> tuple[float, Callable[[float], float]]:
    band = (right - left) / max(n, 1)

    def x(i: float) -> float:
        return round(left + band * (i + 0.5), 2)

    return band, x


def _xticks(snap: IncidentSnapshot, x: Callable[[float], float], left: float, right: float) -> list[Tick]:
    """Ticks at the window starts on a round clock step (1, 2, 3, 6, 12 h or whole days: as many as fit),
    labelled with the time of day, or the date at midnight."""
    n = len(snap.buckets)
    if n == 0:
        return []
    labels = [when(b.start, snap.timezone) for b in snap.buckets]
    fit = max(2, int((right - left) // (5 * CHAR_PX + 16)))
    minutes = [int(lb[11:13]) * 60 + int(lb[14:16]) for lb in labels]
    picks: list[int] = []
    for hours in (1, 2, 3, 6, 12, 24, 48, 96, 168):
        on_step = [i for i, m in enumerate(minutes) if m % (hours * 60) == 0
                   and (hours < 24 or (snap.buckets[i].start - snap.buckets[0].start).days % (hours // 24) == 0)]
        if on_step and len(on_step) <= fit:
            picks = on_step
            break
    if not picks:
        picks = [0]
    return [Tick(x(i), labels[i][5:10] if labels[i][11:16] == "00:00" else labels[i][11:16]) for i in picks]


def _vlines(snap: IncidentSnapshot, x: Callable[[float], float], band: float) -> list[VLine]:
    out: list[VLine] = []
    starts = [b.start for b in snap.buckets]
    for d in snap.deployments:
        if d.event not in ("canary", "rollout"):
            continue
        i = next((b.index for b in snap.buckets if b.start <= d.at < b.end), None)
        if i is None:
            continue
        b = snap.buckets[i]
        frac = (d.at - b.start) / (b.end - b.start) if b.end > b.start else 0.0
        out.append(VLine(round(x(i) - band / 2 + band * frac, 2), "deploy",
                         f"{d.event} of {short_id(d.manifest_id)} at {when(d.at, snap.timezone)} "
                         f"({d.share:.0%} of its window)"))
    if snap.since in starts:
        i = starts.index(snap.since)
        out.append(VLine(round(x(i) - band / 2, 2), "since", f"--since {when(snap.since, snap.timezone)}"))
    return out


def _polylines(points: list[tuple[float, float] | None]) -> list[str]:
    """SVG polyline point lists of consecutive known points: a None (no value in that window) breaks the line."""
    lines: list[str] = []
    run: list[str] = []
    for pt in [*points, None]:
        if pt is None:
            if run:
                lines.append(" ".join(run))
            run = []
        else:
            run.append(f"{pt[0]},{pt[1]}")
    return lines


def series_chart(snap: IncidentSnapshot, signal: str, segment: str, points: Sequence[SeriesPoint],
                 moves: Sequence[Move]) -> IncidentFigure:
    left, top, right, bottom = SERIES_PLOT
    n = len(snap.buckets)
    band, x = _x_of(n, left, right)
    by = {p.bucket: p for p in points}
    ref = by.get(-1)
    volume = signal == VOLUME
    vals = [v for p in points for v in (p.value, p.expected) if v is not None and math.isfinite(v)]
    if volume:
        vals.append(0.0)  # records per window: from zero
    lo, hi, step = _nice_range(min(vals), max(vals)) if vals else (0.0, 1.0, 0.25)

    def y(v: float) -> float:
        return round(bottom - (bottom - top) * (v - lo) / (hi - lo), 2)

    moved = {m.bucket: m for m in moves}
    bars: list[Bar] = []
    if snap.first_moved is not None:
        i = snap.first_moved
        bars.append(Bar(round(x(i) - band / 2, 2), top, round(max(band, 3.0), 2), bottom - top,
                        f"first moved window {snap.buckets[i].label}", "alarm"))
    lines = _polylines([(x(b.index), y(v)) if (v := getattr(by.get(b.index), "value", None)) is not None else None
                        for b in snap.buckets])
    dots: list[Dot] = []
    for b in snap.buckets:
        p = by.get(b.index)
        if p is None or p.value is None:
            continue
        m = moved.get(b.index)
        label = (f"{b.label}: {p.n:,} records" + (f", {p.expected:,.1f} expected" if p.expected is not None else "")
                 if volume else f"{b.label}: {num(p.value)} (n={p.n:,})")
        if m is not None:
            label += f"; moved, p adj {pval(m.p_adjusted)}"
        dots.append(Dot(x(b.index), y(p.value), label, "alarm" if m is not None else ""))
    ref_lines: list[str] = []
    if volume:  # the expected records per window (the reference's same slot, scaled), broken where unknown
        ref_lines = _polylines([(x(b.index), y(e)) if (e := getattr(by.get(b.index), "expected", None)) is not None
                                else None for b in snap.buckets])
    names = ["records", "moved", "expected"] if volume else ["value", "moved", "reference"]
    legend = [("line", names[0]), ("alarm", "moved"), ("refline", names[2])]
    stat = "records" if volume else moves[0].statistic if moves else "value"
    caption = (f"{signal} in {segment} per window ({stat}); {len(moved)} moved window{'s' * (len(moved) != 1)}")
    ref_y = y(ref.value) if ref is not None and ref.value is not None and not volume else None
    ref_label = ("expected: the reference's records at the same time of day, scaled to the window" if volume
                 else f"reference {num(ref.value) if ref else 'n/a'} (n={ref.n if ref else 0:,})")
    return IncidentFigure(SERIES_W, SERIES_H, SERIES_PLOT, bars, _xticks(snap, x, left, right),
                          _ticks_between(lo, hi, step, bottom, top), "window start", _short(f"{signal} ({stat})", 26),
                          legend, caption, lines=lines, dots=dots, legend_at=_legend_at(left, names),
                          edge_xticks=True, vlines=_vlines(snap, x, band), ref_y=ref_y, ref_label=ref_label,
                          ref_lines=ref_lines)


def traffic_chart(snap: IncidentSnapshot, classes: dict[str, str]) -> IncidentFigure | None:
    if not snap.buckets:
        return None
    left, top, right, bottom = TRAFFIC_PLOT
    band, x = _x_of(len(snap.buckets), left, right)
    bars: list[Bar] = []
    for b in snap.buckets:
        if not b.n:
            continue
        acc = 0.0
        for mid, c in sorted(b.by_manifest.items(), key=lambda kv: classes.get(kv[0], "")):
            share = c / b.n
            h = (bottom - top) * share
            bars.append(Bar(round(x(b.index) - band / 2, 2), round(bottom - (bottom - top) * acc - h, 2),
                            round(max(band - 0.6, 0.8), 2), round(h, 2),
                            f"{b.label}: {short_id(mid)} {c:,} of {b.n:,} ({share:.0%})", classes.get(mid, "m0")))
            acc += share
    names = [short_id(m)[:8] for m in classes]
    legend = [(cls, short_id(m)[:8]) for m, cls in classes.items()]
    return IncidentFigure(TRAFFIC_W, TRAFFIC_H, TRAFFIC_PLOT, bars, _xticks(snap, x, left, right),
                          _ticks_between(0.0, 1.0, 0.25, bottom, top), "window start", "share of records", legend,
                          f"records per window by the manifest id that served them ({len(snap.buckets)} windows)",
                          legend_at=_legend_at(left, names), edge_xticks=True, vlines=_vlines(snap, x, band))


def _diff_lines(text: str) -> list[DiffLine]:
    out = []
    for line in text.rstrip("\n").splitlines():
        cls = ("file" if line.startswith(("+++", "---")) else "hunk" if line.startswith("@@")
               else "add" if line.startswith("+") else "del" if line.startswith("-") else "")
        out.append(DiffLine(cls, line))
    return out


def build_incident_page(snap: IncidentSnapshot) -> IncidentPage:
    import json

    first, later = first_moves(snap)
    by_key: dict[tuple[str, str], list[SeriesPoint]] = {}
    for p in snap.series:
        by_key.setdefault((p.signal, p.segment), []).append(p)
    series = []
    for i, ((signal, segment), pts) in enumerate(by_key.items()):
        ms = [m for m in snap.moves if m.signal == signal and m.segment == segment]
        series.append(SeriesView(signal, segment, f"series-{i}", series_chart(snap, signal, segment, pts, ms),
                                 next((m for m in ms if m.bucket == snap.first_moved), None)))
    classes = {sp.manifest_id: f"m{i % MANIFEST_CLASSES}" for i, sp in enumerate(snap.spans)}
    labels = {v.manifest_id: (f"{v.role}: {v.name} ({v.source})" if v.found else f"{v.role}: manifest not found")
              for v in snap.versions}
    manifests = [(classes[sp.manifest_id], short_id(sp.manifest_id), labels.get(sp.manifest_id, ""))
                 for sp in snap.spans]
    diffs = []
    for d in snap.diffs:
        changes = [ChangeView(c.role, c.change, c.kind, f"{c.base_version or '—'} → {c.head_version or '—'}",
                              f"{(c.base_sha256 or '—')[:12]} → {(c.head_sha256 or '—')[:12]}",
                              [(k, json.dumps(v[0]), json.dumps(v[1])) for k, v in (c.params_diff or {}).items()],
                              _diff_lines(c.text_diff) if c.text_diff else [])
                   for c in d.changes]
        diffs.append(DiffView(short_id(d.before), short_id(d.after), d.note, changes))
    t = snap.tested
    counts = [
        (f"{len(snap.moves):,}", "moved tests", bool(snap.moves)),
        (f"{len({m.bucket for m in snap.moves}):,}", "moved windows", bool(snap.moves)),
        (f"{len(snap.segments_hit):,}", "segments hit", bool(snap.segments_hit)),
        (f"{len([d for d in snap.deployments if d.event in ('canary', 'rollout')]):,}", "deployments", False),
        (f"{t.n_tests:,}", "tests in the family", False),
        (f"{t.untestable:,}", "untestable", t.untestable > 0),
        (f"{len(t.blind_buckets):,}", "windows too thin to test", bool(t.blind_buckets)),
        (f"{sum(b.n for b in snap.buckets):,}", "records read", False),
    ]
    return IncidentPage(snap=snap, title=f"harness incident — {snap.project}", status_word=STATUS_WORD[snap.status],
                        scope=scope_text(snap), reference=reference_text(snap), tested=tested_text(snap),
                        first=first, later=sorted(later, key=lambda m: -abs(m.effect))[:15], series=series,
                        traffic=traffic_chart(snap, classes), manifests=manifests, diffs=diffs, counts=counts,
                        generated_by=_generator())


def incident_html(snap: IncidentSnapshot) -> str:
    """The incident snapshot as one self-contained HTML page."""
    page = build_incident_page(snap)
    env = _environment()
    return str(env.get_template("incident.html.j2").render(
        m=page, css=_static("report.css"), num=num, pval=pval, move_value=move_value, by_manifest=by_manifest_text,
        short_id=short_id, when=when))
