"""The HTML report: one self-contained file (inline CSS, JS and SVG; nothing fetched when opened).

It opens on what a reader came for: the summary (counts, and the gate verdict when one is given), what
changed against the base (changed artifacts, the significant metric and segment deltas, the cases that
flipped, per-case charts) and one page of the case table; everything else (all deltas, per-metric
distributions, segments, failing-case details, run details) sits in closed ``<details>``, opened by a
link into it. Every chart is labelled: axes with ticks and titles, and a base/head legend when there
is a diff. Wide tables scroll inside their own box, so the page never scrolls sideways, down to a phone's
width.

Static parts are rendered here with Jinja2, autoescaped, including every row of the case table (so it
works without JavaScript). A small script pages, sorts and filters that table and draws the
base-vs-head scatter from the data embedded as JSON in a ``<script type="application/json">`` tag
(``<``, ``>`` and ``&`` escaped as ``\\u003c`` etc., so no value can close the tag); it builds each
page as one string, so a report of 1,000 cases sorts and filters instantly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.diff import ArtifactChange, CaseFlip, Diff, MetricDelta
from harness.gates import GateResult, Verdict
from harness.report.export import column_segment_sizes, main_metrics, table_cache_hits
from harness.report.failing import (
    CaseFailure,
    FailureJudge,
    FailurePolicy,
    primary_retrieval_metric,
)
from harness.storage import Layout
from harness.types import CaseOutput, CorpusDoc, GoldenCase, MetricSummary, RunResult, Score

if TYPE_CHECKING:
    import numpy as np

    from harness.columns import RunColumns
    from harness.runs import RunTable, RunTableHeader

HIST_BINS = 10
MAX_SEGMENT_BARS = 24
SNIPPET_CHARS = 180
MAX_CORPUS_BYTES = 64 << 20  # loading validates every document: about 3 s for 64 MB
MAX_LISTED_CASES = 5_000
REPORT_MAX_FLIPS = 1_000  # flips a report of a run larger than MAX_LISTED_CASES lists (the largest)
"""Rows of the case table of a stored run's report (:func:`build_report_table`): a run with more lists its
failing cases first (in run order), then the rest worst first on the headline metric, and says on the page
how many it left out and where all of them are."""


# ---- view model -------------------------------------------------------------------------------------


@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    label: str
    cls: str = ""


@dataclass
class Tick:
    at: float  # the position on its axis, in SVG px
    label: str


@dataclass
class Chart:
    """An SVG chart with labelled axes: bars inside the plot area (left, top, right, bottom), ticks on both
    axes, a title per axis and a legend (one entry per series, by CSS class)."""

    width: int
    height: int
    plot: tuple[float, float, float, float]
    bars: list[Bar]
    xticks: list[Tick]
    yticks: list[Tick]
    xlabel: str
    ylabel: str
    legend: list[tuple[str, str]]  # (css class, name)
    caption: str = ""
    grid: str = "y"  # grid lines across the plot at the y ticks ("y") or the x ticks ("x")


@dataclass
class MetricRow:
    name: str
    mean: float | None
    n: int
    n_unscored: int
    greater_is_better: bool
    hist: Chart | None
    segments: Chart | None
    label: str | None = None  # how a diagnostic is named (MetricSummary.label), else by its name
    base_mean: float | None = None


@dataclass
class SegmentTable:
    tag: str
    rows: list[tuple[str, int, list[float | None]]]


@dataclass
class Passage:
    rank: int | None
    doc_id: str
    score: float | None
    grade: int | None
    mark: str  # "rel", "nonrel" (judged below the relevance level) or "unjudged"
    title: str = ""
    snippet: str = ""


@dataclass
class Explanation:
    metric: str
    value: float | None
    text: str
    bad: bool


@dataclass
class FailingCase:
    anchor: str
    case_id: str
    query: str
    tags: list[str]
    reasons: list[str]
    error: str | None
    answer: str | None
    passages: list[Passage]
    missed: list[Passage]
    explanations: list[Explanation]
    unscored: list[tuple[str, list[str]]]
    flip: CaseFlip | None = None


@dataclass
class Forest:
    """A delta with its CI on a symmetric axis around 0 (per row: the point is where 0 falls)."""

    width: int
    zero: float
    lo: float
    hi: float
    point: float
    cls: str


@dataclass
class DeltaRow:
    d: MetricDelta
    mark: str
    cls: str
    forest: Forest | None
    size: int | None = None


@dataclass
class ArtifactView:
    a: ArtifactChange
    params: list[tuple[str, Any, Any]]
    diff_lines: list[tuple[str, str]]


@dataclass
class FlipView:
    f: CaseFlip
    anchor: str | None
    moves: list[tuple[str, float | None, float | None]]


@dataclass
class DiffView:
    diff: Diff
    base: RunResult | RunTableHeader
    how: str | None
    artifacts: list[ArtifactView]
    metrics: list[DeltaRow]
    segments: list[DeltaRow]
    flips: list[FlipView]
    n_significant_segments: int
    family: str = ""  # what p adj was corrected over: the Diff's one family (harness.report.text.family_text)
    metric_axis: list[Tick] = field(default_factory=list)  # the shared axis of the forest plots in each table
    segment_axis: list[Tick] = field(default_factory=list)

    @property
    def significant(self) -> list[DeltaRow]:
        return [r for r in self.metrics if r.d.significant]

    @property
    def significant_segments(self) -> list[DeltaRow]:
        return [r for r in self.segments if r.d.significant]

    def flip_count(self, direction: str) -> int:
        return sum(1 for f in self.flips if f.f.direction == direction)


@dataclass
class GateView:
    """The gate's verdict as the report shows it: failed checks first, every check on request."""

    passed: bool
    base_run: str | None
    failed: list[GateResult]
    skipped: list[GateResult]
    results: list[GateResult]


@dataclass(frozen=True)
class StoredRunFacts:
    """What the page shows of a stored run read by columns (``Report.run``): its ids and, as ``outputs``,
    a stand-in whose length is the run's case count."""

    run_id: str
    manifest_id: str
    created_at: str
    manifest_path: str | None
    outputs: range


@dataclass
class Report:
    run: RunResult | StoredRunFacts
    title: str
    manifest_name: str
    environment: list[tuple[str, str]]
    packages: list[tuple[str, str]]
    counts: list[tuple[str, str]]
    stages: list[tuple[str, float, float | None, float | None, str]]
    metrics: list[MetricRow]
    validators: list[MetricRow]
    segment_metrics: list[str]
    segment_tables: list[SegmentTable]
    failing_definition: str
    n_failing: int
    failing: list[FailingCase]
    failing_truncated: int
    corpus_note: str
    diff: DiffView | None
    data_json: str
    cases: list[dict[str, Any]]  # the case table's rows (also in data_json): every row is in the HTML, for no-JS
    case_metrics: list[str]
    delta_metric: str | None  # the diff metric of the case table's delta column, as the script starts
    gate: GateView | None = None
    page_size: int = 25
    generated_by: str = "rag-harness"
    cases_left_out: int = 0  # rows of the run not in the case table (MAX_LISTED_CASES)
    cases_listed_how: str = ""  # which rows the table lists, when it leaves some out


# ---- charts ------------------------------------------------------------------------------------------


def _domain(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _nice_step(top: float, most: int = 4) -> float:
    """The smallest 1, 2 or 5 times a power of ten that covers ``top`` in at most ``most`` steps."""
    if top <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(top / most))
    return next(power * m for m in (1, 2, 5, 10) if top / (power * m) <= most)


def _num_label(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-9 else "0"


def _count_axis(top: int, y0: float, y1: float) -> tuple[float, list[Tick]]:
    """Integer ticks from 0 to at least ``top`` on the vertical span y0 (top) .. y1 (bottom)."""
    step = max(1, int(_nice_step(max(top, 1))))
    ymax = max(step, math.ceil(max(top, 1) / step) * step)
    ticks = [Tick(round(y1 - (y1 - y0) * v / ymax, 2), str(v)) for v in range(0, ymax + 1, step)]
    return float(ymax), ticks


def _value_ticks(lo: float, hi: float, a: float, b: float) -> list[Tick]:
    """Five ticks over [lo, hi] placed on the pixel span a .. b."""
    return [Tick(round(a + (b - a) * i / 4, 2), _num_label(lo + (hi - lo) * i / 4)) for i in range(5)]


HIST_W, HIST_H = 300, 170
HIST_PLOT = (42.0, 24.0, 290.0, 132.0)  # left, top, right, bottom


def histogram(values: Sequence[float] | np.ndarray, metric: str = "value",
              base: Sequence[float] | np.ndarray | None = None, bins: int = HIST_BINS) -> Chart | None:
    """Counts of per-case values in equal bins over [0, 1] (or the values' range for unbounded metrics);
    with ``base``, the base run's counts beside the head's in each bin. The values may be a list or a numpy
    array (a stored run's column): binned with the same float arithmetic either way."""
    import numpy as np

    if not len(values) and (base is None or not len(base)):
        return None
    head_arr = np.asarray(values, dtype=np.float64)
    base_arr = None if base is None else np.asarray(base, dtype=np.float64)
    both = head_arr if base_arr is None or not len(base_arr) else np.concatenate([base_arr, head_arr])
    lo, hi = _domain([float(both.min()), float(both.max())])
    span = hi - lo
    series: list[tuple[str, np.ndarray]] = ([("head", head_arr)] if base_arr is None
                                            else [("base", base_arr), ("head", head_arr)])
    counts = {}
    for name, vals in series:
        at = np.clip(np.trunc((vals - lo) / span * bins), 0, bins - 1).astype(np.int64)
        counts[name] = [int(x) for x in np.bincount(at, minlength=bins)]
    left, top, right, bottom = HIST_PLOT
    ymax, yticks = _count_axis(max(max(c) for c in counts.values()), top, bottom)
    bw = (right - left) / bins
    sw = (bw - 2) / len(series)
    bars = []
    for i in range(bins):
        a, b = lo + span * i / bins, lo + span * (i + 1) / bins
        rng = f"[{a:.3g}, {b:.3g}{']' if i == bins - 1 else ')'}"
        for k, (name, _) in enumerate(series):
            n = counts[name][i]
            h = (bottom - top) * n / ymax
            bars.append(Bar(x=round(left + i * bw + 1 + k * sw, 2), y=round(bottom - h, 2),
                            w=round(max(sw - 0.5, 0.5), 2), h=round(h, 2),
                            label=f"{name} {rng}: {n} case{'s' * (n != 1)}", cls=name))
    legend = [] if base is None else [("base", "base"), ("head", "head")]
    caption = f"histogram of {metric} per case: {len(values)} scored" + ("" if base is None else f" (base {len(base)})")
    return Chart(HIST_W, HIST_H, HIST_PLOT, bars, _value_ticks(lo, hi, left, right), yticks, f"{metric} per case",
                 "cases", legend, caption)


def segment_chart(points: Sequence[tuple[str, float | None, float | None]], metric: str = "value",
                  with_base: bool = False) -> Chart | None:
    """One horizontal bar per segment (tag=value): its mean of ``metric`` in head (and base)."""
    points = [p for p in points if p[2] is not None or (with_base and p[1] is not None)][:MAX_SEGMENT_BARS]
    if not points:
        return None
    vals = [float(v) for _, b, h in points for v in ((b, h) if with_base else (h,)) if v is not None]
    lo, hi = _domain(vals)
    lo = min(lo, 0.0)
    span = (hi - lo) or 1.0
    row = 16 if with_base else 13
    left, top, right = 118.0, 24.0, 290.0
    bottom = top + row * len(points)
    series = [("base", 1), ("head", 2)] if with_base else [("head", 2)]
    bh = (row - 3) / len(series)
    bars = []
    yticks = []
    for i, (seg, b, h) in enumerate(points):
        yticks.append(Tick(round(top + row * i + row / 2, 2), seg if len(seg) <= 20 else seg[:19] + "…"))
        for k, (name, idx) in enumerate(series):
            v = (b, h)[idx - 1]
            if v is None:
                continue
            w = (right - left) * (v - lo) / span
            bars.append(Bar(x=left, y=round(top + row * i + 1.5 + k * bh, 2), w=round(max(w, 0.5), 2), h=round(bh, 2),
                            label=f"{seg}: {name} {v:.4f}", cls=name))
    legend = [("base", "base"), ("head", "head")] if with_base else []
    return Chart(HIST_W, int(bottom + 38), (left, top, right, bottom), bars, _value_ticks(lo, hi, left, right),
                 yticks, f"mean {metric}", "", legend, f"mean {metric} per segment ({len(points)} segments)", grid="x")


def forest(d: MetricDelta, cls: str, scale: float, width: int = 140) -> Forest | None:
    """The delta and its CI on the table's shared axis [-scale, +scale] (0 in the middle)."""
    if d.delta is None or d.ci_low is None or d.ci_high is None:
        return None
    half = width / 2

    def x(v: float) -> float:
        return round(half + max(-1.0, min(1.0, v / scale)) * (half - 6), 2)

    return Forest(width=width, zero=half, lo=x(d.ci_low), hi=x(d.ci_high), point=x(d.delta), cls=cls)


def forest_scale(deltas: Sequence[MetricDelta]) -> float:
    """One axis for a table of forest plots: a nice bound over every delta and CI end."""
    m = max((abs(v) for d in deltas for v in (d.delta, d.ci_low, d.ci_high) if v is not None and math.isfinite(v)),
            default=0.0)
    return _nice_step(m, 1) if m > 0 else 1.0


def forest_axis(scale: float, width: int = 140) -> list[Tick]:
    half = width / 2
    return [Tick(round(half + f * (half - 6), 2), ("+" if f > 0 else "") + _num_label(f * scale))
            for f in (-1.0, 0.0, 1.0)]


# ---- corpus --------------------------------------------------------------------------------------------


def load_run_corpus(run: RunResult | RunTableHeader, layout: Layout | None
                    ) -> tuple[Mapping[str, CorpusDoc] | None, str]:
    """The corpus the run was judged against, for titles and snippets (doc id -> document): the passage store
    of its pin if the project has one (read by id, whatever the corpus's size), else its snapshot in the
    store, else the file the run's manifest names if it still matches the pin (those two only up to
    :data:`MAX_CORPUS_BYTES`). Never fails: returns (None, why) instead."""
    from harness.corpus import StoredCorpus, store_path
    from harness.golden import load_corpus
    from harness.hashing import sha256_path
    from harness.manifest import resolve_content
    from harness.snapshots import blob_path

    art = run.manifest.artifacts.get("corpus")
    if art is None:
        return None, "The run's manifest has no corpus artifact: showing document ids only."
    if layout is not None and art.sha256:
        stored = store_path(layout.corpus_store, art.sha256)
        if stored.is_file():
            try:
                return StoredCorpus(stored), f"Titles and snippets from the passage store {stored}."
            except Exception:
                pass  # damaged: the files below, else ids only (harness cache check names it)
    candidates: list[tuple[Path, str]] = []
    if layout is not None:
        snap = blob_path(layout, art)
        if snap is not None and snap.is_file():
            candidates.append((snap, "snapshot"))
    if run.manifest_path and art.path is not None:
        mpath = Path(run.manifest_path)
        if mpath.exists():
            candidates.append((resolve_content(art, mpath.parent), "manifest"))
    for path, source in candidates:
        try:
            size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*"))
            if size > MAX_CORPUS_BYTES:
                return None, (f"Corpus {path} is larger than {MAX_CORPUS_BYTES >> 20} MB, not loaded: "
                              "showing document ids only.")
            if source == "manifest" and art.sha256 and sha256_path(path) != art.sha256:
                continue
            docs = load_corpus(path)
        except Exception:
            continue
        return {d.id: d for d in docs}, f"Titles and snippets from {path}."
    return None, "Corpus not available (neither a snapshot nor the pinned file): showing document ids only."


# ---- building -----------------------------------------------------------------------------------------


def _generator() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"rag-harness {version('rag-harness')}"
    except PackageNotFoundError:
        return "rag-harness"


def _anchor(i: int) -> str:
    return f"case-{i}"


def _grade_mark(case: GoldenCase | None, doc_id: str, level: int) -> tuple[int | None, str]:
    grade = case.relevance.get(doc_id) if case is not None else None
    if grade is None:
        return None, "unjudged"
    return grade, "rel" if grade >= level else "nonrel"


def _snippet(doc: CorpusDoc | None) -> tuple[str, str]:
    if doc is None:
        return "", ""
    text = re.sub(r"\s+", " ", doc.text).strip()
    return doc.title, text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"


def _env_rows(run: RunResult | RunTableHeader) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    env = dict(run.environment)
    pkgs = env.pop("packages", {}) or {}
    rows = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in env.items()]
    packages = [(k, str(v)) for k, v in pkgs.items() if v] if isinstance(pkgs, dict) else []
    return rows, packages


def _failing_case(i: int, out: CaseOutput, case: GoldenCase | None, failure: CaseFailure, level: int,
                  docs: Mapping[str, CorpusDoc] | None, n_passages: int,
                  scores: dict[str, list[tuple[str, float | None, str | None]]]) -> FailingCase:
    passages = []
    for pos, d in enumerate(out.ranking[:n_passages], 1):
        grade, mark = _grade_mark(case, d.doc_id, level)
        title, snip = _snippet(docs.get(d.doc_id) if docs else None)
        passages.append(Passage(pos, d.doc_id, d.score, grade, mark, title, snip))
    shown = {p.doc_id for p in passages}
    ranks = {d.doc_id: (r, d.score) for r, d in enumerate(out.ranking, 1)}
    missed = []
    for doc_id, grade in sorted((case.relevance if case else {}).items(), key=lambda kv: (-kv[1], kv[0])):
        if grade < level or doc_id in shown:
            continue
        found = ranks.get(doc_id)
        title, snip = _snippet(docs.get(doc_id) if docs else None)
        missed.append(Passage(found[0] if found else None, doc_id, found[1] if found else None, grade, "rel", title,
                              snip))
    expl: list[Explanation] = []
    unscored: dict[str, list[str]] = {}
    for m, v, t in scores.get(failure.case_id, []):
        if v is None:
            unscored.setdefault(t or "no reason given", []).append(m)
        elif t or m in failure.metrics:
            expl.append(Explanation(m, v, t or "", m in failure.metrics))
    expl.sort(key=lambda e: not e.bad)
    return FailingCase(
        anchor=_anchor(i), case_id=failure.case_id, query=case.query if case else "", tags=case.segments() if case
        else [], reasons=list(failure.reasons), error=out.error.message if out.error else None, answer=out.answer,
        passages=passages, missed=missed, explanations=expl, unscored=sorted(unscored.items()),
    )


def _delta_cls(d: MetricDelta) -> str:
    if d.direction == "regressed":
        return "bad" if d.significant else "bad-noise"
    if d.direction == "improved":
        return "good" if d.significant else "good-noise"
    return ""


def _diff_lines(text: str | None) -> list[tuple[str, str]]:
    out = []
    for line in (text or "").splitlines():
        cls = ("file" if line.startswith(("+++", "---")) else "add" if line.startswith("+")
               else "del" if line.startswith("-") else "hunk" if line.startswith("@@") else "")
        out.append((cls, line))
    return out


def _diff_view(diff: Diff, base: RunResult | RunTableHeader, how: str | None, anchors: dict[str, str]) -> DiffView:
    from harness.report.text import delta_mark, family_text

    quality = [d for d in diff.metrics if d.role == "quality"]
    seg_quality = [d for d in diff.segments if d.role == "quality"]
    mscale, sscale = forest_scale(quality), forest_scale(seg_quality)

    def row(d: MetricDelta, scale: float, size: int | None = None) -> DeltaRow:
        cls = _delta_cls(d)
        return DeltaRow(d=d, mark=delta_mark(d), cls=cls, forest=forest(d, cls, scale), size=size)

    metrics = [row(d, mscale) for d in quality]
    segs = [row(d, sscale, diff.segment_sizes.get(d.segment)) for d in seg_quality]
    segs.sort(key=lambda r: (not r.d.significant, r.d.segment, r.d.metric))
    arts = [ArtifactView(a, [(k, v[0], v[1]) for k, v in (a.params_diff or {}).items()], _diff_lines(a.text_diff))
            for a in diff.artifacts]
    flips = [FlipView(f, anchors.get(f.case_id), [(m, b, h) for m, (b, h) in f.deltas.items()]) for f in diff.flips]
    return DiffView(diff=diff, base=base, how=how, artifacts=arts, metrics=metrics, segments=segs, flips=flips,
                    n_significant_segments=sum(1 for s in segs if s.d.significant), family=family_text(diff),
                    metric_axis=forest_axis(mscale), segment_axis=forest_axis(sscale))


def _gate_view(verdict: Verdict) -> GateView:
    return GateView(passed=verdict.passed, base_run=verdict.base_run, failed=verdict.failed, skipped=verdict.skipped,
                    results=list(verdict.results))


def _r(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(v, 6)


def _json_for_script(value: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' survives, so '</script>' and '<!--' cannot appear."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def build_report(run: RunResult, *, base: RunResult | None = None, diff: Diff | None = None,
                 base_how: str | None = None, policy: FailurePolicy | None = None, layout: Layout | None = None,
                 corpus: bool | Mapping[str, CorpusDoc] = True, max_failing: int = 300,
                 n_passages: int = 10, verdict: Verdict | None = None, page_size: int = 25) -> Report:
    """Everything the template shows. ``corpus``: True to look for the run's corpus, False for ids only,
    or the documents themselves. ``verdict``: the gate's judgement of this run (shown first), as
    :func:`harness.gates.evaluate_gates` gave it for ``diff``. ``page_size``: case table rows per page.

    :func:`build_report_table` of the run (and base) served from memory (:func:`harness.report.source.result_table`),
    its case table listing every case; the report's ``run`` (and its diff's ``base``) are the runs given."""
    from harness.report.source import result_table

    head = result_table(run)
    report = build_report_table(head, base=None if base is None else result_table(base), diff=diff,
                                base_how=base_how, policy=policy, layout=layout, corpus=corpus,
                                max_failing=max_failing, n_passages=n_passages, verdict=verdict,
                                page_size=page_size, max_cases=len(head))
    if report.diff is not None and base is not None:
        report.diff.base = base
    return replace(report, run=run)


# ---- a stored run, read by columns ---------------------------------------------------------------------


def _finite(v: np.ndarray) -> np.ndarray:
    import numpy as np

    return v[np.isfinite(v)]


def _listed_rows(n: int, failing_rows: np.ndarray, primary: np.ndarray | None, gib: bool, cap: int
                 ) -> tuple[np.ndarray, str]:
    """The rows the case table lists (ascending) and, when it leaves some out, which ones it kept: every row
    when they fit; else the failing ones first, in run order, then the rest worst first on the headline metric
    (unscored last), each group up to ``cap`` in all."""
    import numpy as np

    if n <= cap:
        return np.arange(n, dtype=np.int64), ""
    picked = failing_rows[:cap]
    how = "the failing cases first, in run order"
    room = cap - len(picked)
    if room > 0:
        rest = np.ones(n, dtype=bool)
        rest[picked] = False
        others = np.flatnonzero(rest)
        if primary is not None:
            key = primary[others]
            key = np.where(np.isnan(key), np.inf, key if gib else -key)
            others = others[np.argsort(key, kind="stable")]
            how += ", then the others worst first on the headline metric"
        else:
            how += ", then the others in run order"
        picked = np.concatenate([picked, others[:room]])
    return np.sort(picked), how


def build_report_table(table: RunTable, *, base: RunTable | None = None, diff: Diff | None = None,
                       base_how: str | None = None, policy: FailurePolicy | None = None,
                       layout: Layout | None = None, corpus: bool | Mapping[str, CorpusDoc] = True,
                       max_failing: int = 300, n_passages: int = 10, verdict: Verdict | None = None,
                       page_size: int = 25, max_cases: int = MAX_LISTED_CASES,
                       columns: RunColumns | None = None, base_columns: RunColumns | None = None) -> Report:
    """The report of a run (and base) as :func:`harness.runs.open_run` opens them, the one builder of the page
    (:func:`build_report` serves a run held in memory through it), never holding a stored run whole:
    aggregates from the header; per-case values, tags, errors and latency from the columns
    (:meth:`~harness.runs.RunTable.columns`); the records (query, answer, ranking, explanations) only of the
    cases the page shows (the case table's rows and the detailed failing cases, by
    :meth:`~harness.columns.RunColumns.records`); cache hits from one pass over the output column. A run of
    more than ``max_cases`` cases lists ``max_cases`` of them in its case table (see :func:`_listed_rows`) and
    says so (``cases_left_out``); :func:`build_report` lists every case.
    ``columns`` / ``base_columns``: the runs' columns when the caller read them already (every metric, tag and
    latency stage, as :func:`harness.baseline.read_columns` reads them for the diff)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    policy = policy or FailurePolicy()
    if (base is None) != (diff is None):
        raise ValueError("the report shows a diff beside its base run (for per-case values): pass both or neither; "
                         "compute the diff with harness.diff.compare")
    h = table.header
    overall = h.aggregates.overall
    shown = main_metrics(h)
    cols = columns if columns is not None else table.columns(metrics=None, tags=True, latency=True)
    n = len(cols)
    nan = np.full(n, np.nan)
    no = np.zeros(n, dtype=bool)
    has_value = no.copy()
    has_score = no.copy()
    for m, v in cols.values.items():
        real = ~np.isnan(v)
        has_value |= real
        has_score |= real | cols.unscored[m]
    diagnostic = set(h.aggregates.metrics("diagnostic"))
    per_metric = {m: _finite(cols.values.get(m, nan)) for m in overall}
    segs = h.aggregates.segments
    sizes = column_segment_sizes(cols)
    base_cols = base_columns if base_columns is not None or base is None else base.columns(
        metrics=None, tags=False, latency=False)
    base_vals: dict[str, np.ndarray] = ({} if base_cols is None else
                                        {m: _finite(v) for m, v in base_cols.values.items()})
    base_h = None if base is None else base.header
    base_segs = base_h.aggregates.segments if base_h is not None else {}
    base_overall = base_h.aggregates.overall if base_h is not None else {}

    def seg_mean(tab: dict[str, dict[str, MetricSummary]], seg: str, m: str) -> float | None:
        ms = tab.get(seg, {}).get(m)
        return None if ms is None else ms.mean

    def metric_row(m: str) -> MetricRow:
        s = overall[m]
        b = base_overall.get(m)
        pts = [(seg, seg_mean(base_segs, seg, m), seg_mean(segs, seg, m)) for seg in segs]
        return MetricRow(m, s.mean, s.n, s.n_unscored, s.greater_is_better,
                         histogram(per_metric[m], m, base_vals.get(m, np.empty(0)) if base is not None else None),
                         segment_chart(pts, m, with_base=base is not None), s.label,
                         base_mean=None if b is None else b.mean)

    metrics = [metric_row(m) for m in shown]
    validators = [MetricRow(m, overall[m].mean, overall[m].n, overall[m].n_unscored, overall[m].greater_is_better,
                            None, None, overall[m].label) for m in h.aggregates.metrics("diagnostic")]
    by_tag: dict[str, list[str]] = {}
    for seg in segs:
        by_tag.setdefault(seg.split("=", 1)[0], []).append(seg)
    tables = [SegmentTable(tag, [(seg.split("=", 1)[1], sizes.get(seg, 0),
                                  [segs[seg][m].mean if m in segs[seg] else None for m in shown]) for seg in members])
              for tag, members in by_tag.items()]

    judge = FailureJudge(h, policy)
    metric_hits = judge.metric_masks(cols)
    failing_mask = judge.mask(cols, metric_hits)
    failing_rows = np.flatnonzero(failing_mask)
    n_failing = len(failing_rows)
    primary = primary_retrieval_metric(h) or (shown[0] if shown else None)
    gib_primary = overall[primary].greater_is_better if primary in overall else True
    listed, listed_how = _listed_rows(n, failing_rows, None if primary is None else cols.values.get(primary),
                                      gib_primary, max_cases)
    detailed = failing_rows[:max_failing]
    wanted = np.union1d(listed, detailed)
    record: dict[int, tuple[GoldenCase | None, CaseOutput, list[Score]]] = {}
    for rows_, cases_, outputs_, scores_ in cols.records(wanted):
        by_case = {c.id: c for c in cases_}
        of: dict[str, list[Score]] = {}
        for sc in scores_:
            of.setdefault(sc.case_id, []).append(sc)
        for r, o in zip(rows_.tolist(), outputs_, strict=True):
            record[r] = (by_case.get(o.case_id), o, of.get(o.case_id, []))
    failures: dict[int, CaseFailure] = {}
    for r in wanted.tolist():
        _, o, ss = record[r]
        f = judge.case(o, ss)
        if f is not None:
            failures[r] = f

    level = h.manifest.metrics.relevance_level
    docs: Mapping[str, CorpusDoc] | None
    if corpus is True:
        docs, corpus_note = load_run_corpus(h, layout) if n_failing else (None, "")
    elif corpus is False:
        docs, corpus_note = None, "Corpus not loaded: showing document ids only."
    else:
        docs, corpus_note = corpus, "Titles and snippets from the given corpus."
    failing = []
    for r in detailed.tolist():
        c, o, ss = record[r]
        f = failures.get(r)
        if f is None:  # the columns said it fails, its records do not: not a failing case after all
            continue
        # diagnostics (a validator's failure) are left out: the quality metrics they break down
        # (format_pass / format_*critical_fail) carry the same messages, summed up
        expl = {o.case_id: [(sc.metric, sc.value, sc.explanation) for sc in ss
                            if (sc.explanation is not None or sc.value is not None) and sc.metric not in diagnostic]}
        failing.append(_failing_case(r, o, c, f, level, docs, n_passages, expl))
    anchors = {f.case_id: f.anchor for f in failing}
    if diff is not None:
        flips = {fl.case_id: fl for fl in diff.flips}
        for fc in failing:
            fc.flip = flips.get(fc.case_id)

    def value(v: np.ndarray, row: int) -> float | None:
        x = float(v[row])
        return None if math.isnan(x) else x

    mindex = {m: i for i, m in enumerate(shown)}
    errored = cols.errored()
    rows = []
    for r in listed.tolist():
        c, o, _ = record[r]
        f = failures.get(r)
        status = ("error" if o.error else "fail" if f else
                  "unscored" if has_score[r] and not has_value[r] else "ok")
        rows.append({
            "id": o.case_id,
            "q": c.query if c else "",
            "tags": " ".join(c.segments()) if c else "",
            "st": status,
            "a": anchors.get(o.case_id, ""),
            "why": "; ".join(f.reasons) if f else "",
            "v": [_r(value(cols.values[m], r)) if m in cols.values else None for m in shown],
            "bad": sorted(mindex[m] for m in (f.metrics if f else ()) if m in mindex),
        })
    payload: dict[str, Any] = {
        "metrics": shown,
        "gib": [overall[m].greater_is_better for m in shown],
        "primary": primary,
        "cases": rows,
        "page": page_size,
        "diff": None,
    }
    dview = None
    if diff is not None and base is not None and base_cols is not None and base_h is not None:
        dview = _diff_view(diff, base_h, base_how, anchors)
        dm = [d.metric for d in diff.metrics if d.role == "quality"]
        ids = cols.case_ids.take(pa.array(listed, pa.int64()))
        at = pc.index_in(ids, value_set=base_cols.case_ids)
        brow = np.asarray(pc.fill_null(at, -1).to_numpy(zero_copy_only=False), dtype=np.int64)

        def base_value(m: str, k: int) -> float | None:
            v = base_cols.values.get(m) if base_cols is not None else None
            return None if v is None or brow[k] < 0 else value(v, int(brow[k]))

        payload["diff"] = {
            "base": base_h.run_id,
            "metrics": dm,
            "gib": [d.greater_is_better for d in diff.metrics if d.role == "quality"],
            "b": {m: [_r(base_value(m, k)) for k in range(len(listed))] for m in dm},
            "h": {m: [_r(value(cols.values[m], r)) if m in cols.values else None for r in listed.tolist()]
                  for m in dm},
        }
    # the rows as the HTML holds them before the script runs (and for good without it): in run order, with the
    # delta of the metric the script starts on
    tab: list[dict[str, Any]] = [dict(r) for r in rows]
    delta_metric = None
    if payload["diff"] is not None and payload["diff"]["metrics"]:
        dd = payload["diff"]
        delta_metric = payload["primary"] if payload["primary"] in dd["metrics"] else dd["metrics"][0]
        gib = dd["gib"][dd["metrics"].index(delta_metric)]
        for i, t in enumerate(tab):
            b, hv = dd["b"][delta_metric][i], dd["h"][delta_metric][i]
            t["d"] = None if b is None or hv is None else hv - b
            t["dcls"] = "" if not t["d"] else "up" if (t["d"] > 0) == gib else "down"

    env, packages = _env_rows(h)
    hits = table_cache_hits(table)
    n_unscored = sum(int(u.sum()) for u in cols.unscored.values())
    counts = [("cases", str(h.counts.get("cases", n))),
              ("failing", str(n_failing)),
              ("errors", str(int(errored.sum()))),
              ("unscored values", str(h.counts.get("unscored", n_unscored)))]
    counts += [(f"cache hits: {stage}", f"{hh}/{nn}") for stage, (hh, nn) in hits.items()]
    counts += [(k.replace("_", " "), str(v)) for k, v in h.counts.items() if k not in ("cases", "errors", "unscored")]
    stages = []
    for stage, total in h.stage_seconds.items():
        lat = cols.latency.get(stage)
        xs = None if lat is None else lat[~np.isnan(lat)]
        p50 = float(np.quantile(xs, 0.5)) if xs is not None and len(xs) else None
        p95 = float(np.quantile(xs, 0.95)) if xs is not None and len(xs) else None
        hit = hits.get(stage)
        stages.append((stage, total, p50, p95, f"{hit[0]}/{hit[1]}" if hit else ""))
    name = h.manifest.name
    return Report(
        generated_by=_generator(),
        run=StoredRunFacts(h.run_id, h.manifest_id, h.created_at, h.manifest_path, range(n)),
        title=f"harness report {h.run_id}" + (f" — {name}" if name else ""),
        manifest_name=name,
        environment=env,
        packages=packages,
        counts=counts,
        stages=stages,
        metrics=metrics,
        validators=validators,
        segment_metrics=shown,
        segment_tables=tables,
        failing_definition=policy.describe(h),
        n_failing=n_failing,
        failing=failing,
        failing_truncated=max(0, n_failing - len(failing)),
        corpus_note=corpus_note,
        diff=dview,
        data_json=_json_for_script(payload),
        cases=tab,
        case_metrics=shown,
        delta_metric=delta_metric,
        gate=_gate_view(verdict) if verdict is not None else None,
        page_size=page_size,
        cases_left_out=n - len(listed),
        cases_listed_how=listed_how,
    )


# ---- rendering ----------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}" if abs(x) < 1e4 else f"{x:.4g}"


def _signed(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def _pval(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.3g}" if x >= 0.001 else "<0.001")


def _secs(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def _cell(x: float | None, signed: bool = False) -> str:
    """A case table value as the report's script writes it (so the rows read the same before and after it runs)."""
    if x is None:
        return "\u2014"
    if abs(x) >= 1e4:
        return f"{x:.4g}"
    return f"{x:+.3f}" if signed and x > 0 else f"{x:.3f}"


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(fmt=_fmt, signed=_signed, pct=_pct, pval=_pval, secs=_secs, cell=_cell)
    return env


def _static(name: str) -> Any:
    from markupsafe import Markup

    env = _environment()
    source, _, _ = env.loader.get_source(env, name)
    return Markup(source)


def render_report(report: Report) -> str:
    env = _environment()
    from markupsafe import Markup

    return str(env.get_template("report.html.j2").render(
        r=report, css=_static("report.css"), js=_static("report.js"), data_json=Markup(report.data_json)))


def render_html(run: RunResult, **kwargs: Any) -> str:
    """The whole report as one HTML string; keyword arguments as :func:`build_report`."""
    return render_report(build_report(run, **kwargs))


def render_html_table(table: RunTable, **kwargs: Any) -> str:
    """The report of a stored run read by columns (:func:`build_report_table`) as one HTML string."""
    return render_report(build_report_table(table, **kwargs))
