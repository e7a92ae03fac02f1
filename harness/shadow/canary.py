"""The canary verdict (``harness canary``): records the candidate served against records the baseline served,
in the same hours and segments, judged Kayenta-style.

1. Records (:func:`harness.shadow.logs.read_records`: the project's store or ``--log FILE``) of the two manifest
   ids. Only the UTC hours in which *both* sides served a record are compared (so a canary that ran at
   night is not judged against daytime baseline traffic; for a ``[monitor]`` time zone with a whole-hour
   offset these are exactly its local hours); the hours are listed as ranges, the baseline records outside
   them counted in a note. No shared hour: ``cannot_judge``.
2. Signals: the monitor's cheap signals (:func:`harness.monitor.signals.cheap_signals`, computed in memory on
   the compared records: nothing is written or cached) that have a better side — numeric ones
   (``top1_score``, ``topk_mean_score``, ``latency:<stage>``) and 0/1 ones (``format_valid``,
   ``instructions_followed``, ``answer_empty``, ``abstained``, ``timeout``, ``error_rate``) — and
   ``groundedness`` on one seeded sample of up to :data:`GROUNDEDNESS_SAMPLE` records per side (the
   monitor's checker and cache: :func:`harness.monitor.project._groundedness`), reused by the segments.
   ``[[canary.signals]]`` selects and configures them (none: every directional signal with data, with
   :data:`DEFAULT_TOLERANCE` and :data:`DEFAULT_CRITICAL`).
3. Every test is stratified by the UTC hour a record was served in. A canary's share changes by the hour
   (every ramp) and signals follow the time of day (every service), so pooling the hours compares a
   canary-heavy afternoon with a baseline-heavy morning (Simpson's paradox: the same system "fails"). Numeric
   signals: van Elteren's stratified rank-sum test (:func:`harness.stats.unpaired.van_elteren`), its effect
   the stratified Hodges-Lehmann shift with the interval from inverting the test; rates: Cochran-Mantel-
   Haenszel (:func:`harness.stats.unpaired.stratified_proportions`), its effect the canary's rate minus the
   baseline's rate re-weighted to the canary's hourly mix. The baseline's value shown is re-weighted the
   same way (each baseline record weighted by the canary's share of its hour over the baseline's share: a
   weighted median, a standardised rate), as is the baseline's mean in ``[[canary.gates]]`` drop rules.
   Hours are not merged (:data:`~harness.stats.unpaired.MIN_STRATUM`: pooling two hours brings the bias
   back); an hour in which a segment's signal has values on one side only carries no weight in that test
   (its records stay counted in the sides' sizes; the most such hours per segment are listed in a note).
4. Segments: ``all`` and each value of each ``[monitor].segments`` key. A side with fewer than
   ``min_records`` values in a segment makes that test ``nodata`` (never a pass). A segment where the
   baseline has ``min_records`` records and the canary fewer (a segment the canary stopped serving) makes
   the canary ``cannot_judge`` with a reason naming it and both counts; small on both sides, it is a note.
5. One family of p-values over signals x segments, corrected by ``[canary].correction``; each test classified
   (:func:`harness.stats.unpaired.classify`: significant *and* beyond the signal's tolerance), each segment
   scored (:func:`harness.stats.unpaired.score`). Status: ``fail`` if a segment scores below
   ``marginal_score``, a critical signal failed anywhere or a ``[[canary.gates]]`` rule failed; else
   ``cannot_judge`` if a segment vanished from the canary; else ``marginal`` if one scores below
   ``pass_score``; else ``cannot_judge`` if the ``all`` segment has a test without data (or no score); else
   ``pass``.

Everything that can be checked from the inputs (signal and rule names, segment keys, latency stages) is a
:class:`~harness.errors.HarnessError` from :func:`plan_canary`, before anything is computed or written.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.errors import HarnessError
from harness.gates import GateResult
from harness.manifest import LoadedManifest
from harness.monitor.signals import CHEAP_SIGNALS, LATENCY_PREFIX, cheap_signals, signal_spec
from harness.progress import NULL_PROGRESS, Progress
from harness.shadow.logs import LogQuery, read_records
from harness.shadow.model import CanaryReport, CanaryScore, CanarySide, CanaryTest, CheckStatus
from harness.stats.intervals import wilson_interval
from harness.stats.multiple import benjamini_hochberg, holm
from harness.stats.unpaired import (
    MIN_STRATUM,
    Classified,
    UnpairedResult,
    classify,
    merge_strata,
    score,
    score_status,
    standardizing_weights,
    stratified_proportions,
    van_elteren,
)
from harness.storage import Layout
from harness.types import CanaryConfig, CanaryDirection, GateRule, MonitorConfig

__all__ = ["CanaryPlan", "CanaryRequest", "canary", "canary_signals", "plan_canary", "plan_canary_records",
           "run_canary"]

GROUNDEDNESS_SAMPLE = 300
"""Records per side checked for groundedness (one seeded sample, reused for every segment)."""
ERROR_RATE = "error_rate"
GROUNDEDNESS = "groundedness"
_HOUR_US = 3_600_000_000


def canary_signals() -> list[str]:
    """The names a ``[[canary.signals]]`` entry or a ``[[canary.gates]]`` rule may use (besides any
    ``latency:<stage>`` the records log; a gate also takes ``latency`` with ``stage`` and ``error_rate``)."""
    cheap = [s.name for s in CHEAP_SIGNALS if s.better is not None and s.name != "error_kind"]
    return sorted({*cheap, ERROR_RATE, GROUNDEDNESS})


@dataclass(frozen=True)
class CanaryRequest:
    layout: Layout
    config: CanaryConfig
    monitor: MonitorConfig
    baseline_id: str
    candidate_id: str
    project: LoadedManifest | None = None
    baseline_path: str | None = None
    candidate_path: str | None = None
    log: Path | None = None
    query: LogQuery = field(default_factory=LogQuery)


DEFAULT_CRITICAL = ("format_valid", ERROR_RATE, GROUNDEDNESS)
"""Signals critical by default (no ``[[canary.signals]]``): an answer that breaks its output contract, one
not supported by the passages it was shown, or a request that errors, is unusable whatever the other signals
say, so failing any of them fails the canary (as a Kayenta config marks such metrics critical; one failed
signal of a dozen would otherwise score marginal)."""


DEFAULT_TOLERANCE: dict[str, float] = {"numeric": 0.02, "rate": 0.005}
"""How large a significant move of a default signal (no ``[[canary.signals]]``) may be and still pass: a
numeric signal's shift up to 2% of the baseline's value (``CanarySignal.tolerance = 0.02``), a rate's move up
to half a percentage point (0.005, absolute: a relative tolerance means nothing near a rate of 0 and too much
near 1). At large sizes every real difference is significant — with 50,000 records a side a 0.5% shift of
``top1_score`` has p ~ 1e-12 — and a verdict that fails a canary for it is noise to the person reading it; a
10% shift still fails (``tests/shadow/test_canary.py::test_default_tolerance``). Listed signals keep their own
``tolerance`` (default 0: every significant move counts) and no absolute one. Tighten them for signals where
half a point matters, e.g. ``error_rate`` (or use a ``[[canary.gates]]`` ``max_rate`` rule)."""


@dataclass(frozen=True)
class SignalPlan:
    name: str
    kind: Literal["numeric", "rate"]
    bad: CanaryDirection
    tolerance: float = 0.0
    weight: float = 1.0
    critical: bool = False
    explicit: bool = False
    abs_tolerance: float = 0.0  # a move no larger than this (in the signal's units) passes

    def describe_tolerance(self) -> str:
        parts = [f"±{self.tolerance:.0%}"] if self.tolerance else []
        if self.abs_tolerance:
            parts.append(f"±{self.abs_tolerance:g} absolute")
        return " and ".join(parts) or "none"


def _default_plan(name: str, kind: Literal["numeric", "rate"], bad: CanaryDirection) -> SignalPlan:
    if kind == "numeric":
        return SignalPlan(name, kind, bad, tolerance=DEFAULT_TOLERANCE["numeric"], critical=name in DEFAULT_CRITICAL)
    return SignalPlan(name, kind, bad, abs_tolerance=DEFAULT_TOLERANCE["rate"], critical=name in DEFAULT_CRITICAL)


@dataclass(frozen=True, eq=False)
class CanaryPlan:
    """What :func:`run_canary` computes: the checked request, the compared records' signals (``table``, with
    ``is_canary``), the signals and segments to test, the shared windows, and a reason the canary cannot be
    judged at all (no shared window, a side without records)."""

    request: CanaryRequest
    signals: tuple[SignalPlan, ...]
    table: pa.Table
    segments: tuple[str, ...]
    windows: tuple[str, ...]
    baseline: CanarySide
    canary: CanarySide
    groundedness: bool
    problem: str | None = None
    notes: tuple[str, ...] = ()
    records: pa.Table | None = field(default=None, repr=False)  # answer and contexts for the groundedness sample


# --- checks before anything runs ----------------------------------------------------------------------------


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    options = sorted(set(known))
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(options)}"


def _where(req: CanaryRequest, loc: tuple[Any, ...]) -> str:
    """``file:line: `` of a [canary] entry in the project's manifest, when there is one."""
    if req.project is None:
        return "[canary]: "
    from harness.config import line_of

    try:
        line = line_of(req.project.path.read_text(encoding="utf-8"), loc)
    except OSError:
        line = None
    return f"{req.project.path}{f':{line}' if line else ''}: "


def _known_signal(name: str) -> bool:
    return name in canary_signals() or (name.startswith(LATENCY_PREFIX) and len(name) > len(LATENCY_PREFIX))


def _check_config(req: CanaryRequest) -> None:
    cfg = req.config
    for i, s in enumerate(cfg.signals):
        if not _known_signal(s.name):
            raise HarnessError(f"{_where(req, ('canary', 'signals', i, 'name'))}[[canary.signals]] name "
                               f"{s.name!r} is not a canary signal; {_did_you_mean(s.name, canary_signals())}",
                               hint="a directional signal, error_rate, groundedness or latency:<stage>")
    listed = {s.name for s in cfg.signals}
    for i, rule in enumerate(cfg.gates):
        where = _where(req, ("canary", "gates", i, "metric"))
        if rule.metric != "latency" and not _known_signal(rule.metric):
            raise HarnessError(f"{where}[[canary.gates]] metric {rule.metric!r} is not a canary signal; "
                               f"{_did_you_mean(rule.metric, [*canary_signals(), 'latency'])}")
        drop = rule.max_drop is not None or rule.max_abs_drop is not None
        if drop and rule.require_significant and listed and rule.metric not in listed:
            raise HarnessError(f"{where}[[canary.gates]] {rule.label}: a drop rule counts only significant drops, "
                               f"and {rule.metric} is not among [[canary.signals]] (so it is not tested)",
                               hint=f"add {rule.metric} to [[canary.signals]] or set require_significant = false")
        if rule.segment is not None:
            key, sep, value = rule.segment.partition("=")
            if not sep or not key or not value:
                raise HarnessError(f"{_where(req, ('canary', 'gates', i, 'segment'))}[[canary.gates]] segment "
                                   f"{rule.segment!r} is not key=value or key=*")
            if key not in req.monitor.segments:
                known = _did_you_mean(key, req.monitor.segments) if req.monitor.segments else "none set"
                raise HarnessError(f"{_where(req, ('canary', 'gates', i, 'segment'))}[[canary.gates]] segment key "
                                   f"{key!r} is not a [monitor] segment; {known}")
    if not req.baseline_id or not req.candidate_id:
        raise HarnessError("canary: the baseline and the candidate need a manifest id")
    if req.baseline_id == req.candidate_id:
        raise HarnessError(f"canary: the baseline and the candidate are the same manifest ({req.baseline_id[:12]}): "
                           "its records cannot be told apart")
    from harness.monitor.run import zone

    zone(req.monitor.timezone)


# --- planning -----------------------------------------------------------------------------------------------


def plan_canary(req: CanaryRequest) -> CanaryPlan:
    """Every check, then the compared records and their signals; writes nothing."""
    _check_config(req)
    query = LogQuery(since=req.query.since, until=req.query.until, segment=req.query.segment,
                     manifest_ids=(req.baseline_id, req.candidate_id))
    table = read_records(req.layout, req.monitor.mapping, query, log=req.log)
    return plan_canary_records(req, table, checked=True)


def _iso(ts: dt.datetime, tz: dt.tzinfo) -> str:
    return ts.astimezone(tz).isoformat(timespec="minutes")


def _window_ranges(hours: np.ndarray, tz: dt.tzinfo) -> tuple[str, ...]:
    """Consecutive UTC hour buckets merged into ``start/end`` ranges, shown in ``tz``."""
    out: list[str] = []
    if hours.size == 0:
        return ()
    hs = np.sort(hours)
    start = prev = int(hs[0])
    for h in [*map(int, hs[1:]), None]:
        if h is not None and h == prev + 1:
            prev = h
            continue
        a = dt.datetime.fromtimestamp(start * 3600, dt.UTC)
        b = dt.datetime.fromtimestamp((prev + 1) * 3600, dt.UTC)
        out.append(f"{_iso(a, tz)}/{_iso(b, tz)}")
        if h is not None:
            start = prev = h
    return tuple(out)


def _side(label: Literal["baseline", "canary"], mid: str, path: str | None, ts: np.ndarray) -> CanarySide:
    first = last = None
    if ts.size:
        first = dt.datetime.fromtimestamp(int(ts.min()) / 1e6, dt.UTC).isoformat()
        last = dt.datetime.fromtimestamp(int(ts.max()) / 1e6, dt.UTC).isoformat()
    return CanarySide(label=label, manifest_id=mid, manifest_path=path, records=int(ts.size), first=first, last=last)


def _contracts(req: CanaryRequest) -> Any:
    if req.project is None or "validators" not in req.project.manifest.artifacts:
        return None
    from harness.contracts import load_contracts

    return load_contracts(req.project.resolve("validators"))


def _can_ground(req: CanaryRequest) -> bool:
    return req.project is not None and "embedding" in req.project.manifest.artifacts


def plan_canary_records(req: CanaryRequest, records: pa.Table, *, checked: bool = False) -> CanaryPlan:
    """:func:`plan_canary` over records already read (a :data:`~harness.monitor.schema.LOG_SCHEMA` table, e.g.
    from :func:`harness.shadow.logs.read_log_file`); records of other manifest ids are ignored."""
    if not checked:
        _check_config(req)
    from harness.monitor.run import zone

    tz = zone(req.monitor.timezone)
    mids = records["manifest_id"].to_pylist() if records.num_rows else []
    is_base = np.array([m == req.baseline_id for m in mids], dtype=bool)
    is_can = np.array([m == req.candidate_id for m in mids], dtype=bool)
    ts_all = pc.cast(records["ts"], pa.int64()).to_numpy(zero_copy_only=False) if records.num_rows \
        else np.zeros(0, np.int64)
    hours = ts_all // _HOUR_US
    shared = np.intersect1d(np.unique(hours[is_base]), np.unique(hours[is_can]))
    keep = (is_base | is_can) & np.isin(hours, shared)
    notes: list[str] = []
    outside = int((is_base & ~keep).sum())
    outside_c = int((is_can & ~keep).sum())
    if outside or outside_c:
        notes.append(f"{outside} baseline and {outside_c} canary records fell outside the hours both served and "
                     "were not compared")
    problem = None
    if not is_base.any():
        problem = f"no records of the baseline ({req.baseline_id[:12]}) in {req.query.describe()}"
    elif not is_can.any():
        problem = f"no records of the candidate ({req.candidate_id[:12]}) in {req.query.describe()}"
    elif shared.size == 0:
        problem = "the baseline and the canary served in no common hour: nothing to compare"
    sub = records.filter(pa.array(keep)) if records.num_rows else records
    signals_t = cheap_signals(sub, _contracts(req), seed=req.monitor.seed)
    canary_flags = pa.array(is_can[keep])
    signals_t = signals_t.append_column("is_canary", canary_flags)
    signals_t = signals_t.append_column(ERROR_RATE, pc.not_equal(signals_t["error_kind"], "none"))
    ts_kept = ts_all[keep]
    base_side = _side("baseline", req.baseline_id, req.baseline_path, ts_kept[~is_can[keep]])
    can_side = _side("canary", req.candidate_id, req.candidate_path, ts_kept[is_can[keep]])

    grounded = _can_ground(req)
    plans = _signal_plans(req, signals_t, grounded, notes)
    for rule in req.config.gates:
        if rule.metric == "latency":
            stage = LATENCY_PREFIX + str(rule.stage)
            if stage not in signals_t.column_names:
                logged = sorted(c[len(LATENCY_PREFIX):] for c in signals_t.column_names if c.startswith(LATENCY_PREFIX))
                raise HarnessError(f"{_where(req, ('canary', 'gates'))}[[canary.gates]] {rule.label}: stage "
                                   f"{rule.stage!r} is not logged; {_did_you_mean(str(rule.stage), logged)}")
        if rule.metric == GROUNDEDNESS and not grounded:
            raise HarnessError(f"[[canary.gates]] {rule.label}: groundedness needs the project's embedding model "
                               "(run inside the project)")
    segments = ["all"]
    for key in req.monitor.segments:
        from harness.monitor.run import segment_values

        values = segment_values(signals_t, key) if signals_t.num_rows else np.zeros(0, object)
        segments.extend(f"{key}={v}" for v in sorted({str(v) for v in values if v is not None}))
    extra = sub.select(["record_id", "answer", "contexts"]) if grounded else None
    return CanaryPlan(request=req, signals=tuple(plans), table=signals_t, segments=tuple(segments),
                      windows=_window_ranges(shared, tz), baseline=base_side, canary=can_side, groundedness=grounded,
                      problem=problem, notes=tuple(notes), records=extra)


def _signal_kind(name: str) -> Literal["numeric", "rate"]:
    if name == ERROR_RATE:
        return "rate"
    return "rate" if signal_spec(name).kind == "categorical" else "numeric"


def _default_bad(name: str) -> CanaryDirection:
    better = "lower" if name == ERROR_RATE else signal_spec(name).better
    return "decrease" if better == "higher" else "increase"


def _has_values(t: pa.Table, name: str) -> bool:
    return name in t.column_names and t[name].null_count < t.num_rows


def _signal_plans(req: CanaryRequest, t: pa.Table, grounded: bool, notes: list[str]) -> list[SignalPlan]:
    cfg = req.config
    if cfg.signals:
        out = []
        for s in cfg.signals:
            if s.name == GROUNDEDNESS and not grounded:
                raise HarnessError("[[canary.signals]] groundedness needs the project's embedding model (run "
                                   "inside the project, or leave groundedness out)")
            out.append(SignalPlan(s.name, _signal_kind(s.name), s.bad or _default_bad(s.name), s.tolerance, s.weight,
                                  s.critical, True))
        return out
    names = [s.name for s in CHEAP_SIGNALS if s.better is not None and s.name != "error_kind"]
    names += sorted(c for c in t.column_names if c.startswith(LATENCY_PREFIX))
    names.append(ERROR_RATE)
    plans: list[SignalPlan] = []
    unmeasured = []
    for name in names:
        if t.num_rows and not _has_values(t, name):
            unmeasured.append(name)
            continue
        plans.append(_default_plan(name, _signal_kind(name), _default_bad(name)))
    if grounded and req.monitor.groundedness_sample > 0:
        plans.append(_default_plan(GROUNDEDNESS, "numeric", "decrease"))
    elif grounded:
        notes.append("groundedness not judged: [monitor] groundedness_sample = 0 (list it in [[canary.signals]] to "
                     "judge it anyway)")
    else:
        notes.append("groundedness not judged: no project embedding model (run inside the project)")
    if unmeasured:
        notes.append(f"not judged, no record measures them: {', '.join(unmeasured)}")
    return plans


# --- running -------------------------------------------------------------------------------------------------


class _Rows:
    """The rows of the groundedness sample, read as the monitor's checker reads the store."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def read(self, *_: Any, columns: Sequence[str] | None = None, **__: Any) -> pa.Table:
        return self.table.select(list(columns)) if columns is not None else self.table


def _groundedness_column(plan: CanaryPlan, progress: Progress) -> tuple[np.ndarray, str]:
    """Groundedness per compared record (NaN outside the sample): the seeded sample of up to
    :data:`GROUNDEDNESS_SAMPLE` records per side with an answer and contexts."""
    from harness.cache import Cache
    from harness.monitor.project import _groundedness
    from harness.pipeline import stage_inputs
    from harness.retrieve import make_embedder

    req = plan.request
    assert req.project is not None and plan.records is not None
    t = plan.table
    out = np.full(t.num_rows, np.nan)
    answers = plan.records["answer"].to_pylist()
    contexts = plan.records["contexts"].to_pylist()
    usable = np.array([bool(a and a.strip()) and bool(c) for a, c in zip(answers, contexts, strict=True)], dtype=bool)
    keys = t["sample_key"].to_numpy(zero_copy_only=False)
    canary = t["is_canary"].to_numpy(zero_copy_only=False).astype(bool)
    chosen: list[int] = []
    for side in (False, True):
        idx = np.flatnonzero(usable & (canary == side))
        chosen.extend(idx[np.argsort(keys[idx], kind="stable")][:GROUNDEDNESS_SAMPLE].tolist())
    if not chosen:
        return out, "groundedness: no record has both an answer and contexts"
    inputs = stage_inputs(req.project)
    assert inputs.embedding is not None
    cache = Cache(req.layout.cache_db)
    embedder = make_embedder(inputs.embedding[0], inputs.embedding[1], cache, progress)
    rows = plan.records.take(pa.array(chosen, pa.int64()))
    with progress.task("groundedness sample", len(chosen)) as advance:
        # the monitor's checker reads answers and contexts through a store's read(); the sample's rows stand in
        scored = _groundedness(_Rows(rows), embedder, cache)(  # type: ignore[arg-type]
            rows["record_id"].to_pylist())
        advance(len(chosen))
    ids = t["record_id"].to_pylist()
    for i in chosen:
        v = scored.get(ids[i])
        if v is not None and math.isfinite(v):
            out[i] = v
    n_can = int(canary[chosen].sum())
    return out, (f"groundedness on a seeded sample of {len(chosen) - n_can} baseline and {n_can} canary records "
                 f"(seed {req.monitor.seed})")


def _as_float(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, np.nan)
    col = t[name]
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.float64())
    return np.asarray(pc.fill_null(pc.cast(col, pa.float64()), math.nan).to_numpy(zero_copy_only=False), dtype=float)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x:+.1%}" if abs(x) < 0.1 else f"{x:+.0%}"


@dataclass
class _Cell:
    plan: SignalPlan
    segment: str
    result: UnpairedResult


def _segment_masks(plan: CanaryPlan) -> dict[str, np.ndarray]:
    from harness.monitor.run import segment_values

    t = plan.table
    masks = {"all": np.ones(t.num_rows, dtype=bool)}
    cache: dict[str, np.ndarray] = {}
    for seg in plan.segments[1:]:
        key, _, value = seg.partition("=")
        if key not in cache:
            cache[key] = np.array([None if v is None else str(v) for v in segment_values(t, key)], dtype=object)
        masks[seg] = cache[key] == value
    return masks


def _compare(sp: SignalPlan, values: np.ndarray, base: np.ndarray, can: np.ndarray, hours: np.ndarray,
             confidence: float) -> UnpairedResult:
    """One signal in one segment, stratified by the hour each record was served in."""
    ok = ~np.isnan(values)
    b, c = base & ok, can & ok
    if sp.kind == "rate":
        return stratified_proportions(values[b], values[c], hours[b], hours[c], confidence=confidence)
    return van_elteren(values[b], values[c], hours[b], hours[c], confidence=confidence)


def _hours(t: pa.Table) -> np.ndarray:
    if not t.num_rows:
        return np.zeros(0, np.int64)
    return np.asarray(pc.cast(t["ts"], pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64) // _HOUR_US


def _merge_note(cells: Sequence[_Cell]) -> str | None:
    """Hours in which a segment's signal had values on one side only: they carry no weight in its test."""
    worst: dict[str, tuple[int, int, str]] = {}
    for c in cells:
        r = c.result
        if r.merged and r.labels and (c.segment not in worst or r.merged > worst[c.segment][0]):
            worst[c.segment] = (r.merged, r.labels, c.plan.name)
    if not worst:
        return None
    parts = [f"{seg} {k} of {n} ({name})" for seg, (k, n, name) in worst.items()]
    what = ("had values on one side only and carry no weight (their records are counted, not compared with "
            "another hour's)" if MIN_STRATUM <= 1 else
            f"had fewer than {MIN_STRATUM} values on a side and were merged into a neighbouring hour")
    return f"hours that {what}; the most per segment: {'; '.join(parts)}"


def run_canary(plan: CanaryPlan, progress: Progress = NULL_PROGRESS) -> CanaryReport:
    """The tests, classifications, scores and ``[[canary.gates]]`` results of a plan."""
    req = plan.request
    cfg = req.config
    notes = list(plan.notes)
    t = plan.table
    canary = t["is_canary"].to_numpy(zero_copy_only=False).astype(bool) if t.num_rows else np.zeros(0, bool)
    base = ~canary
    columns: dict[str, np.ndarray] = {}
    wants_ground = any(s.name == GROUNDEDNESS for s in plan.signals) or any(r.metric == GROUNDEDNESS
                                                                              for r in cfg.gates)
    if wants_ground and plan.problem is None and plan.groundedness:
        columns[GROUNDEDNESS], note = _groundedness_column(plan, progress)
        notes.append(note)
    for sp in plan.signals:
        if sp.name not in columns:
            columns[sp.name] = _as_float(t, sp.name)
    masks = _segment_masks(plan)
    confidence = 1.0 - cfg.alpha
    hours = _hours(t)

    cells: list[_Cell] = []
    if plan.problem is None:
        for seg in plan.segments:
            m = masks[seg]
            for sp in plan.signals:
                cells.append(_Cell(sp, seg, _compare(sp, columns[sp.name], base & m, canary & m, hours, confidence)))
        notes.append(f"compared hour by hour ({np.unique(hours).size} hours both served): van Elteren's stratified "
                     "rank test for numeric signals, Cochran-Mantel-Haenszel for rates; the baseline's values are "
                     "re-weighted to the canary's hourly mix")
        merge_note = _merge_note(cells)
        if merge_note:
            notes.append(merge_note)
    judged = [c.result.n_baseline >= cfg.min_records and c.result.n_canary >= cfg.min_records
              and c.result.p_value is not None for c in cells]
    # A rate test whose two sides share one constant value (no error on either side) has p = 1 at any size and
    # cannot reject: it stays out of the family (Tarone's rule, harness.stats.multiple.tarone_family, at its
    # degenerate end) and keeps p_adjusted = 1, so it does not dilute the tests that can.
    constant = [c.result.test == "cmh" and c.result.baseline_value == c.result.canary_value
                and c.result.baseline_value in (0.0, 1.0) for c in cells]
    family = [c.result.p_value if j and not k else None for c, j, k in zip(cells, judged, constant, strict=True)]
    adjusted = list((holm if cfg.correction == "holm" else benjamini_hochberg)(family))
    family_size = sum(p is not None for p in family)
    for i, (j, k) in enumerate(zip(judged, constant, strict=True)):
        if j and k:
            adjusted[i] = 1.0

    tests: list[CanaryTest] = []
    classes: list[Classified] = []
    reasons: list[str] = []
    for cell, p_adj in zip(cells, adjusted, strict=True):
        sp, r = cell.plan, cell.result
        cl = classify(r, alpha_adjusted_p=p_adj, baseline_value=r.baseline_value, tolerance=sp.tolerance, bad=sp.bad,
                      alpha=cfg.alpha, min_records=cfg.min_records, abs_tolerance=sp.abs_tolerance)
        classes.append(cl)
        base_v = r.baseline_value
        can_v = r.canary_value
        shown_rel = None if base_v is None or can_v is None else (
            (can_v - base_v) / abs(base_v) if base_v else (0.0 if can_v == base_v else math.copysign(math.inf,
                                                                                                     can_v - base_v)))
        if cl.label == "nodata":
            msg = (f"{sp.name} in {cell.segment}: not judged ({r.n_baseline} baseline, {r.n_canary} canary values; "
                   f"min_records {cfg.min_records})")
        else:
            msg = (f"{sp.name} in {cell.segment}: {_fmt(can_v)} vs {_fmt(base_v)} ({_pct(shown_rel)}), p_adj "
                   f"{p_adj:.2g} ({cl.label}; bad: {sp.bad})")
            if cl.label == "pass" and p_adj is not None and p_adj < cfg.alpha:
                msg += f"; significant but within the tolerance {sp.describe_tolerance()}"
        if cl.failed and cl.label != "nodata":
            reasons.append(msg)
        tests.append(CanaryTest(
            signal=sp.name, segment=cell.segment, kind=sp.kind, test=r.test, bad=sp.bad, critical=sp.critical,
            weight=sp.weight, tolerance=sp.tolerance, baseline_n=r.n_baseline, canary_n=r.n_canary,
            baseline_value=base_v, canary_value=can_v, effect=r.effect, ci_low=r.ci_low, ci_high=r.ci_high,
            relative=cl.relative if cl.relative is None or math.isfinite(cl.relative) else None,
            p_value=r.p_value, p_adjusted=p_adj, classification=cl.label, failed=cl.failed, message=msg))

    scores: list[CanaryScore] = []
    vanished: list[str] = []  # segments the baseline serves and the canary (almost) does not
    for seg in plan.segments if plan.problem is None else ():
        idx = [i for i, c in enumerate(cells) if c.segment == seg]
        sr = score([classes[i] for i in idx], [cells[i].plan.weight for i in idx],
                   critical=[cells[i].plan.critical for i in idx])
        crit = tuple(cells[idx[j]].plan.name for j in sr.critical_failed)
        seg_status = score_status(sr.score, bool(crit), pass_score=cfg.pass_score, marginal_score=cfg.marginal_score)
        scores.append(CanaryScore(segment=seg, score=sr.score, passed=sr.passed, judged=sr.judged, nodata=sr.nodata,
                                  critical_failed=crit, status=seg_status))
        if seg == "all":
            continue
        n_base, n_can = int((masks[seg] & base).sum()), int((masks[seg] & canary).sum())
        if n_base >= cfg.min_records and n_can < cfg.min_records:
            vanished.append(f"cannot judge: segment {seg} has {n_base} baseline but {n_can} canary records "
                            f"(min_records {cfg.min_records}): did the canary stop serving it?")
        elif seg_status == "cannot_judge":
            notes.append(f"segment {seg} not judged: every signal had fewer than {cfg.min_records} values on a side")

    results = tuple(_gate_results(plan, columns, masks, tests)) if plan.problem is None else ()

    status: CheckStatus
    all_score = scores[0] if scores else None
    all_nodata = [t_ for t_ in tests if t_.segment == "all" and t_.classification == "nodata"]
    failed_gates = [r for r in results if r.status == "fail"]
    for cs in scores:
        if cs.critical_failed:
            reasons.append(f"critical signal(s) failed in {cs.segment}: {', '.join(cs.critical_failed)}")
        if cs.score is not None and cs.score < cfg.marginal_score:
            reasons.append(f"score in {cs.segment}: {cs.score:.1f} < marginal_score {cfg.marginal_score}")
        elif cs.score is not None and cs.score < cfg.pass_score:
            reasons.append(f"score in {cs.segment}: {cs.score:.1f} < pass_score {cfg.pass_score} (marginal)")
    reasons.extend(f"gate {r.rule}{f' [{r.segment}]' if r.segment else ''}: {r.message}" for r in failed_gates)
    reasons.extend(vanished)
    if plan.problem is not None:
        status = "cannot_judge"
        reasons.insert(0, f"cannot judge: {plan.problem}")
    elif any(cs.status == "fail" for cs in scores) or failed_gates:
        status = "fail"
    elif vanished:
        status = "cannot_judge"
    elif any(cs.status == "marginal" for cs in scores):
        status = "marginal"
    elif all_score is None or all_score.status == "cannot_judge" or all_nodata:
        status = "cannot_judge"
    else:
        status = "pass"
    if plan.problem is None and (all_score is None or all_score.status == "cannot_judge" or all_nodata):
        reasons.extend(f"cannot judge: {t_.message}" for t_ in all_nodata)
        if not plan.signals:
            reasons.append("cannot judge: no signal to compare")
    return CanaryReport(status=status, reasons=tuple(reasons), baseline=plan.baseline, canary=plan.canary,
                        windows=plan.windows, alpha=cfg.alpha, correction=cfg.correction, family_size=family_size,
                        tests=tuple(tests), scores=tuple(scores), pass_score=cfg.pass_score,
                        marginal_score=cfg.marginal_score, results=results, notes=tuple(notes))


def canary(req: CanaryRequest, progress: Progress = NULL_PROGRESS) -> CanaryReport:
    """:func:`plan_canary` then :func:`run_canary`."""
    return run_canary(plan_canary(req), progress)


# --- [[canary.gates]] ------------------------------------------------------------------------------------------


@dataclass
class _Emit:
    """Appends one rule's result for one segment."""

    rule: GateRule
    segment: str | None
    out: list[GateResult]

    def __call__(self, status: Literal["pass", "fail", "skip"], msg: str, observed: float | None = None,
                 limit: float | None = None) -> None:
        self.out.append(GateResult(rule=self.rule.label, metric=self.rule.metric, segment=self.segment,
                                   status=status, observed=observed, limit=limit, message=msg))


def _rule_segments(rule: GateRule, plan: CanaryPlan) -> list[str | None]:
    if rule.segment is None:
        return [None]
    if rule.segment.endswith("=*"):
        key = rule.segment[:-2]
        found: list[str | None] = [s for s in plan.segments if s.partition("=")[0] == key]
        return found or [rule.segment]
    return [rule.segment]


def _better(metric: str) -> str | None:
    return "lower" if metric == ERROR_RATE else signal_spec(metric).better


def _gate_results(plan: CanaryPlan, columns: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                  tests: Sequence[CanaryTest]) -> list[GateResult]:
    from harness.monitor.run import segment_values

    cfg = plan.request.config
    t = plan.table
    canary = t["is_canary"].to_numpy(zero_copy_only=False).astype(bool)
    hours = _hours(t)
    by_test = {(x.signal, x.segment): x for x in tests}
    out: list[GateResult] = []
    for rule in cfg.gates:
        rule_out: list[GateResult] = []
        for seg in _rule_segments(rule, plan):
            res = _Emit(rule, seg, rule_out)

            if seg is None:
                mask = masks["all"]
            elif seg in masks:
                mask = masks[seg]
            else:
                key, _, value = seg.partition("=")
                mask = np.array([v == value for v in segment_values(t, key)], dtype=bool)
            n_can = int((mask & canary).sum())
            if n_can == 0:
                res("fail", "cannot judge: no canary records here")
                continue
            if seg is not None and n_can < rule.min_segment_size:
                res("skip", f"segment has {n_can} canary records, fewer than min_segment_size={rule.min_segment_size}")
                continue
            _rule(rule, seg, mask, canary, columns, t, by_test, cfg.alpha, res, hours)
        out.extend(rule_out)
        small = [r for r in rule_out if r.status == "skip"]
        if rule.max_skipped is not None and len(small) > rule.max_skipped:
            out.append(GateResult(rule=rule.label, metric=rule.metric, segment=rule.segment, status="fail",
                                  observed=float(len(small)), limit=float(rule.max_skipped),
                                  message=f"{len(small)} segments skipped for having fewer than "
                                  f"{rule.min_segment_size} canary records "
                                  f"({', '.join(str(r.segment) for r in small)}); max_skipped={rule.max_skipped}"))
    return out


def _rule(rule: GateRule, seg: str | None, mask: np.ndarray, canary: np.ndarray, columns: dict[str, np.ndarray],
          t: pa.Table, by_test: dict[tuple[str, str], CanaryTest], alpha: float, res: Any, hours: np.ndarray
          ) -> None:
    if rule.metric == "latency":
        values = _as_float(t, LATENCY_PREFIX + str(rule.stage))[mask & canary]
        values = values[~np.isnan(values)]
        if not values.size:
            res("fail", f"cannot judge: no canary latency logged for stage {rule.stage!r}")
            return
        q = float(np.quantile(values, rule.quantile))
        assert rule.max_seconds is not None
        res("pass" if q <= rule.max_seconds else "fail", f"p{round(rule.quantile * 100)} {rule.stage} latency {q:.3f}s "
            f"over {values.size} canary records (limit {rule.max_seconds}s)", q, rule.max_seconds)
        return
    col = columns.get(rule.metric)
    if col is None:
        col = _as_float(t, rule.metric)
    measured = ~np.isnan(col)
    vals = col[mask & canary & measured]
    if not vals.size:
        res("fail", f"cannot judge: no canary record measures {rule.metric} here")
        return
    mean = float(vals.mean())
    is_rate = rule.metric == ERROR_RATE or _signal_kind(rule.metric) == "rate"
    if rule.max_rate is not None:
        if not is_rate:
            res("fail", f"cannot judge: max_rate needs a 0/1 signal; {rule.metric} is numeric")
        else:
            k, n = int(vals.sum()), int(vals.size)
            interval = wilson_interval(k, n, rule.confidence)
            assert interval is not None
            upper = interval[1] if rule.wilson else k / n
            how = f"Wilson {round(rule.confidence * 100)}% upper bound" if rule.wilson else "rate"
            res("pass" if upper <= rule.max_rate else "fail",
                f"{k}/{n} = {k / n:.3%}; {how} {upper:.3%} vs limit {rule.max_rate:.3%}", upper, rule.max_rate)
    for limit, floor in ((rule.min, True), (rule.max, False)):
        if limit is None:
            continue
        ok = mean >= limit if floor else mean <= limit
        res("pass" if ok else "fail", f"canary {'rate' if is_rate else 'mean'} {mean:.4g} vs "
            f"{'floor' if floor else 'ceiling'} {limit}", mean, limit)
    if rule.max_drop is None and rule.max_abs_drop is None:
        return
    on_base = mask & ~canary & measured
    bvals = col[on_base]
    if not bvals.size:
        res("fail", f"cannot judge: no baseline record measures {rule.metric} here")
        return
    # the baseline's mean over the canary's hourly mix (as the tests compare), not over its own hours
    st = merge_strata(hours[on_base], hours[mask & canary & measured])
    weights = standardizing_weights(st.baseline, st.canary, st.strata)
    base_mean = float(np.dot(weights, bvals) / weights.sum()) if weights.sum() > 0 else float(bvals.mean())
    worse = base_mean - mean if _better(rule.metric) == "higher" else mean - base_mean
    rel = worse / abs(base_mean) if base_mean else (math.inf if worse > 0 else 0.0)
    test = by_test.get((rule.metric, seg or "all"))
    if test is None or test.p_adjusted is None:
        significant, p_txt = False, "not tested (nodata)" if test is not None else "not tested"
        known = False
    else:
        significant, p_txt, known = test.p_adjusted < alpha, f"p_adj={test.p_adjusted:.2g}", True
    counts = significant or not rule.require_significant
    for limit, observed, what in ((rule.max_drop, rel, "relative"), (rule.max_abs_drop, worse, "absolute")):
        if limit is None:
            continue
        over = observed > limit
        unjudged = over and not counts and not known
        msg = (f"{what} drop {observed:+.2%} vs limit {limit:.2%}" if what == "relative" else
               f"{what} drop {observed:+.4g} vs limit {limit}") + f"; {base_mean:.4g} -> {mean:.4g}, {p_txt}"
        if unjudged:
            msg = "cannot judge: " + msg + "; set require_significant = false to judge the drop as observed"
        elif over and not counts:
            msg += "; not counted: within noise"
        res("fail" if over and (counts or unjudged) else "pass", msg, observed, limit)
