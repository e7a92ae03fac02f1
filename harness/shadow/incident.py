"""The incident snapshot (``harness incident --since TIME``): what a person needs in the first 30 minutes.

From the logged records (the project's store, or one ``--log FILE``) between a reference start and
``--until`` it builds:

1. **The timeline.** Time is cut into buckets of ``--window`` (default 1 h) on the ``[monitor] timezone``'s
   clock (a bucket size divides a day, so buckets sit at the same clock times every day; the first bucket
   after ``--since`` is cut at ``--since``). Per bucket: records per manifest id (records without one are
   counted as ``unknown``). Per manifest id: its live span (first and last record, share of the traffic
   since ``--since``). Deployments: a manifest id absent from the first counted bucket that first serves
   >= 5% of a bucket (``canary``), or first serves the majority (``rollout``), and an id that served >= 5%
   of a bucket and has no record after some bucket (``gone``). Only buckets with at least
   :data:`MIN_BUCKET_RECORDS` records count for shares (three records are not a traffic split).

2. **The reference and the first moved window.** The reference is the same length of time before
   ``--since`` as after it (at least 24 h; less when less is stored), restricted to the records of the
   manifest id that served most of it (so a canary running in the reference does not blur it). With fewer
   than ``[monitor] min_window`` such records the reference is the traffic of the id live when ``--since``
   begins, up to its first deployment (and the buckets judged start there).
   Each bucket from ``--since`` is tested against it, overall and per ``[monitor] segments`` value, on
   every directional signal (:func:`harness.monitor.signals.signal_spec` ``better`` is set:
   retrieval scores, the answer flags, ``error_kind`` as the rate of errors, ``timeout``,
   ``latency:<stage>``) and on the segment mix (overall only). The tests are the monitor's:
   Kolmogorov-Smirnov for a numeric signal (:func:`harness.stats.distribution.ks_2samp`, the KS of
   :func:`harness.stats.drift.numeric_drift`) and chi-squared of homogeneity for a rate or a mix
   (:func:`harness.stats.drift.chi_squared`, the chi-squared of :func:`harness.stats.drift.categorical_drift`);
   the moved cells are then described by ``numeric_drift`` / ``categorical_drift`` themselves (quantiles,
   the category that moved). Every test of the snapshot (buckets x signals x segments) is one
   Benjamini-Hochberg family (:func:`harness.stats.multiple.benjamini_hochberg`) at ``[monitor] alpha``. A
   cell whose windows hold fewer than ``min_window`` values is untestable: counted, never passed.

   **The seasonality rule.** When the reference spans at least 24 h, a bucket is compared only with the
   reference records at the same clock time of day (the same bucket slot of each reference day, pooled;
   with 7 days or more of reference, the same weekday and slot), like the monitor's day-over-day
   comparison at aligned hours: the busy hour is compared with the busy hour, so the daily cycle cannot
   look like an incident. A shorter reference is compared whole and the snapshot says that seasonality
   could not be told apart (``aligned = "none"``).

   A **move** is a significant test (adjusted p <= alpha) whose median (numeric; the mean when the medians
   tie) or rate moved in the signal's bad direction; the **first moved window** is the first bucket with a
   move. A segment-mix move has no bad direction: it is reported beside the moves, never one itself.

3. **Segments hit**: per segment value, the signals that moved from the first moved window on, ranked by
   the number of moved windows, then the largest effect (Cohen's h for a rate, the median's shift in
   reference standard deviations for a numeric signal).

4. **Versions**: the reference's manifest id ("before") and the ids serving >= 5% of the moved windows
   (else of the traffic since ``--since``) other than it ("after"), each looked up in the project's
   manifest files (``--manifest`` and every ``*.toml`` / ``*.yaml`` under the project that loads as one;
   ``.harness/`` and hidden folders skipped), the run store's headers and the replay store
   (``<home>/replays/*/``). An id found nowhere is listed as "manifest not found", never guessed. Then
   :func:`harness.diff.artifacts.manifest_changes` between before and each after, with text diffs from
   the snapshot store or from project files whose content still matches the pin.

5. **The verdict line**, ``moved`` / ``quiet`` / ``cannot_judge`` (no testable cell at all).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from harness.diff.records import ArtifactChange
from harness.errors import HarnessError
from harness.manifest import LoadedManifest
from harness.storage import Layout
from harness.types import Artifact, Frozen, Manifest, MonitorConfig

__all__ = [
    "Bucket", "Deployment", "IncidentSnapshot", "LiveSpan", "ManifestVersion", "Move", "SegmentHit", "SeriesPoint",
    "Tested", "VersionDiff", "incident_snapshot", "parse_window",
]

CANARY_SHARE = 0.05
MIN_BUCKET_RECORDS = 10
MIN_REFERENCE = dt.timedelta(hours=24)
MAX_SERIES = 12  # (signal, segment) series kept for the charts
MAX_MANIFEST_FILES = 400
UNKNOWN = "unknown"
ALL = "all"

Status = Literal["moved", "quiet", "cannot_judge"]
Direction = Literal["worse", "better", "none"]
Aligned = Literal["weekday_slot", "slot", "none"]


# ---- the records ------------------------------------------------------------------------------------------


class Bucket(Frozen):
    """One time bucket: [start, end) in UTC, its label in the monitor's zone, its records per manifest id."""

    index: int
    start: dt.datetime
    end: dt.datetime
    label: str
    n: int
    by_manifest: dict[str, int]
    judged: bool  # tested against the reference (from --since, or from the fallback reference's end)


class LiveSpan(Frozen):
    manifest_id: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    n: int
    share: float  # of the records since --since
    n_reference: int  # records in the reference window


class Deployment(Frozen):
    manifest_id: str
    event: Literal["live_at_start", "canary", "rollout", "gone"]
    at: dt.datetime  # the id's first record in that bucket (gone: its last record)
    bucket: str
    share: float  # its share of that bucket (gone: of the last bucket it served)


class Move(Frozen):
    """One significant test of one signal in one segment and bucket against the reference."""

    bucket: int
    window: str
    signal: str
    segment: str
    test: Literal["ks", "chi2"]
    statistic: str  # what reference_value / window_value are: "median", "mean", "rate", "share"
    reference_value: float | None
    window_value: float | None
    n_reference: int
    n_window: int
    p_value: float
    p_adjusted: float
    direction: Direction
    effect: float  # Cohen's h (rates) or the median shift in reference SDs (numeric); mix: Jensen-Shannon
    reference: str  # which reference records: "same slot" (aligned) or "whole reference"
    moved: str = ""  # what moved, in words (quantiles, the category)
    by_manifest: dict[str, float | None] = Field(default_factory=dict)  # its value in this window per manifest id


class SegmentHit(Frozen):
    """A segment value with a move from the first moved window on. ``specific``: some other value of the same
    key has no move on these signals (the move is this value's, not the whole traffic's)."""

    segment: str
    signals: tuple[str, ...]
    n_windows: int
    max_effect: float
    first_window: str
    specific: bool = True


class ManifestVersion(Frozen):
    manifest_id: str
    role: Literal["before", "after"]
    found: bool
    source: str | None = None  # where its manifest was found
    name: str | None = None
    note: str = ""


class VersionDiff(Frozen):
    before: str
    after: str
    changes: tuple[ArtifactChange, ...] = ()
    note: str = ""  # why there is no diff ("manifest not found", "the same manifest")


class SeriesPoint(Frozen):
    signal: str
    segment: str
    bucket: int
    value: float | None
    n: int


class Tested(Frozen):
    """What the snapshot tested: the size of the family, and what could not be tested."""

    n_buckets: int
    signals: tuple[str, ...]
    segments: tuple[str, ...]
    n_tests: int
    untestable: int
    min_window: int
    alpha: float
    bucket_sizes: tuple[int, int]  # (fewest, most) records in a judged bucket


class IncidentSnapshot(Frozen):
    project: str
    status: Status
    verdict: str
    since: dt.datetime
    until: dt.datetime
    window_seconds: int
    timezone: str
    source: str  # the log file, or the store
    reference_start: dt.datetime
    reference_end: dt.datetime
    reference_manifest: str | None
    reference_records: int
    reference_note: str
    aligned: Aligned
    rule: str
    buckets: tuple[Bucket, ...]
    spans: tuple[LiveSpan, ...]
    deployments: tuple[Deployment, ...]
    unknown_records: int
    moves: tuple[Move, ...]  # bad-direction moves, by bucket then effect
    better: int  # significant moves in the good direction (not an incident)
    mix_moves: tuple[Move, ...]
    first_moved: int | None  # bucket index
    segments_hit: tuple[SegmentHit, ...]
    versions: tuple[ManifestVersion, ...]
    diffs: tuple[VersionDiff, ...]
    tested: Tested
    series: tuple[SeriesPoint, ...]
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "quiet" else 1

    def bucket(self, index: int) -> Bucket:
        return self.buckets[index]


RULE = ("a bucket is compared with the reference records at the same clock time of day (same weekday and time "
        "with 7+ days of reference) when the reference spans 24 h or more, else with the whole reference; a "
        "move is a test significant after Benjamini-Hochberg over buckets x signals x segments whose median or "
        "rate moved in the signal's bad direction")


# ---- inputs ---------------------------------------------------------------------------------------------


def parse_window(text: str) -> dt.timedelta:
    """A bucket size: ``1h``, ``30m``, ``2h``, ``1d`` (it must divide a day: buckets keep their clock times)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not m:
        raise HarnessError(f"--window: {text!r} is not a duration", hint="for example 1h, 30m, 15m, 1d")
    seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if seconds < 60 or seconds > 86400 or 86400 % seconds or seconds != int(seconds):
        raise HarnessError(f"--window: {text!r} must be whole minutes that divide a day (1 min .. 1 d)",
                           hint="for example 1h, 30m, 15m, 2h, 1d")
    return dt.timedelta(seconds=int(seconds))


def _ts_us(ts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(ts, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False))


def _us(t: dt.datetime) -> int:
    delta = t.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))


def _floor(t: dt.datetime, tz: Any, step: dt.timedelta) -> dt.datetime:
    local = t.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    secs = (local - midnight).total_seconds()
    return (midnight + dt.timedelta(seconds=int(secs // step.total_seconds()) * step.total_seconds())
            ).astimezone(dt.UTC)


def _read(layout: Layout, cfg: MonitorConfig, since: dt.datetime, until: dt.datetime | None, log: Path | None
          ) -> tuple[pa.Table, dt.datetime, dt.datetime]:
    """(records from the reference start to the end, the end, the reference start)."""
    from harness.shadow.logs import LogQuery, read_records

    if log is not None:
        whole = read_records(layout, cfg.mapping, LogQuery(until=until), log=log)
        ts = _ts_us(whole["ts"])
        cur_n = int(np.sum(ts >= _us(since)))
    else:
        current = read_records(layout, cfg.mapping, LogQuery(since=since, until=until))
        ts = _ts_us(current["ts"])
        cur_n = current.num_rows
    if cur_n == 0:
        if until is not None:
            raise HarnessError(f"no records between --since {since.isoformat()} and --until {until.isoformat()}",
                               hint="check the times (and the log's time zone)")
        raise HarnessError(f"no records at or after --since {since.isoformat()}",
                           hint="give an earlier --since, or ingest the newer logs")
    end = until if until is not None else _from_us(int(ts.max()) + 1)
    ref_start = since - max(end - since, MIN_REFERENCE)
    if log is not None:
        table = whole.filter(pa.array(ts >= _us(ref_start)))
    else:
        before = read_records(layout, cfg.mapping, LogQuery(since=ref_start, until=since))
        table = pa.concat_tables([before, current]) if before.num_rows else current
    return table, end, ref_start


def _contracts(loaded: LoadedManifest) -> Any:
    from harness.contracts import load_contracts

    return load_contracts(loaded.resolve("validators")) if "validators" in loaded.manifest.artifacts else None


# ---- the timeline ---------------------------------------------------------------------------------------


def _edges(start: dt.datetime, end: dt.datetime, since: dt.datetime, tz: Any, step: dt.timedelta) -> list[dt.datetime]:
    """Bucket boundaries from the grid point at or before ``start`` to past ``end``, with ``since`` one of them."""
    edges: list[dt.datetime] = []
    e = _floor(start, tz, step)
    while e < end:
        edges.append(e)
        e = e + step
    edges.append(e)
    if since not in edges:
        edges = sorted({*edges, since})
    return edges


def _label(start: dt.datetime, end: dt.datetime, tz: Any) -> str:
    a, b = start.astimezone(tz), end.astimezone(tz)
    zone_name = a.tzname() or ""
    tail = b.strftime("%H:%M") if (b - a) <= dt.timedelta(days=1) else b.strftime("%Y-%m-%d %H:%M")
    return f"{a.strftime('%Y-%m-%d %H:%M')}-{tail} {zone_name}".strip()


def _deployments(buckets: Sequence[Bucket], first_us: dict[tuple[int, str], int], last_us: dict[str, int],
                 last_bucket: dict[str, int]) -> list[Deployment]:
    out: list[Deployment] = []
    counted = [b for b in buckets if b.n >= MIN_BUCKET_RECORDS]
    if not counted:
        return out
    start_ids = {m for m, c in counted[0].by_manifest.items() if c / counted[0].n >= CANARY_SHARE}
    start_major = max(counted[0].by_manifest.items(), key=lambda kv: kv[1])[0]
    for m in sorted(start_ids):
        out.append(Deployment(manifest_id=m, event="live_at_start", at=_from_us(first_us[(counted[0].index, m)]),
                              bucket=counted[0].label, share=counted[0].by_manifest[m] / counted[0].n))
    canaried: set[str] = set(start_ids)
    majority: set[str] = {start_major}
    served: set[str] = set(start_ids)
    for b in counted[1:]:
        for m, c in sorted(b.by_manifest.items()):
            share = c / b.n
            if share >= CANARY_SHARE:
                served.add(m)
            if m not in canaried and share >= CANARY_SHARE:
                canaried.add(m)
                out.append(Deployment(manifest_id=m, event="canary", at=_from_us(first_us[(b.index, m)]),
                                      bucket=b.label, share=share))
            if m not in majority and share > 0.5:
                majority.add(m)
                out.append(Deployment(manifest_id=m, event="rollout", at=_from_us(first_us[(b.index, m)]),
                                      bucket=b.label, share=share))
    last_index = buckets[-1].index
    for m in sorted(served):
        lb = last_bucket[m]
        if lb < last_index and m != UNKNOWN:
            b = buckets[lb]
            out.append(Deployment(manifest_id=m, event="gone", at=_from_us(last_us[m]), bucket=b.label,
                                  share=b.by_manifest.get(m, 0) / max(b.n, 1)))
    return sorted(out, key=lambda d: (d.at, d.event != "live_at_start"))


# ---- the tests ------------------------------------------------------------------------------------------


@dataclass
class _Cell:
    """One test: a signal in a segment and bucket against its reference records (masks over the table)."""

    bucket: int
    signal: str
    segment: str
    test: Literal["ks", "chi2"]
    p: float
    stat: str
    ref_value: float | None
    cur_value: float | None
    n_ref: int
    n_cur: int
    direction: Direction
    effect: float
    ref_idx: np.ndarray
    cur_idx: np.ndarray


def _directional(signals: pa.Table) -> list[str]:
    from harness.monitor.signals import CHEAP_SIGNALS, LATENCY_PREFIX

    names = [s.name for s in CHEAP_SIGNALS if s.better is not None and s.name in signals.column_names]
    names += sorted(c for c in signals.column_names if c.startswith(LATENCY_PREFIX))
    return [n for n in names if signals[n].null_count < signals.num_rows]


def _values(signals: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(values as floats, present mask, numeric?) for one signal; a rate signal as 0/1 (error_kind: an error)."""
    from harness.monitor.signals import signal_kind

    col = signals[name]
    if name == "error_kind":
        arr = pc.not_equal(col, "none")
        numeric = False
    else:
        arr = col
        numeric = signal_kind(name) == "numeric"
    vals = np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    present = np.isfinite(vals)
    return vals, present, numeric


def _cohen_h(p1: float, p2: float) -> float:
    return 2 * math.asin(math.sqrt(min(max(p2, 0.0), 1.0))) - 2 * math.asin(math.sqrt(min(max(p1, 0.0), 1.0)))


def _numeric_cell(ref: np.ndarray, cur: np.ndarray, better: str | None) -> tuple[float | None, str, float, float,
                                                                               float, Direction]:
    from harness.stats.distribution import ks_2samp

    ks = ks_2samp(ref, cur)
    rm, cm = float(np.median(ref)), float(np.median(cur))
    stat = "median"
    if rm == cm:
        rm, cm, stat = float(np.mean(ref)), float(np.mean(cur)), "mean"
    sd = float(np.std(ref, ddof=1)) if ref.size > 1 else 0.0
    diff = cm - rm
    effect = diff / sd if sd > 0 else (0.0 if diff == 0 else math.copysign(99.0, diff))
    effect = max(-99.0, min(99.0, effect))
    return ks.p_value, stat, rm, cm, effect, _direction(diff, better)


def _direction(diff: float, better: str | None) -> Direction:
    if better is None or diff == 0:
        return "none"
    up = diff > 0
    return "better" if up == (better == "higher") else "worse"


def _rate_cell(ref: np.ndarray, cur: np.ndarray, better: str | None) -> tuple[float | None, str, float, float,
                                                                            float, Direction] | None:
    from harness.stats.drift import chi_squared

    r1, c1 = int(ref.sum()), int(cur.sum())
    rc = {"true": r1, "false": ref.size - r1}
    cc = {"true": c1, "false": cur.size - c1}
    chi = chi_squared(rc, cc)
    if chi.p_value is None:
        return None  # one value on both sides: nothing can move
    pr, pcur = r1 / ref.size, c1 / cur.size
    return chi.p_value, "rate", pr, pcur, _cohen_h(pr, pcur), _direction(pcur - pr, better)


def _counts(values: np.ndarray) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        if v is not None:
            out[str(v)] = out.get(str(v), 0) + 1
    return out


# ---- manifests ------------------------------------------------------------------------------------------


class _Found:
    def __init__(self, manifest: Manifest, source: str, base_dir: Path | None) -> None:
        self.manifest = manifest
        self.source = source
        self.base_dir = base_dir


def find_manifests(loaded: LoadedManifest, layout: Layout, ids: set[str]) -> dict[str, _Found]:
    """Each wanted manifest id's manifest: the loaded one, the project's manifest files, the run store's
    headers, then the replay store's (first found wins)."""
    from harness.manifest import load_manifest
    from harness.runs import RunStore

    found: dict[str, _Found] = {}

    def add(m: Manifest, mid: str, source: str, base_dir: Path | None) -> None:
        if mid in ids and mid not in found:
            found[mid] = _Found(m, source, base_dir)

    root = layout.project or loaded.base_dir
    add(loaded.manifest, loaded.id, _rel(loaded.path, root), loaded.base_dir)
    seen = 0
    for path in sorted([*root.rglob("*.toml"), *root.rglob("*.yaml"), *root.rglob("*.yml")]):
        if found.keys() >= ids or seen >= MAX_MANIFEST_FILES:
            break
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in ("node_modules", "__pycache__") for part in rel.parts[:-1]):
            continue
        if path.resolve() == loaded.path.resolve():
            continue
        seen += 1
        try:
            other = load_manifest(path)
        except (HarnessError, ValueError, OSError, TypeError, KeyError):
            continue  # not a manifest (or a broken one): skipped
        add(other.manifest, other.id, str(rel), other.base_dir)
    stores = [RunStore(layout.runs)]
    replays = layout.home / "replays"
    if replays.is_dir():
        stores += [RunStore(d) for d in sorted(replays.iterdir()) if d.is_dir()]
    for store in stores:
        if found.keys() >= ids:
            break
        for run in store.scan():
            if run.header is not None:
                where = run.path.relative_to(layout.home) if run.path.is_relative_to(layout.home) else run.path
                add(run.header.manifest, run.header.manifest_id, f"run {where}", None)
    return found


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _pinned_reader(found: dict[str, _Found]) -> Callable[[Artifact], str | None]:
    """Read a path artifact's text from a project manifest's file, only when the file still matches the pin."""
    from harness.manifest import compute_pin, resolve_content

    places: dict[tuple[str | None, str | None], Path] = {
        (a.path, a.sha256): f.base_dir for f in found.values() if f.base_dir is not None
        for a in f.manifest.artifacts.values() if a.path is not None and a.sha256 is not None}

    def read(art: Artifact) -> str | None:
        base = places.get((art.path, art.sha256))
        if base is None:
            return None
        try:
            path = resolve_content(art, base)
            if not path.is_file() or path.stat().st_size > 1024 * 1024 or compute_pin(art, base) != art.sha256:
                return None
            return path.read_text("utf-8")
        except (HarnessError, OSError, UnicodeDecodeError):
            return None

    return read


# ---- the snapshot ---------------------------------------------------------------------------------------


def incident_snapshot(loaded: LoadedManifest, layout: Layout, *, since: dt.datetime, until: dt.datetime | None = None,
                      window: dt.timedelta = dt.timedelta(hours=1), log: Path | None = None,
                      config: MonitorConfig | None = None) -> IncidentSnapshot:
    """The incident snapshot described in the module docstring."""
    from harness.monitor.run import segment_values, zone
    from harness.monitor.signals import cheap_signals, signal_spec
    from harness.stats.multiple import benjamini_hochberg

    cfg = config or loaded.manifest.monitor or MonitorConfig()
    tz = zone(cfg.timezone)
    if until is not None and until <= since:
        raise HarnessError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    step = window
    table, end, ref_start = _read(layout, cfg, since, until, log)
    notes: list[str] = []
    signals = cheap_signals(table, _contracts(loaded), seed=cfg.seed)
    ts = _ts_us(signals["ts"])
    mids = np.asarray([m if m else UNKNOWN for m in table["manifest_id"].to_pylist()], dtype=object)
    unknown = int(np.sum(mids == UNKNOWN))
    if unknown:
        notes.append(f"{unknown:,} records carry no manifest id: counted as '{UNKNOWN}'")

    # buckets over the whole span
    edges = _edges(_from_us(int(ts.min())) if ts.size else ref_start, end, since, tz, step)
    edges_us = np.array([_us(e) for e in edges], dtype=np.int64)
    bidx = np.searchsorted(edges_us, ts, side="right") - 1
    since_us = _us(since)
    first_judged = int(np.searchsorted(edges_us, since_us, side="left"))
    counts: dict[int, dict[str, int]] = {}
    first_us: dict[tuple[int, str], int] = {}
    last_us: dict[str, int] = {}
    last_bucket: dict[str, int] = {}
    for b, m, t in zip(bidx.tolist(), mids.tolist(), ts.tolist(), strict=True):
        per = counts.setdefault(b, {})
        per[m] = per.get(m, 0) + 1
        first_us.setdefault((b, m), t)
        last_us[m] = t
        last_bucket[m] = b
    n_edges = len(edges) - 1

    # the reference: the majority id before --since
    in_ref = ts < since_us
    ref_ids = _counts(mids[in_ref & (mids != UNKNOWN)])
    ref_manifest = max(ref_ids.items(), key=lambda kv: (kv[1], kv[0]))[0] if ref_ids else None
    ref_mask = in_ref & (mids == ref_manifest) if ref_manifest is not None else in_ref.copy()
    ref_note = (f"{int(ref_mask.sum()):,} records of manifest {_short(ref_manifest)} in the reference window"
                if ref_manifest is not None else f"{int(ref_mask.sum()):,} records in the reference window (no "
                "manifest ids)")
    raw_buckets = [Bucket(index=i, start=edges[i], end=min(edges[i + 1], end) if i == n_edges - 1 else edges[i + 1],
                          label=_label(edges[i], edges[i + 1], tz), n=sum(counts.get(i, {}).values()),
                          by_manifest=dict(sorted(counts.get(i, {}).items())), judged=i >= first_judged)
                   for i in range(n_edges)]
    deployments = _deployments(raw_buckets, first_us, last_us, last_bucket)
    ref_end = since
    if int(ref_mask.sum()) < cfg.min_window:
        # fallback: the traffic of the id live when --since begins, up to its first deployment
        cur_buckets = [b for b in raw_buckets if b.judged and b.n]
        live = max(cur_buckets[0].by_manifest.items(), key=lambda kv: kv[1])[0] if cur_buckets else None
        later = [d for d in deployments if d.event in ("canary", "rollout") and d.at >= since and d.manifest_id != live]
        if live is not None and later:
            cut = _floor(later[0].at, tz, step)
            cut_us = _us(cut)
            fb_mask = (ts >= since_us) & (ts < cut_us) & (mids == live)
            if int(fb_mask.sum()) >= cfg.min_window:
                notes.append(f"the reference window before --since holds {int(ref_mask.sum()):,} records of one "
                             f"manifest (fewer than {cfg.min_window}): the reference is manifest {_short(live)}'s "
                             f"traffic from --since to its first deployment ({cut.isoformat()})")
                ref_mask, ref_manifest, ref_start, ref_end = fb_mask, live, since, cut
                ref_note = f"{int(fb_mask.sum()):,} records of manifest {_short(live)} before the first deployment"
                first_judged = int(np.searchsorted(edges_us, cut_us, side="left"))
                raw_buckets = [b.model_copy(update={"judged": b.index >= first_judged}) for b in raw_buckets]
    buckets = raw_buckets
    if int(ref_mask.sum()) < cfg.min_window:
        notes.append(f"the reference holds {int(ref_mask.sum()):,} records (fewer than {cfg.min_window}) and no "
                     "deployment after --since gives another: nothing can be compared")
    ref_present = ts[ref_mask]
    ref_first = _floor(_from_us(int(ref_present.min())), tz, step) if ref_present.size else ref_end
    ref_start = max(ref_first, ref_start)  # the reference as stored (less than asked when less is stored)
    span = ref_end - ref_start
    aligned: Aligned = "weekday_slot" if span >= dt.timedelta(days=7) else "slot" if span >= MIN_REFERENCE else "none"
    if aligned == "none":
        notes.append(f"the reference spans {span} (under 24 h): each bucket is compared with the whole reference, "
                     "so the daily cycle cannot be told from an incident")

    # each record's slot (time of day on the bucket grid), and weekday
    local = pc.cast(signals["ts"], pa.timestamp("us", tz=tz.key))
    secs = (np.asarray(pc.hour(local).to_numpy(zero_copy_only=False), dtype=np.int64) * 3600
            + np.asarray(pc.minute(local).to_numpy(zero_copy_only=False), dtype=np.int64) * 60
            + np.asarray(pc.second(local).to_numpy(zero_copy_only=False), dtype=np.int64))
    slot = secs // int(step.total_seconds())
    if aligned == "weekday_slot":
        slot = slot + 1000 * np.asarray(pc.day_of_week(local).to_numpy(zero_copy_only=False), dtype=np.int64)
    bucket_slot: dict[int, int] = {}
    for b in buckets:
        loc = b.start.astimezone(tz)
        s = (loc.hour * 3600 + loc.minute * 60 + loc.second) // int(step.total_seconds())
        bucket_slot[b.index] = s + (1000 * loc.weekday() if aligned == "weekday_slot" else 0)

    # segments
    seg_values = {key: segment_values(signals, key) for key in cfg.segments}
    for key, vals in seg_values.items():
        if not any(v is not None for v in vals):
            raise HarnessError(f"[monitor] segments: '{key}' is on no record of {log or 'the store'}",
                               hint="fix the segment key in the manifest's [monitor] table")
    seg_masks: list[tuple[str, np.ndarray]] = [(ALL, np.ones(len(ts), dtype=bool))]
    for key, vals in seg_values.items():
        for v in sorted({x for x in vals.tolist() if x is not None}):
            seg_masks.append((f"{key}={v}", vals == v))

    names = _directional(signals)
    cols = {n: _values(signals, n) for n in names}
    judged = [b for b in buckets if b.judged]
    cells: list[_Cell] = []
    untestable = 0
    bucket_sizes = [b.n for b in judged]
    for b in judged:
        in_b = bidx == b.index
        ref_b = ref_mask & (slot == bucket_slot[b.index]) if aligned != "none" else ref_mask
        for segment, smask in seg_masks:
            cur_m = in_b & smask
            if not cur_m.any() and segment != ALL:
                continue
            ref_m = ref_b & smask
            for n in names:
                vals, present, numeric = cols[n]
                ref, cur = vals[ref_m & present], vals[cur_m & present]
                if ref.size == 0 and cur.size == 0:
                    continue
                if ref.size < cfg.min_window or cur.size < cfg.min_window:
                    untestable += 1
                    continue
                better = signal_spec(n).better
                res = _numeric_cell(ref, cur, better) if numeric else _rate_cell(ref, cur, better)
                if res is None:
                    continue
                p_value, stat, rv, cv, eff, direction = res
                if p_value is None:
                    continue
                p = float(p_value)
                cells.append(_Cell(bucket=b.index, signal=n, segment=segment, test="ks" if numeric else "chi2",
                                   p=p, stat=stat, ref_value=rv, cur_value=cv, n_ref=int(ref.size),
                                   n_cur=int(cur.size), direction=direction, effect=eff, ref_idx=ref_m & present,
                                   cur_idx=cur_m & present))
            if segment == ALL:
                for key, vals in seg_values.items():
                    from harness.stats.drift import chi_squared, jensen_shannon

                    rc, cc = _counts(vals[ref_m]), _counts(vals[cur_m])
                    if sum(rc.values()) < cfg.min_window or sum(cc.values()) < cfg.min_window:
                        untestable += 1
                        continue
                    chi = chi_squared(rc, cc)
                    if chi.p_value is None:
                        continue
                    cells.append(_Cell(bucket=b.index, signal=f"segment:{key}", segment=ALL, test="chi2",
                                       p=chi.p_value, stat="share", ref_value=None, cur_value=None,
                                       n_ref=sum(rc.values()), n_cur=sum(cc.values()), direction="none",
                                       effect=jensen_shannon(rc, cc) or 0.0, ref_idx=ref_m, cur_idx=cur_m))
    adjusted = benjamini_hochberg([c.p for c in cells])
    moves: list[Move] = []
    mix: list[Move] = []
    better_n = 0
    labels = {b.index: b.label for b in buckets}
    ref_word = "same slot" if aligned != "none" else "whole reference"
    for c, q in zip(cells, adjusted, strict=True):
        assert q is not None
        if q > cfg.alpha:
            continue
        if c.signal.startswith("segment:"):
            mix.append(_move(c, q, labels, ref_word, _mix_moved(seg_values[c.signal[8:]], c)))
        elif c.direction == "worse":
            moves.append(_move(c, q, labels, ref_word, _moved_text(c, cols[c.signal][0], mids)
                               ).model_copy(update={"by_manifest": _by_manifest(c, cols[c.signal][0], mids)}))
        elif c.direction == "better":
            better_n += 1
    moves.sort(key=lambda m: (m.bucket, -abs(m.effect), m.signal, m.segment))
    first = moves[0].bucket if moves else None
    hits = _segments_hit(moves, [s for s, _ in seg_masks])
    status: Status = "moved" if moves else ("quiet" if cells else "cannot_judge")

    # versions
    since_total = {m: sum(b.by_manifest.get(m, 0) for b in buckets if b.start >= since) for m in last_us}
    n_since = sum(since_total.values()) or 1
    spans = tuple(LiveSpan(manifest_id=m, first_seen=_from_us(min(t for (bb, mm), t in first_us.items() if mm == m)),
                           last_seen=_from_us(last_us[m]), n=int(np.sum(mids == m)),
                           share=since_total.get(m, 0) / n_since, n_reference=int(np.sum(in_ref & (mids == m))))
                  for m in sorted(last_us, key=lambda m: min(t for (bb, mm), t in first_us.items() if mm == m)))
    if first is not None:
        moved_buckets = {m.bucket for m in moves}
        after_counts: dict[str, int] = {}
        for b in buckets:
            if b.index in moved_buckets:
                for m, k in b.by_manifest.items():
                    after_counts[m] = after_counts.get(m, 0) + k
    else:
        after_counts = {m: k for m, k in since_total.items() if k}
    total_after = sum(after_counts.values()) or 1
    after_ids = [m for m, k in sorted(after_counts.items(), key=lambda kv: -kv[1])
                 if k / total_after >= CANARY_SHARE and m != ref_manifest and m != UNKNOWN]
    wanted = {m for m in [ref_manifest, *after_ids] if m is not None}
    found = find_manifests(loaded, layout, wanted)
    versions: list[ManifestVersion] = []
    for mid, role in [(ref_manifest, "before"), *((m, "after") for m in after_ids)]:
        if mid is None:
            continue
        f = found.get(mid)
        versions.append(ManifestVersion(manifest_id=mid, role=role,  # type: ignore[arg-type]
                                        found=f is not None, source=f.source if f else None,
                                        name=f.manifest.name if f else None,
                                        note="" if f else "manifest not found"))
    diffs: list[VersionDiff] = []
    if ref_manifest is not None:
        from harness.diff.artifacts import manifest_changes

        reader = _pinned_reader(found)
        for mid in after_ids:
            b_f, a_f = found.get(ref_manifest), found.get(mid)
            if b_f is None or a_f is None:
                missing = ", ".join(_short(x) for x, f in ((ref_manifest, b_f), (mid, a_f)) if f is None)
                diffs.append(VersionDiff(before=ref_manifest, after=mid, note=f"manifest not found: {missing}"))
                continue
            changes = manifest_changes(b_f.manifest, a_f.manifest, layout, read_text=reader)
            diffs.append(VersionDiff(before=ref_manifest, after=mid, changes=tuple(changes),
                                     note="" if changes else "no artifact differs (only settings outside the id)"))
    elif after_ids:
        notes.append("no manifest id in the reference: no version to diff against")

    series = _series(moves, cells, buckets, cols, bidx, seg_masks, ref_mask)
    segs = tuple(s for s, _ in seg_masks)
    tested = Tested(n_buckets=len(judged), signals=tuple(names), segments=segs, n_tests=len(cells),
                    untestable=untestable, min_window=cfg.min_window, alpha=cfg.alpha,
                    bucket_sizes=(min(bucket_sizes, default=0), max(bucket_sizes, default=0)))
    snap = IncidentSnapshot(
        project=str(layout.project or loaded.base_dir), status=status, verdict="", since=since, until=end,
        window_seconds=int(step.total_seconds()), timezone=cfg.timezone, source=str(log) if log else "the store",
        reference_start=ref_start, reference_end=ref_end, reference_manifest=ref_manifest,
        reference_records=int(ref_mask.sum()), reference_note=ref_note, aligned=aligned, rule=RULE,
        buckets=tuple(buckets), spans=spans, deployments=tuple(deployments), unknown_records=unknown,
        moves=tuple(moves), better=better_n, mix_moves=tuple(mix), first_moved=first, segments_hit=tuple(hits),
        versions=tuple(versions), diffs=tuple(diffs), tested=tested, series=series, notes=tuple(notes))
    return snap.model_copy(update={"verdict": verdict_line(snap, found)})


def _short(mid: str | None) -> str:
    if mid is None:
        return "(none)"
    return mid if len(mid) <= 12 else mid[:8] + ".."


def _move(c: _Cell, q: float, labels: dict[int, str], ref_word: str, moved: str) -> Move:
    return Move(bucket=c.bucket, window=labels[c.bucket], signal=c.signal, segment=c.segment, test=c.test,
                statistic=c.stat, reference_value=c.ref_value, window_value=c.cur_value, n_reference=c.n_ref,
                n_window=c.n_cur, p_value=float(c.p), p_adjusted=float(q), direction=c.direction,
                effect=float(c.effect), reference=ref_word, moved=moved)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _moved_text(c: _Cell, vals: np.ndarray, mids: np.ndarray) -> str:
    from harness.stats.drift import categorical_drift, numeric_drift

    ref, cur = vals[c.ref_idx], vals[c.cur_idx]
    if c.test == "ks":
        d = numeric_drift(ref, cur, n_resamples=50)
        q = d.quantiles
        return (f"p10 {_fmt(q['p10'][0])} -> {_fmt(q['p10'][1])}, p50 {_fmt(q['p50'][0])} -> {_fmt(q['p50'][1])}, "
                f"p90 {_fmt(q['p90'][0])} -> {_fmt(q['p90'][1])}")
    r1, c1 = int(ref.sum()), int(cur.sum())
    cd = categorical_drift({"true": r1, "false": ref.size - r1}, {"true": c1, "false": cur.size - c1}, n_resamples=50)
    return f"{c.signal} true: {cd.reference_shares[-1]:.1%} -> {cd.current_shares[-1]:.1%}" if cd.categories[-1:] == (
        "true",) else f"rate {c.ref_value:.1%} -> {c.cur_value:.1%}"


def _mix_moved(vals: np.ndarray, c: _Cell) -> str:
    from harness.stats.drift import categorical_drift

    d = categorical_drift(_counts(vals[c.ref_idx]), _counts(vals[c.cur_idx]), n_resamples=50)
    return f"{d.moved[0]}: {d.moved[1]:.1%} -> {d.moved[2]:.1%}" if d.moved else ""


def _by_manifest(c: _Cell, vals: np.ndarray, mids: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for m in sorted(set(mids[c.cur_idx].tolist())):
        v = vals[c.cur_idx & (mids == m)]
        if v.size == 0:
            out[m] = None
        elif c.stat == "median":
            out[m] = float(np.median(v))
        else:
            out[m] = float(np.mean(v))
    return out


def _segments_hit(moves: Sequence[Move], segments: Sequence[str]) -> list[SegmentHit]:
    """Ranked: specific segments first (the move is where the cause is), then the largest effect, then the
    number of moved windows."""
    by: dict[str, list[Move]] = {}
    for m in moves:
        if m.segment != ALL:
            by.setdefault(m.segment, []).append(m)
    hits = []
    for s, ms in by.items():
        key = s.partition("=")[0]
        sigs = set(m.signal for m in ms)
        siblings = [o for o in segments if o != s and o.partition("=")[0] == key]
        specific = any(not sigs <= {m.signal for m in by.get(o, [])} for o in siblings)
        hits.append(SegmentHit(segment=s, signals=tuple(dict.fromkeys(m.signal for m in ms)),
                               n_windows=len({m.bucket for m in ms}), max_effect=max(abs(m.effect) for m in ms),
                               first_window=min(ms, key=lambda m: m.bucket).window, specific=specific))
    return sorted(hits, key=lambda h: (not h.specific, -h.max_effect, -h.n_windows, h.segment))


def _series(moves: Sequence[Move], cells: Sequence[_Cell], buckets: Sequence[Bucket],
            cols: dict[str, tuple[np.ndarray, np.ndarray, bool]], bidx: np.ndarray,
            seg_masks: Sequence[tuple[str, np.ndarray]], ref_mask: np.ndarray) -> tuple[SeriesPoint, ...]:
    """The value per bucket (median or rate; bucket -1: the whole reference) of each moved signal and segment."""
    del cells
    keys = list(dict.fromkeys((m.signal, m.segment, m.statistic) for m in moves))[:MAX_SERIES]
    masks = dict(seg_masks)
    out: list[SeriesPoint] = []
    for signal, segment, stat in keys:
        vals, present, _ = cols[signal]
        base = masks[segment] & present
        for b in [-1, *(x.index for x in buckets)]:
            sel = base & (ref_mask if b == -1 else bidx == b)
            v = vals[sel]
            value = None if v.size == 0 else float(np.median(v) if stat == "median" else np.mean(v))
            out.append(SeriesPoint(signal=signal, segment=segment, bucket=b, value=value, n=int(v.size)))
    return tuple(out)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}" if x in (0.0, 1.0) else f"{x:.1%}"


def change_summary(changes: Sequence[ArtifactChange], before: Manifest | None, after: Manifest | None) -> str:
    """``prompt (answer.toml → answer-plain.toml)`` (the files differ) or ``generator (version 1 → 2)`` (else
    the versions, else "content") for each changed role; ``added`` / ``removed`` for the others."""
    parts = []
    for ch in changes:
        if ch.change != "changed":
            parts.append(f"{ch.role} {ch.change}")
            continue
        arts = [m.artifacts.get(ch.role) if m is not None else None for m in (before, after)]
        names = [Path(a.path).name if a is not None and a.path else None for a in arts]
        if names[0] and names[1] and names[0] != names[1]:
            parts.append(f"{ch.role} ({names[0]} → {names[1]})")
        elif ch.base_version != ch.head_version:
            parts.append(f"{ch.role} (version {ch.base_version} → {ch.head_version})")
        elif ch.params_diff:
            parts.append(f"{ch.role} ({', '.join(sorted(ch.params_diff))})")
        else:
            parts.append(f"{ch.role} (content)")
    return ", ".join(parts)


def verdict_line(snap: IncidentSnapshot, found: dict[str, _Found] | None = None) -> str:
    t = snap.tested
    if snap.status == "cannot_judge":
        return (f"cannot judge: no test could be made ({t.n_buckets} buckets of {t.bucket_sizes[0]:,}-"
                f"{t.bucket_sizes[1]:,} records against a reference of {snap.reference_records:,}; each side of a "
                f"test needs {t.min_window}+ values; {t.untestable:,} untestable)")
    if snap.status == "quiet" or snap.first_moved is None:
        return (f"nothing moved: {t.n_buckets} buckets x {len(t.signals)} signals x {len(t.segments)} segments "
                f"({t.n_tests:,} tests, {t.untestable:,} untestable; buckets of {t.bucket_sizes[0]:,}-"
                f"{t.bucket_sizes[1]:,} records) against {snap.reference_note}; BH alpha {t.alpha}")
    b = snap.buckets[snap.first_moved]
    text = f"first moved {b.label}"
    events = [d for d in snap.deployments if d.event in ("canary", "rollout") and d.at < b.end
              and d.manifest_id != snap.reference_manifest]
    if events:
        d = events[-1]
        if d.at <= b.start:
            minutes = int((b.start - d.at).total_seconds() // 60)
            text += f", {_ago(minutes)} after manifest {_short(d.manifest_id)} took {d.share:.0%} of traffic"
        else:
            text += (f", the window in which manifest {_short(d.manifest_id)} took {d.share:.0%} of traffic (from "
                     f"{d.at.astimezone(b.start.tzinfo).strftime('%H:%M')})")
    else:
        text += ", with no deployment before it"
    in_first = [m for m in snap.moves if m.bucket == snap.first_moved]
    top = max(in_first, key=lambda m: (m.segment != ALL, abs(m.effect)))
    word = "down" if (top.window_value or 0) < (top.reference_value or 0) else "up"
    fmt = _pct if top.statistic == "rate" else _num
    text += f"; {top.signal} {word} {fmt(top.reference_value)} → {fmt(top.window_value)} in {top.segment}"
    others = sorted({m.signal for m in in_first} - {top.signal})
    if others:
        text += f" (also {', '.join(others)})"
    if snap.aligned == "none":
        text += " (reference under 24 h: the daily cycle is not told apart)"
    if snap.diffs:
        d0 = snap.diffs[0]
        if d0.changes:
            f = found or {}
            before = f[d0.before].manifest if d0.before in f else None
            after = f[d0.after].manifest if d0.after in f else None
            text += f"; changed: {change_summary(d0.changes, before, after)}"
        elif d0.note:
            text += f"; {d0.note}"
    return text


def _ago(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"
