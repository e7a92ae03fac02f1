"""One monitor pass: windows of stored production records, their signals, drift tests, SLOs and log contracts.

For each judged day D (in the ``[monitor] timezone``) the pass compares D with

- ``day_over_day``: day D-1, restricted to the hours D holds (a partial day is compared with the same hours);
- ``week_over_week``: day D-7 at the same hours (same weekday and hour: the aligned comparison);
- optionally the golden set (``golden``: query signals of production against the golden queries), or
  instead of all of these one pair of ``named`` windows;

overall and per segment (each value of each ``[monitor] segments`` attribute with records in D), on every
signal of :mod:`harness.monitor.signals`, the segment mix itself, the log's null rates, and the query
embeddings (MMD on the seeded sample). :func:`harness.stats.drift.drift_alarms` adjusts the week-over-week,
golden and named tests as one Benjamini-Hochberg family and the day-over-day ones as another, and applies
the seasonality rule. A test whose windows hold fewer than
``min_window`` values is counted as untestable, never passed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.errors import HarnessError
from harness.monitor.model import Distribution, MonitorReport, SampleNote, SeriesPoint
from harness.monitor.signals import (
    CHEAP_SIGNALS,
    LATENCY_PREFIX,
    SAMPLED_SIGNALS,
    part_signals,
    signal_kind,
)
from harness.progress import NULL_PROGRESS, Progress
from harness.stats.drift import (
    CategoricalDrift,
    Comparison,
    DriftTest,
    NumericDrift,
    categorical_drift,
    drift_alarms,
    mmd_test,
    numeric_drift,
)
from harness.types import MonitorConfig

ALL = "all"
EMBEDDING_SIGNAL = "query_embedding"
GOLDEN_SIGNALS = ("query_chars", "query_words", "language", "golden_distance", "golden_cluster")


@dataclass(frozen=True)
class Window:
    """A half-open time range [start, end) in UTC, labelled; ``hours``, when set, keeps only records whose
    local hour is one of them (a reference matched to the current window's hours)."""

    label: str
    start: dt.datetime
    end: dt.datetime
    hours: frozenset[int] | None = None


@dataclass(frozen=True)
class Pair:
    comparison: Comparison
    reference: Window | None  # None: the golden set
    current: Window


def parse_day(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise HarnessError(f"{what}: '{text}' is not a day (YYYY-MM-DD)") from None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HarnessError(f"[monitor] timezone: unknown time zone '{name}' (an IANA name such as 'UTC' or "
                           "'Europe/Paris')") from None


def day_window(day: dt.date, tz: ZoneInfo, hours: frozenset[int] | None = None) -> Window:
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    return Window(day.isoformat(), start, end, hours)


def parse_range(text: str, tz: ZoneInfo, what: str) -> Window:
    """``DAY`` or ``DAY..DAY`` (inclusive days) as a window."""
    first, _, last = text.partition("..")
    a = parse_day(first.strip(), what)
    b = parse_day(last.strip(), what) if last else a
    if b < a:
        raise HarnessError(f"{what}: '{text}' ends before it starts")
    return Window(text, day_window(a, tz).start, day_window(b, tz).end)


# --- the records of a window ----------------------------------------------------------------------------


class SignalFrames:
    """The cheap signals of the store's parts, read (or computed and cached) once per pass."""

    def __init__(self, parts_by_day: dict[str, list[Path]], cache_root: Path, contracts: Any, seed: int,
                 tz: ZoneInfo) -> None:
        self.parts_by_day = parts_by_day
        self.cache_root = cache_root
        self.contracts = contracts
        self.seed = seed
        self.tz = tz
        self._parts: dict[Path, pa.Table] = {}
        self._windows: dict[Window, pa.Table | None] = {}

    def _part(self, part: Path) -> pa.Table:
        if part not in self._parts:
            self._parts[part] = part_signals(part, self.cache_root, self.contracts, seed=self.seed)
        return self._parts[part]

    def window(self, w: Window) -> pa.Table | None:
        """The window's signal rows (None when it holds none), computed once per pass."""
        if w not in self._windows:
            self._windows[w] = self._read(w)
        return self._windows[w]

    def _read(self, w: Window) -> pa.Table | None:
        days = []
        d = (w.start - dt.timedelta(days=1)).date()
        while d <= w.end.date():
            days.append(d.isoformat())
            d += dt.timedelta(days=1)
        tables = [self._part(p) for day in days for p in self.parts_by_day.get(day, [])]
        if not tables:
            return None
        t = pa.concat_tables(tables, promote_options="default")
        ts = t["ts"]
        mask = pc.and_(pc.greater_equal(ts, pa.scalar(w.start, pa.timestamp("us", tz="UTC"))),
                       pc.less(ts, pa.scalar(w.end, pa.timestamp("us", tz="UTC"))))
        t = t.filter(mask)
        if w.hours is not None and t.num_rows:
            hours = local_hours(t["ts"], self.tz)
            t = t.filter(pa.array(np.isin(hours, sorted(w.hours))))
        return t if t.num_rows else None


def local_hours(ts: pa.ChunkedArray | pa.Array, tz: ZoneInfo) -> np.ndarray:
    """Each timestamp's hour of day in ``tz`` (Arrow extracts fields of a zoned timestamp in its zone)."""
    return np.asarray(pc.hour(pc.cast(ts, pa.timestamp("us", tz=tz.key))).to_numpy(zero_copy_only=False))


def segment_values(t: pa.Table, key: str) -> np.ndarray:
    """Each row's value of attribute ``key`` (None where absent), as an object array."""
    arr = t["attrs"].combine_chunks()
    return np.asarray(pc.map_lookup(arr, key, "first").to_numpy(zero_copy_only=False), dtype=object)


# --- sampled (expensive) signals ------------------------------------------------------------------------


@dataclass
class SampledSignals:
    """Embedding-derived and other expensive signals for sampled records, computed once per record."""

    embed: Callable[[list[str]], np.ndarray] | None
    golden_queries: Sequence[str]
    groundedness: Callable[[list[str]], dict[str, float | None]] | None = None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # record id -> signal -> value
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    _golden: np.ndarray | None = None
    _centroids: np.ndarray | None = None

    def golden_vectors(self) -> np.ndarray | None:
        if self.embed is None or not self.golden_queries:
            return None
        if self._golden is None:
            self._golden = np.asarray(self.embed(list(self.golden_queries)), dtype=np.float32)
            k = int(max(2, min(20, round(np.sqrt(len(self._golden) / 2)))))
            if len(self._golden) >= 5 * k:
                import faiss

                km = faiss.Kmeans(self._golden.shape[1], k, niter=20, seed=1234, spherical=True, verbose=False,
                                  min_points_per_centroid=5)
                km.train(np.ascontiguousarray(self._golden))
                self._centroids = np.asarray(km.centroids, dtype=np.float32)
            else:
                self._centroids = self._golden
        return self._golden

    def golden_signals(self) -> dict[str, list[Any]]:
        """The golden queries' own query signals (each golden case's distance to the nearest *other* one)."""
        import py3langid

        gold = self.golden_vectors()
        out: dict[str, list[Any]] = {
            "query_chars": [len(q) for q in self.golden_queries],
            "query_words": [len(q.split()) for q in self.golden_queries],
            "language": [py3langid.classify(q)[0] for q in self.golden_queries],
        }
        if gold is not None and len(gold) > 1:
            sims = gold @ gold.T
            np.fill_diagonal(sims, -np.inf)
            out["golden_distance"] = [float(1.0 - s) for s in sims.max(axis=1)]
            assert self._centroids is not None
            out["golden_cluster"] = [f"c{int(i):02d}" for i in np.argmax(gold @ self._centroids.T, axis=1)]
        return out

    def compute(self, ids: Sequence[str], queries: Sequence[str]) -> None:
        import py3langid

        todo = [(i, q) for i, q in zip(ids, queries, strict=True) if i not in self.values]
        if not todo:
            return
        for rid, q in todo:
            self.values[rid] = {"language": py3langid.classify(q)[0]}
        gold = self.golden_vectors()
        if self.embed is not None:
            vecs = np.asarray(self.embed([q for _, q in todo]), dtype=np.float32)
            for (rid, _), v in zip(todo, vecs, strict=True):
                self.vectors[rid] = v
            if gold is not None:
                assert self._centroids is not None
                dist = 1.0 - (vecs @ gold.T).max(axis=1)
                cluster = np.argmax(vecs @ self._centroids.T, axis=1)
                for (rid, _), d, c in zip(todo, dist, cluster, strict=True):
                    self.values[rid]["golden_distance"] = float(d)
                    self.values[rid]["golden_cluster"] = f"c{int(c):02d}"

    def add_groundedness(self, ids: Sequence[str]) -> None:
        if self.groundedness is None:
            return
        todo = [i for i in ids if "groundedness" not in self.values.get(i, {})]
        if todo:
            for rid, value in self.groundedness(todo).items():
                self.values.setdefault(rid, {})["groundedness"] = value


# --- the tests ------------------------------------------------------------------------------------------


def _column(t: pa.Table, name: str) -> pa.ChunkedArray | None:
    return t[name] if name in t.column_names else None


def _numeric(values: pa.ChunkedArray | Sequence[Any] | None) -> np.ndarray:
    """The non-null, finite values as floats."""
    if values is None:
        return np.zeros(0)
    if isinstance(values, pa.ChunkedArray):
        arr = pc.drop_null(values).to_numpy(zero_copy_only=False).astype(np.float64)
    else:
        arr = np.array([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def _categories(values: pa.ChunkedArray | Sequence[Any] | None) -> dict[str, int]:
    """Counts per category of the non-null values (booleans as "true"/"false")."""
    if values is None:
        return {}
    if isinstance(values, pa.ChunkedArray):
        counts = pc.value_counts(pc.drop_null(values).combine_chunks()).to_pylist() if len(values) else []
        return {(("true" if c["values"] else "false") if isinstance(c["values"], bool) else str(c["values"])):
                int(c["counts"]) for c in counts}
    out: dict[str, int] = {}
    for v in values:
        if v is None:
            continue
        key = ("true" if v else "false") if isinstance(v, bool) else str(v)
        out[key] = out.get(key, 0) + 1
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass
class _Family:
    """The pass's tests, and what is needed to show an alarmed one."""

    alpha: float
    min_window: int
    seed: int
    n_resamples: int = 200
    tests: list[DriftTest] = field(default_factory=list)
    shown: dict[tuple[str, str, str, str], Distribution] = field(default_factory=dict)
    _seq: int = 0

    def _seed(self) -> int:
        self._seq += 1
        return self.seed * 1_000_003 + self._seq

    def untestable(self, signal: str, segment: str, pair: Pair, ref_label: str, why: str) -> None:
        self.tests.append(DriftTest(signal, segment, pair.comparison, ref_label, pair.current.label, "ks"
                                    if signal_is_numeric(signal) else "chi2", None, None, why))

    def numeric(self, signal: str, segment: str, pair: Pair, ref_label: str, ref: np.ndarray, cur: np.ndarray
                ) -> None:
        if len(ref) < self.min_window or len(cur) < self.min_window:
            self.untestable(signal, segment, pair, ref_label,
                            f"{len(ref)} and {len(cur)} values (fewer than {self.min_window})")
            return
        d: NumericDrift = numeric_drift(ref, cur, alpha=self.alpha, n_resamples=self.n_resamples, seed=self._seed())
        q = d.quantiles
        moved = (f"p10 {_fmt(q['p10'][0])} -> {_fmt(q['p10'][1])}, p50 {_fmt(q['p50'][0])} -> {_fmt(q['p50'][1])}, "
                 f"p90 {_fmt(q['p90'][0])} -> {_fmt(q['p90'][1])}")
        if d.moved_bin is not None:
            upper, r_share, c_share = d.moved_bin
            moved += f"; bin <= {_fmt(upper)}: {r_share:.1%} -> {c_share:.1%}"
        base = DriftTest(signal, segment, pair.comparison, ref_label, pair.current.label, "", None, None, moved)
        psi_moved = (f"{moved}; PSI {_fmt(d.psi or 0)} (calibrated threshold {_fmt(d.psi_threshold or 0)}; "
                     f"fixed rule PSI > 0.2: {'fires' if d.psi_fixed_rule else 'quiet'})")
        self.tests += [replace(base, test="ks", p_value=d.ks_p_value, effect=d.ks_statistic),
                       replace(base, test="wasserstein", p_value=d.wasserstein_p_value, effect=d.wasserstein),
                       replace(base, test="psi", p_value=d.psi_p_value, effect=d.psi, moved=psi_moved)]
        labels = _bin_labels(d.edges)
        self.shown[(signal, segment, ref_label, pair.current.label)] = Distribution(
            signal, segment, ref_label, pair.current.label, "numeric", labels, d.reference_fractions,
            d.current_fractions, d.n_ref, d.n_cur)

    def categorical(self, signal: str, segment: str, pair: Pair, ref_label: str, ref: dict[str, int],
                    cur: dict[str, int]) -> None:
        n_ref, n_cur = sum(ref.values()), sum(cur.values())
        if n_ref < self.min_window or n_cur < self.min_window:
            self.untestable(signal, segment, pair, ref_label, f"{n_ref} and {n_cur} values (fewer than "
                            f"{self.min_window})")
            return
        d: CategoricalDrift = categorical_drift(ref, cur, n_resamples=self.n_resamples, seed=self._seed())
        if d.chi2_p_value is None:  # one category on both sides: nothing can move
            return
        moved = f"{d.moved[0]}: {d.moved[1]:.1%} -> {d.moved[2]:.1%}" if d.moved else ""
        base = DriftTest(signal, segment, pair.comparison, ref_label, pair.current.label, "", None, None, moved)
        self.tests += [replace(base, test="chi2", p_value=d.chi2_p_value, effect=d.chi2),
                       replace(base, test="jensen_shannon", p_value=d.js_p_value, effect=d.js)]
        self.shown[(signal, segment, ref_label, pair.current.label)] = Distribution(
            signal, segment, ref_label, pair.current.label, "categorical", d.categories, d.reference_shares,
            d.current_shares, d.n_ref, d.n_cur)

    def embedding(self, segment: str, pair: Pair, ref_label: str, ref: np.ndarray, cur: np.ndarray) -> None:
        if len(ref) < self.min_window or len(cur) < self.min_window:
            self.tests.append(DriftTest(EMBEDDING_SIGNAL, segment, pair.comparison, ref_label, pair.current.label,
                                        "mmd", None, None, f"{len(ref)} and {len(cur)} sampled queries"))
            return
        r = mmd_test(ref, cur, n_permutations=self.n_resamples, seed=self._seed())
        self.tests.append(DriftTest(EMBEDDING_SIGNAL, segment, pair.comparison, ref_label, pair.current.label,
                                    "mmd", r.p_value, r.statistic,
                                    f"MMD² {_fmt(r.statistic or 0)} on {len(ref)} vs {len(cur)} sampled queries"))


def signal_is_numeric(name: str) -> bool:
    try:
        return signal_kind(name) == "numeric"
    except KeyError:
        return False


def _bin_labels(edges: Sequence[float]) -> tuple[str, ...]:
    if not edges:
        return ("all",)
    labels = [f"<= {_fmt(edges[0])}"]
    labels += [f"{_fmt(a)}-{_fmt(b)}" for a, b in itertools.pairwise(edges)]
    labels.append(f"> {_fmt(edges[-1])}")
    return tuple(labels)


def _signal_names(t: pa.Table) -> list[str]:
    names = [s.name for s in CHEAP_SIGNALS if s.name in t.column_names]
    return names + sorted(c for c in t.column_names if c.startswith(LATENCY_PREFIX))


def _present(values: pa.ChunkedArray | Sequence[Any] | None) -> bool:
    if values is None:
        return False
    if isinstance(values, pa.ChunkedArray):
        return values.null_count < len(values)
    return any(v is not None for v in values)


# --- the pass ---------------------------------------------------------------------------------------------


@dataclass
class MonitorInputs:
    """What a pass reads, resolved by the caller: the store's parts per day, the config and the samplers."""

    project: str
    config: MonitorConfig
    parts_by_day: dict[str, list[Path]]
    cache_root: Path
    contracts: Any
    sampled: SampledSignals
    read_raw: Callable[[Window, Sequence[str]], pa.Table]  # the window's stored records (LOG_SCHEMA columns)


def judged_days(parts_by_day: dict[str, list[Path]], since: dt.date | None, until: dt.date | None) -> list[dt.date]:
    stored = sorted(dt.date.fromisoformat(d) for d in parts_by_day)
    if not stored:
        return []
    if until is None and since is not None and since > stored[-1]:
        raise HarnessError(f"--since {since} is after the newest stored day ({stored[-1]})",
                           hint="ingest the logs of those days first, or give an earlier --since")
    last = until or stored[-1]
    first = since or last
    if last < first:
        raise HarnessError(f"--until {last} is before --since {first}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def pairs_for(days: Sequence[dt.date], frames: SignalFrames, tz: ZoneInfo, golden: bool, notes: list[str],
              empty: list[str], newest: dt.datetime | None = None) -> list[Pair]:
    """The comparisons of each judged day. The references of the newest stored day (still being logged, it may
    be partial) keep only the hours up to its last record's; any other day is compared whole, since an hour
    without a record is normal at night."""
    out: list[Pair] = []
    for day in days:
        cur = day_window(day, tz)
        t = frames.window(cur)
        if t is None:
            notes.append(f"{day}: no records")
            empty.append(day.isoformat())
            continue
        hours = None
        if newest is not None and cur.start <= newest < cur.end:
            last_hour = int(local_hours(pa.array([newest], pa.timestamp("us", tz="UTC")), tz)[0])
            hours = frozenset(range(last_hour + 1)) if last_hour < 23 else None
        for comparison, back in (("day_over_day", 1), ("week_over_week", 7)):
            ref = day_window(day - dt.timedelta(days=back), tz, hours)
            if frames.window(ref) is None:
                notes.append(f"{day}: no {comparison.replace('_', '-')} reference (no records on {ref.label})")
                continue
            out.append(Pair(comparison, ref, cur))  # type: ignore[arg-type]
        if golden:
            out.append(Pair("golden", None, cur))
    return out


def run_monitor(inputs: MonitorInputs, *, days: Sequence[dt.date] = (), named: tuple[Window, Window] | None = None,
                golden: bool = False, progress: Progress = NULL_PROGRESS) -> MonitorReport:
    cfg = inputs.config
    tz = zone(cfg.timezone)
    frames = SignalFrames(inputs.parts_by_day, inputs.cache_root, inputs.contracts, cfg.seed, tz)
    notes: list[str] = []
    empty: list[str] = []
    if named is not None:
        if named[0].start < named[1].end and named[1].start < named[0].end:
            raise HarnessError(f"--reference {named[0].label} and --current {named[1].label} overlap",
                               hint="compare two separate windows")
        pairs = [Pair("named", named[0], named[1])]
        for w in named:
            if frames.window(w) is None:
                raise HarnessError(f"window {w.label}: no records in the store")
    else:
        pairs = pairs_for(days, frames, tz, golden, notes, empty, _newest(frames))
    family = _Family(cfg.alpha, cfg.min_window, cfg.seed)
    samples: list[SampleNote] = []
    golden_ref = inputs.sampled.golden_signals() if any(p.reference is None for p in pairs) else {}
    golden_vecs = inputs.sampled.golden_vectors() if golden_ref else None
    contract_findings: list[Any] = []
    slo_results: list[Any] = []
    currents: dict[str, Window] = {}
    checked: set[str] = set()
    with progress.task("monitor: windows", len(pairs)) as advance:
        for pair in pairs:
            cur_t = frames.window(pair.current)
            assert cur_t is not None
            ref_t = frames.window(pair.reference) if pair.reference is not None else None
            ref_label = pair.reference.label if pair.reference is not None else "golden"
            if pair.reference is not None and pair.reference.hours is not None:
                ref_label += f" (hours {_hours_text(pair.reference.hours)})"
            cur_s = _sample(cur_t, cfg.embedding_sample)
            _compute_sampled(inputs, cur_s, cfg.groundedness_sample)
            ref_s = _sample(ref_t, cfg.embedding_sample) if ref_t is not None else None
            if ref_s is not None:
                _compute_sampled(inputs, ref_s, cfg.groundedness_sample)
            for segment, cur_seg, cur_seg_s, ref_seg, ref_seg_s in _segments(cfg.segments, cur_t, cur_s, ref_t, ref_s):
                if pair.reference is None:
                    _golden_tests(family, inputs.sampled, pair, segment, cur_seg, cur_seg_s, golden_ref, golden_vecs)
                    continue
                assert ref_seg is not None and ref_seg_s is not None
                _window_tests(family, inputs.sampled, pair, ref_label, segment, ref_seg, cur_seg, ref_seg_s, cur_seg_s)
                if segment == ALL:
                    for key in cfg.segments:
                        family.categorical(f"segment:{key}", ALL, pair, ref_label,
                                           _categories(segment_values(ref_seg, key)),
                                           _categories(segment_values(cur_seg, key)))
            if pair.current.label not in currents:
                currents[pair.current.label] = pair.current
                samples.append(SampleNote(EMBEDDING_SIGNAL, pair.current.label, ALL, cur_s.num_rows, cur_t.num_rows))
            if pair.reference is not None:  # the log's own checks: limits and shape once per day, null-rate tests
                found, tests = _log_checks(inputs, pair, ref_label)  # per comparison (into the same families)
                if pair.current.label not in checked:
                    checked.add(pair.current.label)
                    contract_findings += found
                family.tests += tests
            advance(1)
    for label, w in currents.items():
        slo_results += _slo(inputs, w, label)
        if label not in checked:  # a day judged only against the golden set: its limits still apply
            contract_findings += _log_limits(inputs, w)
    report = drift_alarms(family.tests, cfg.alpha)
    distributions = tuple(family.shown[k] for k in dict.fromkeys(
        (a.test.signal, a.test.segment, a.test.reference, a.test.current) for a in report.alarms)
        if k in family.shown)
    if named is None:  # a day with records but no reference at all is still judged on its SLOs and limits
        for day in days:
            w = day_window(day, tz)
            if w.label not in currents and day.isoformat() not in empty:
                currents[w.label] = w
                slo_results += _slo(inputs, w, w.label)
                contract_findings += _log_limits(inputs, w)
    for key in cfg.segments:
        if not any(t.segment.startswith(f"{key}=") for t in family.tests):
            notes.append(f"segment attribute '{key}' is on no record of the judged windows")
    judged_windows = dict(currents)  # every day with records: with a reference, against the golden set, or alone
    judged = tuple(sorted(judged_windows))
    segments = (ALL, *sorted({t.segment for t in family.tests if t.segment != ALL}))
    series = _series(frames, [judged_windows[label] for label in judged], cfg.segments)
    n_records = sum(t.num_rows for t in (frames.window(judged_windows[label]) for label in judged) if t is not None)
    return MonitorReport(
        project=inputs.project, windows=judged, segments=segments, n_records=n_records, drift=report,
        series=series, distributions=distributions, slo=tuple(slo_results), contracts=tuple(contract_findings),
        samples=tuple(samples), not_judged=tuple(notes), empty_windows=tuple(empty),
        settings={"alpha": cfg.alpha, "min_window": cfg.min_window, "timezone": cfg.timezone, "seed": cfg.seed,
                  "embedding_sample": cfg.embedding_sample, "groundedness_sample": cfg.groundedness_sample,
                  "segments": list(cfg.segments), "comparisons": sorted({p.comparison for p in pairs}),
                  "n_resamples": family.n_resamples},
    )


def _hours_text(hours: frozenset[int]) -> str:
    hs = sorted(hours)
    return f"{hs[0]:02d}-{hs[-1]:02d}" if hs == list(range(hs[0], hs[-1] + 1)) else ",".join(f"{h:02d}" for h in hs)


def _sample(t: pa.Table, n: int) -> pa.Table:
    """The window's seeded sample: its ``n`` records with the smallest sample keys."""
    if t.num_rows <= n:
        return t
    keys = t["sample_key"].to_numpy()
    idx = np.argpartition(keys, n - 1)[:n]
    return t.take(pa.array(np.sort(idx)))


def _compute_sampled(inputs: MonitorInputs, sample: pa.Table, n_grounded: int) -> None:
    ids = sample["record_id"].to_pylist()
    inputs.sampled.compute(ids, sample["query"].to_pylist())
    if n_grounded and inputs.sampled.groundedness is not None:
        inputs.sampled.add_groundedness(ids[:n_grounded])


def _segments(keys: Sequence[str], cur: pa.Table, cur_s: pa.Table, ref: pa.Table | None, ref_s: pa.Table | None
              ) -> list[tuple[str, pa.Table, pa.Table, pa.Table | None, pa.Table | None]]:
    out = [(ALL, cur, cur_s, ref, ref_s)]
    for key in keys:
        values = segment_values(cur, key)
        for v in sorted({x for x in values if x is not None}):
            out.append((f"{key}={v}", cur.filter(pa.array(values == v)), _pick(cur_s, key, v),
                        _pick(ref, key, v) if ref is not None else None,
                        _pick(ref_s, key, v) if ref_s is not None else None))
    return out


def _pick(t: pa.Table, key: str, value: str) -> pa.Table:
    return t.filter(pa.array(segment_values(t, key) == value))


def _sampled_values(sampled: SampledSignals, t: pa.Table, signal: str) -> list[Any]:
    return [sampled.values.get(rid, {}).get(signal) for rid in t["record_id"].to_pylist()]


def _vectors(sampled: SampledSignals, t: pa.Table) -> np.ndarray:
    vecs = [sampled.vectors[r] for r in t["record_id"].to_pylist() if r in sampled.vectors]
    return np.stack(vecs) if vecs else np.zeros((0, 1))


def _test_signal(family: _Family, signal: str, segment: str, pair: Pair, ref_label: str,
                 ref: pa.ChunkedArray | Sequence[Any] | None, cur: pa.ChunkedArray | Sequence[Any] | None) -> None:
    if not _present(ref) and not _present(cur):
        return  # not logged on either side: nothing to compare (a field that appears or vanishes is a contract finding)
    if signal_is_numeric(signal):
        family.numeric(signal, segment, pair, ref_label, _numeric(ref), _numeric(cur))
    else:
        family.categorical(signal, segment, pair, ref_label, _categories(ref), _categories(cur))


def _window_tests(family: _Family, sampled: SampledSignals, pair: Pair, ref_label: str, segment: str,
                  ref: pa.Table, cur: pa.Table, ref_s: pa.Table, cur_s: pa.Table) -> None:
    for signal in dict.fromkeys(_signal_names(cur) + _signal_names(ref)):
        _test_signal(family, signal, segment, pair, ref_label, _column(ref, signal), _column(cur, signal))
    for spec in SAMPLED_SIGNALS:
        _test_signal(family, spec.name, segment, pair, ref_label, _sampled_values(sampled, ref_s, spec.name),
                     _sampled_values(sampled, cur_s, spec.name))
    if sampled.embed is not None:
        family.embedding(segment, pair, ref_label, _vectors(sampled, ref_s), _vectors(sampled, cur_s))


def _golden_tests(family: _Family, sampled: SampledSignals, pair: Pair, segment: str, cur: pa.Table,
                  cur_s: pa.Table, golden_ref: dict[str, list[Any]], golden_vecs: np.ndarray | None) -> None:
    for signal in GOLDEN_SIGNALS:
        if signal not in golden_ref:
            continue
        values = _column(cur, signal) if signal in cur.column_names else _sampled_values(sampled, cur_s, signal)
        _test_signal(family, signal, segment, pair, "golden", golden_ref[signal], values)
    if golden_vecs is not None:
        family.embedding(segment, pair, "golden", golden_vecs, _vectors(sampled, cur_s))


_RAW_CONTRACT_COLUMNS = ("record_id", "ts", "query", "answer", "attrs", "fields", "ingested_at")
_RAW_SLO_COLUMNS = ("latency", "error", "timeout", "attrs")


def _log_checks(inputs: MonitorInputs, pair: Pair, ref_label: str) -> tuple[list[Any], list[DriftTest]]:
    from harness.monitor.logcontracts import check_log

    assert pair.reference is not None
    cur = inputs.read_raw(pair.current, _RAW_CONTRACT_COLUMNS)
    ref = inputs.read_raw(pair.reference, _RAW_CONTRACT_COLUMNS)
    findings, tests = check_log(cur, inputs.config.log_contract, window=pair.current.label, reference=ref,
                                reference_window=ref_label, comparison=pair.comparison)
    small = min(cur.num_rows, ref.num_rows) < inputs.config.min_window  # the family's one rule for small windows
    why = f"{ref.num_rows} and {cur.num_rows} records (fewer than {inputs.config.min_window})"
    return list(findings), [replace(t, p_value=None, moved=why) if small else t for t in tests]


def _log_limits(inputs: MonitorInputs, w: Window) -> list[Any]:
    """The log contract's limits (null rates, duplicates, freshness) on a window with no reference."""
    from harness.monitor.logcontracts import check_log

    findings, _ = check_log(inputs.read_raw(w, _RAW_CONTRACT_COLUMNS), inputs.config.log_contract, window=w.label)
    return list(findings)


def _newest(frames: SignalFrames) -> dt.datetime | None:
    """The newest stored record's time (the newest day may still be being logged)."""
    days = sorted(frames.parts_by_day)
    if not days:
        return None
    t = pa.concat_tables([frames._part(p) for p in frames.parts_by_day[days[-1]]], promote_options="default")
    newest = pc.max(t["ts"]).as_py()
    return newest if isinstance(newest, dt.datetime) else None


def _slo(inputs: MonitorInputs, w: Window, label: str) -> list[Any]:
    from harness.monitor.slo import evaluate_slo

    slo = inputs.config.slo
    if not slo.latency_s and slo.error_rate is None and slo.timeout_rate is None:
        return []
    raw = inputs.read_raw(w, _RAW_SLO_COLUMNS)
    out = list(evaluate_slo(raw, slo, window=label, segment=ALL))
    for key in inputs.config.segments:
        values = segment_values(raw, key)
        for v in sorted({x for x in values if x is not None}):
            out += evaluate_slo(raw.filter(pa.array(values == v)), slo, window=label, segment=f"{key}={v}")
    return out


def _series(frames: SignalFrames, windows: Sequence[Window], keys: Sequence[str]) -> tuple[SeriesPoint, ...]:
    points: list[SeriesPoint] = []
    for w in windows:
        t = frames.window(w)
        if t is None:
            continue
        groups: list[tuple[str, pa.Table]] = [(ALL, t)]
        for key in keys:
            values = segment_values(t, key)
            groups += [(f"{key}={v}", t.filter(pa.array(values == v)))
                       for v in sorted({x for x in values if x is not None})]
        for segment, g in groups:
            for signal in _signal_names(g):
                points.append(_point(signal, segment, w.label, g[signal]))
    return tuple(points)


def _point(signal: str, segment: str, window: str, column: pa.ChunkedArray) -> SeriesPoint:
    """The window's summary of one signal: the mean (numeric), the share of true (flags), the share of errors
    (error_kind), else the share of the most frequent category."""
    values = pc.drop_null(column)
    n = len(values)
    if n == 0:
        return SeriesPoint(signal, segment, window, None, 0)
    if signal_is_numeric(signal) or pa.types.is_boolean(values.type):
        return SeriesPoint(signal, segment, window, float(np.mean(values.to_numpy(zero_copy_only=False)
                                                                  .astype(np.float64))), n)
    if signal == "error_kind":
        return SeriesPoint(signal, segment, window, float(pc.sum(pc.not_equal(values, "none")).as_py() or 0) / n, n)
    counts = _categories(values)
    return SeriesPoint(signal, segment, window, max(counts.values()) / n, n)


def report_json_text(report: MonitorReport) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False)
