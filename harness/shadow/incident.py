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
   the category that moved). A rate whose 2x2 table has an expected count under 5, or a side under
   ``min_window`` values, is tested exactly instead (Fisher, :func:`scipy.stats.fisher_exact`): 24 records
   that are all errors against a 1% reference are a move, not "untestable". Every test of the snapshot
   (buckets x signals x segments) is one Benjamini-Hochberg family
   (:func:`harness.stats.multiple.benjamini_hochberg`) at ``[monitor] alpha``. A cell with fewer than
   ``min_window`` values a side (numeric) or :data:`MIN_EXACT` (a rate) is untestable: counted by reason
   (too few in the window, too few in the reference), never passed.

   **The volume is a signal.** Per bucket and segment value (a value of the reference absent since
   ``--since`` too: it is listed as vanished, and its zero is tested), the records in the window against
   the reference's records at the same slot (every manifest id: the traffic, not one version's share),
   scaled by the lengths (``t_w`` the window's seconds, ``t_ref`` the reference's at that slot): the exact
   conditional test of two Poisson counts, ``k_w`` of ``k_w + k_ref`` binomial with ``p = r t_w / (r t_w +
   t_ref)``. The family's test is one-sided against the tolerance ``r =`` :data:`VOLUME_DROP` (0.5, a
   collapse) or :data:`VOLUME_FLOOD` (2, a flood): real traffic swings more from day to day than a Poisson
   count (a Friday after a Thursday, a holiday), so only a change beyond half or twice is a move; inside
   that, nothing is alarmed. Both directions are bad: a collapse is an outage (requests never reaching the
   app, or never logged), a flood is a retry storm, a runaway client or a bot, and loads every stage.

   **Untestable is not quiet.** A judged bucket whose overall traffic could not be tested on any per-record
   signal although its reference slot held ``min_window`` records and as many were expected is *blind*:
   its volume move speaks for it, or (no volume move) the snapshot cannot judge. A bucket thin in the
   reference too is judged on the volume only; with under half of the buckets tested on a per-record
   signal the snapshot cannot judge either. The verdict line says how many cells and buckets were
   untestable and why.

   **The seasonality rule.** When the reference spans at least 24 h, a bucket is compared only with the
   reference records at the same clock time of day (the same bucket slot of each reference day, pooled;
   with 7 days or more of reference, the same weekday and slot), like the monitor's day-over-day
   comparison at aligned hours: the busy hour is compared with the busy hour, so the daily cycle cannot
   look like an incident. A shorter reference is compared whole and the snapshot says that seasonality
   could not be told apart (``aligned = "none"``).

   A **move** is a significant test (adjusted p <= alpha) whose median (numeric; the mean when the medians
   tie) or rate moved in the signal's bad direction, or a volume beyond the tolerance. The **first moved
   window** is the first bucket with a confirmed move: significant under Holm over the family too
   (family-wise), or repeated on the same signal, segment and direction in the next bucket. BH lets about
   alpha of the moves be false, and with many true moves (an outage moves everything) the false ones can
   land before the incident: such isolated weak moves are listed (``early_moves``), never the onset. A
   segment-mix move has no bad direction: it is reported beside the moves, never one itself.

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

5. **The verdict line**, ``moved`` / ``quiet`` / ``cannot_judge`` (no testable cell, a blind bucket without
   a volume move, or under half of the buckets tested on a per-record signal).

Cost: every selection comes from row indices grouped once per (bucket, segment value) and per (reference
slot, segment value) by one stable argsort each, so the snapshot is O(N log N + cells) (no mask over the
whole table per cell).
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
    "Tested", "VersionDiff", "blind_text", "incident_snapshot", "move_words", "parse_window", "untestable_text",
]

CANARY_SHARE = 0.05
MIN_BUCKET_RECORDS = 10
MIN_REFERENCE = dt.timedelta(hours=24)
MAX_SERIES = 12  # (signal, segment) series kept for the charts
MAX_MANIFEST_FILES = 400
UNKNOWN = "unknown"
ALL = "all"
VOLUME = "volume"
MIN_EXACT = 5
"""Values a side a rate test needs (Fisher's exact test; the KS and chi-squared tests need ``min_window``),
and records seen or expected a volume test needs: below it neither can reach significance after correction."""
VOLUME_DROP = 0.5
VOLUME_FLOOD = 2.0
"""A significant volume change is a move below half or above twice the expected traffic: real traffic swings
more from day to day than a Poisson count (the test's model), so a smaller change is reported, not alarmed."""
_EMPTY = np.zeros(0, dtype=np.int64)

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
    expected: float | None = None  # records expected from the reference's same slot, scaled by the lengths
    blind: bool = False  # judged, the reference's slot had min_window+ records, and no per-record test was possible


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
    test: Literal["ks", "chi2", "fisher", "binomial"]
    statistic: str  # what reference_value / window_value are: "median", "mean", "rate", "share", "count"
    reference_value: float | None
    window_value: float | None
    n_reference: int
    n_window: int
    p_value: float
    p_adjusted: float
    direction: Direction
    effect: float  # Cohen's h (rates), the median shift in reference SDs (numeric), log2 of observed / expected
    # (volume); mix: Jensen-Shannon
    reference: str  # which reference records: "same slot" (aligned) or "whole reference"
    moved: str = ""  # what moved, in words (quantiles, the category)
    by_manifest: dict[str, float | None] = Field(default_factory=dict)  # its value in this window per manifest id
    p_holm: float | None = None  # Holm-adjusted over the family: <= alpha, the move confirms its window alone


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
    expected: float | None = None  # volume: the records expected from the reference's same slot


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
    untestable_window: int = 0  # cells with too few values in the window (a side needs min_window; min_exact: rates)
    untestable_reference: int = 0  # cells with too few values in the reference
    untestable_volume: int = 0  # volume cells with under min_exact records seen and expected
    constant: int = 0  # cells with one value on both sides: nothing could move (no p-value, outside the family)
    min_exact: int = MIN_EXACT
    n_volume_tests: int = 0
    n_exact_tests: int = 0  # rate tests made with Fisher's exact test (small expected counts)
    blind_buckets: tuple[int, ...] = ()  # judged buckets untestable on every per-record signal (see Bucket.blind)
    blind_unexplained: tuple[int, ...] = ()  # of those, the ones whose volume did not move: cannot judge
    vanished: tuple[str, ...] = ()  # segment values in the reference with no record in the judged time
    volume_only: tuple[int, ...] = ()  # judged buckets tested on the volume only: thin in the reference's slot too


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
    early_moves: int = 0  # moves before the first moved window: isolated and weak (see _onset)

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "quiet" else 1

    def bucket(self, index: int) -> Bucket:
        return self.buckets[index]


RULE = ("a bucket is compared with the reference records at the same clock time of day (same weekday and time "
        "with 7+ days of reference) when the reference spans 24 h or more, else with the whole reference; a "
        "move is a test significant after Benjamini-Hochberg over buckets x signals x segments whose median or "
        "rate moved in the signal's bad direction, or a volume (records against the reference's at that time "
        "of day, scaled by the lengths) below half or above twice the expected (exact binomial test against "
        "that tolerance); rates with small expected counts by Fisher's exact test; the first moved window is "
        "the first with a move significant under Holm or repeated in the next window; a window the reference "
        "says should be testable that is too thin to test is a volume move or cannot be judged, never quiet")


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
    """One test: a signal in a segment and bucket against its reference records (row indices of the table)."""

    bucket: int
    signal: str
    segment: str
    test: Literal["ks", "chi2", "fisher", "binomial"]
    p: float
    stat: str
    ref_value: float | None
    cur_value: float | None
    n_ref: int
    n_cur: int
    direction: Direction
    effect: float
    ref_rows: np.ndarray  # row indices (shared with the other cells of the group: never copied per cell)
    cur_rows: np.ndarray
    ratio: float | None = None  # volume: observed / expected
    p_equal: float | None = None  # volume: the equal-rates test's p-value (the family's is the tolerance's)
    t_ref: float = 0.0  # volume: the reference's seconds at this slot


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


_CellResult = tuple[float | None, Literal["ks", "chi2", "fisher"], str, float, float, float, Direction]


def _numeric_cell(ref: np.ndarray, cur: np.ndarray, better: str | None) -> _CellResult:
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
    return ks.p_value, "ks", stat, rm, cm, effect, _direction(diff, better)


def _direction(diff: float, better: str | None) -> Direction:
    if better is None or diff == 0:
        return "none"
    up = diff > 0
    return "better" if up == (better == "higher") else "worse"


def _rate_cell(ref: np.ndarray, cur: np.ndarray, better: str | None, min_window: int) -> _CellResult | None:
    """A rate against the reference's: chi-squared of homogeneity (the monitor's) when both sides hold
    ``min_window`` values and every expected count of the 2x2 table is 5 or more (Cochran's rule), else
    Fisher's exact test (:func:`scipy.stats.fisher_exact`, two-sided), which holds at any size. None: one
    value on both sides (nothing can move)."""
    from scipy import stats as sps

    from harness.stats.drift import chi_squared

    r1, c1 = int(ref.sum()), int(cur.sum())
    nr, nc = int(ref.size), int(cur.size)
    if r1 + c1 in (0, nr + nc):
        return None
    total, ones = nr + nc, r1 + c1
    smallest = min(nr, nc) * min(ones, total - ones) / total
    pr, pcur = r1 / nr, c1 / nc
    if nr >= min_window and nc >= min_window and smallest >= 5:
        chi = chi_squared({"true": r1, "false": nr - r1}, {"true": c1, "false": nc - c1})
        p, test = chi.p_value, "chi2"
    else:
        p, test = float(sps.fisher_exact([[r1, nr - r1], [c1, nc - c1]]).pvalue), "fisher"
    kind: Literal["chi2", "fisher"] = "chi2" if test == "chi2" else "fisher"
    return (None if p is None else min(1.0, float(p))), kind, "rate", pr, pcur, _cohen_h(pr, pcur), \
        _direction(pcur - pr, better)


def _volume_cell(k_w: int, k_ref: int, t_w: float, t_ref: float) -> tuple[float, float, float, float, Direction] | None:
    """The records of a window against the reference's at the same slot, scaled by the lengths (seconds).

    Given ``n = k_w + k_ref`` records, ``k_w`` is binomial with ``p = r t_w / (r t_w + t_ref)`` when the
    window's rate is ``r`` times the reference's (the exact conditional test of two Poisson counts,
    :func:`scipy.stats.binomtest`). The equal-rates test (``r = 1``, two-sided) is reported; the family's
    test is against the tolerance: one-sided at ``r =`` :data:`VOLUME_DROP` (fewer records than expected)
    or :data:`VOLUME_FLOOD` (more), so a move is a collapse or a flood beyond it, and day-to-day swings
    within it never are. (family p-value, equal-rates p-value, observed / expected, log2 effect,
    direction). None: untestable (no reference time at this slot, or under :data:`MIN_EXACT` records seen
    and expected)."""
    from scipy import stats as sps

    if t_ref <= 0 or t_w <= 0:
        return None
    expected = k_ref * t_w / t_ref
    if max(k_w, expected) < MIN_EXACT:
        return None
    n = k_w + k_ref
    p_equal = float(sps.binomtest(k_w, n, t_w / (t_w + t_ref)).pvalue)
    down = k_w < expected
    r = VOLUME_DROP if down else VOLUME_FLOOD
    p_tol = float(sps.binomtest(k_w, n, r * t_w / (r * t_w + t_ref), alternative="less" if down else "greater").pvalue)
    ratio = k_w / expected if expected > 0 else math.inf
    effect = max(-99.0, min(99.0, math.log2((k_w + 0.5) / (expected + 0.5))))
    direction: Direction = "none" if k_w == expected else "worse"
    return min(1.0, p_tol), min(1.0, p_equal), ratio, effect, direction


# ---- grouping: every selection is made from groups sorted once --------------------------------------------


def _group(rows: np.ndarray, keys: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices per integer key (one stable argsort: each group's rows keep their order)."""
    if rows.size == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    k, r = keys[order], rows[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.r_[starts[1:], k.size]
    return {int(k[a]): r[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)}


def _tally(keys: np.ndarray) -> dict[int, int]:
    values, n = np.unique(keys, return_counts=True)
    return dict(zip(values.tolist(), n.tolist(), strict=True))


def _encode(col: pa.ChunkedArray | pa.Array) -> tuple[list[str], np.ndarray]:
    """(the distinct strings, each row's index into them); null -> ""."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    enc = pc.dictionary_encode(pc.fill_null(pc.cast(arr, pa.string()), ""))
    names = [str(x) for x in enc.dictionary.to_pylist()]
    return names, np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _segment_codes(signals: pa.Table, key: str) -> tuple[list[str], np.ndarray]:
    """The sorted values of attribute ``key`` and each row's index into them (absent: ``len(values)``) --
    :func:`harness.monitor.run.segment_values`, encoded."""
    arr = pc.map_lookup(signals["attrs"].combine_chunks(), key, "first")
    enc = pc.dictionary_encode(arr)
    raw = [str(x) for x in enc.dictionary.to_pylist()]
    values = sorted(raw)
    remap = np.array([values.index(v) for v in raw] + [len(values)], dtype=np.int64)
    idx = np.asarray(pc.fill_null(enc.indices, len(raw)).to_numpy(zero_copy_only=False), dtype=np.int64)
    return values, remap[idx]


def _name_counts(codes: np.ndarray, names: Sequence[str], mask: np.ndarray) -> dict[str, int]:
    out: dict[str, int] = {}
    for j, k in enumerate(np.bincount(codes[mask], minlength=len(names)).tolist()):
        if k:
            out[names[j]] = out.get(names[j], 0) + int(k)
    return out


def _code_counts(codes: np.ndarray, values: Sequence[str]) -> dict[str, int]:
    n = np.bincount(codes, minlength=len(values) + 1)[:len(values)]
    return {v: int(k) for v, k in zip(values, n.tolist(), strict=True) if k}


def _manifest_counts(bidx: np.ndarray, ts: np.ndarray, codes: np.ndarray, names: Sequence[str]
                     ) -> tuple[dict[int, dict[str, int]], dict[tuple[int, str], int], dict[str, int], dict[str, int]]:
    """Per bucket the records per manifest id; each (bucket, id)'s first record; each id's last record and
    last bucket (microseconds)."""
    counts: dict[int, dict[str, int]] = {}
    first_us: dict[tuple[int, str], int] = {}
    last_us: dict[str, int] = {}
    last_bucket: dict[str, int] = {}
    if ts.size == 0:
        return counts, first_us, last_us, last_bucket
    key = bidx * len(names) + codes
    order = np.argsort(key, kind="stable")
    k, t = key[order], ts[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    n = np.diff(np.r_[starts, k.size])
    lo, hi = np.minimum.reduceat(t, starts), np.maximum.reduceat(t, starts)
    for kk, c, a, z in zip(k[starts].tolist(), n.tolist(), lo.tolist(), hi.tolist(), strict=True):
        b, j = divmod(kk, len(names))
        m = names[j]
        per = counts.setdefault(b, {})
        per[m] = per.get(m, 0) + c
        first_us[(b, m)] = min(first_us.get((b, m), a), a)
        last_us[m] = max(last_us.get(m, z), z)
        last_bucket[m] = max(last_bucket.get(m, b), b)
    return counts, first_us, last_us, last_bucket


def _slots(ts: pa.ChunkedArray, tz: Any, step: dt.timedelta, aligned: Aligned) -> np.ndarray:
    """Each record's slot: its time of day on the bucket grid (plus 1000 x the weekday with 7+ days of
    reference); 0 for every record when the reference is not aligned."""
    if aligned == "none":
        return np.zeros(len(ts), dtype=np.int64)
    local = pc.cast(ts, pa.timestamp("us", tz=tz.key))
    secs = (np.asarray(pc.hour(local).to_numpy(zero_copy_only=False), dtype=np.int64) * 3600
            + np.asarray(pc.minute(local).to_numpy(zero_copy_only=False), dtype=np.int64) * 60
            + np.asarray(pc.second(local).to_numpy(zero_copy_only=False), dtype=np.int64))
    slot = secs // int(step.total_seconds())
    if aligned == "weekday_slot":
        slot = slot + 1000 * np.asarray(pc.day_of_week(local).to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.asarray(slot, dtype=np.int64)


def _bucket_slot(start: dt.datetime, tz: Any, step: dt.timedelta, aligned: Aligned) -> int:
    if aligned == "none":
        return 0
    loc = start.astimezone(tz)
    s = (loc.hour * 3600 + loc.minute * 60 + loc.second) // int(step.total_seconds())
    return s + (1000 * loc.weekday() if aligned == "weekday_slot" else 0)


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
    from harness.monitor.run import zone
    from harness.monitor.signals import cheap_signals, signal_spec
    from harness.stats.multiple import benjamini_hochberg, holm

    cfg = config or loaded.manifest.monitor or MonitorConfig()
    tz = zone(cfg.timezone)
    if until is not None and until <= since:
        raise HarnessError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    step = window
    table, end, ref_start = _read(layout, cfg, since, until, log)
    notes: list[str] = []
    signals = cheap_signals(table, _contracts(loaded), seed=cfg.seed)
    ts = _ts_us(signals["ts"])
    n_rows = len(ts)
    id_names, mid_codes = _encode(table["manifest_id"])
    id_names = [m if m else UNKNOWN for m in id_names]
    mids = np.asarray(id_names, dtype=object)[mid_codes] if n_rows else np.empty(0, dtype=object)
    unknown = int(np.sum(mids == UNKNOWN))
    if unknown:
        notes.append(f"{unknown:,} records carry no manifest id: counted as '{UNKNOWN}'")

    # buckets over the whole span
    edges = _edges(_from_us(int(ts.min())) if ts.size else ref_start, end, since, tz, step)
    edges_us = np.array([_us(e) for e in edges], dtype=np.int64)
    bidx = (np.searchsorted(edges_us, ts, side="right") - 1).astype(np.int64)
    since_us = _us(since)
    first_judged = int(np.searchsorted(edges_us, since_us, side="left"))
    n_edges = len(edges) - 1
    counts, first_us, last_us, last_bucket = _manifest_counts(bidx, ts, mid_codes, id_names)
    id_total = _name_counts(mid_codes, id_names, np.ones(n_rows, dtype=bool))

    # the reference: the majority id before --since
    in_ref = ts < since_us
    ref_ids = {m: k for m, k in _name_counts(mid_codes, id_names, in_ref).items() if m != UNKNOWN}
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

    # each record's slot (time of day on the bucket grid, and the weekday with 7+ days): the key of its
    # reference records; with an unaligned reference every record has key 0 (the whole reference)
    slot = _slots(signals["ts"], tz, step, aligned) if n_rows else np.zeros(0, dtype=np.int64)
    bucket_key = {i: _bucket_slot(edges[i], tz, step, aligned) for i in range(n_edges)}
    # the reference's duration per slot (for the volume: the same slot of each reference day)
    r0, r1 = _us(ref_start), _us(ref_end)
    t_ref: dict[int, float] = {}
    for i in range(n_edges):
        lo, hi = max(int(edges_us[i]), r0), min(int(edges_us[i + 1]), r1)
        if hi > lo:
            t_ref[bucket_key[i]] = t_ref.get(bucket_key[i], 0.0) + (hi - lo) / 1e6

    # segments: one integer code per record and key (the sorted values; None -> len(values))
    segs: list[tuple[str, str | None, int]] = [(ALL, None, 0)]
    codes: dict[str, tuple[np.ndarray, list[str]]] = {}
    for attr in cfg.segments:
        values, carr = _segment_codes(signals, attr)
        if not values:
            raise HarnessError(f"[monitor] segments: '{attr}' is on no record of {log or 'the store'}",
                               hint="fix the segment key in the manifest's [monitor] table")
        codes[attr] = (carr, values)
        segs += [(f"{attr}={v}", attr, j) for j, v in enumerate(values)]

    # every selection below comes from these groups, sorted once: row indices per (bucket, segment value),
    # the reference's per (slot, segment value), and the volume reference's counts (every manifest)
    rows = np.arange(n_rows, dtype=np.int64)
    ref_rows = rows[ref_mask]
    vol_ref = (ts >= r0) & (ts < r1)
    by_bucket: dict[str | None, dict[int, np.ndarray]] = {None: _group(rows, bidx)}
    by_slot: dict[str | None, dict[int, np.ndarray]] = {None: _group(ref_rows, slot[ref_rows])}
    vol_slot: dict[str | None, dict[int, int]] = {None: _tally(slot[vol_ref])}
    for attr, (carr, values) in codes.items():
        width = len(values) + 1
        by_bucket[attr] = _group(rows, bidx * width + carr)
        by_slot[attr] = _group(ref_rows, slot[ref_rows] * width + carr[ref_rows])
        vol_slot[attr] = _tally(slot[vol_ref] * width + carr[vol_ref])

    def cell_key(key: str | None, outer: int, code: int) -> int:
        return outer if key is None else outer * (len(codes[key][1]) + 1) + code

    def window_rows(b: int, key: str | None, code: int) -> np.ndarray:
        return by_bucket[key].get(cell_key(key, b, code), _EMPTY)

    def expected(b: Bucket, key: str | None, code: int) -> tuple[float | None, int, float]:
        """(the records expected in bucket b from the reference's same slot, scaled by the lengths; the
        reference's records and seconds at that slot)."""
        k = bucket_key[b.index]
        tr = t_ref.get(k, 0.0)
        k_ref = vol_slot[key].get(cell_key(key, k, code), 0)
        t_w = (b.end - b.start).total_seconds()
        return (k_ref * t_w / tr if tr > 0 else None), k_ref, tr

    buckets = [b.model_copy(update={"expected": expected(b, None, 0)[0]}) for b in raw_buckets]
    names = _directional(signals)
    cols = {n: _values(signals, n) for n in names}
    judged = [b for b in buckets if b.judged]
    cells: list[_Cell] = []
    why = {"window": 0, "reference": 0, "volume": 0}
    constant = 0
    blind: list[int] = []
    volume_only: list[int] = []
    bucket_sizes = [b.n for b in judged]
    for b in judged:
        k = bucket_key[b.index]
        t_w = (b.end - b.start).total_seconds()
        for segment, key, code in segs:
            cur = window_rows(b.index, key, code)
            ref = by_slot[key].get(cell_key(key, k, code), _EMPTY)
            exp_n, k_ref, tr = expected(b, key, code)
            if cur.size == 0 and ref.size == 0 and k_ref == 0:
                continue  # this value is not around at this time of day: nothing to test
            # the volume: records in the window against the reference's same slot, scaled by the lengths
            vol = _volume_cell(int(cur.size), k_ref, t_w, tr)
            if vol is None:
                why["volume"] += 1
            else:
                p, p_equal, ratio, eff, direction = vol
                cells.append(_Cell(bucket=b.index, signal=VOLUME, segment=segment, test="binomial", p=p,
                                   stat="count", ref_value=exp_n, cur_value=float(cur.size), n_ref=k_ref,
                                   n_cur=int(cur.size), direction=direction, effect=eff, ref_rows=_EMPTY,
                                   cur_rows=cur, ratio=ratio, t_ref=tr, p_equal=p_equal))
            tested_here = 0
            for n in names:
                vals, present, numeric = cols[n]
                ri, ci = ref[present[ref]], cur[present[cur]]
                if ri.size == 0 and ci.size == 0:
                    continue
                need = cfg.min_window if numeric else min(MIN_EXACT, cfg.min_window)
                if ri.size < need or ci.size < need:
                    why["reference" if ri.size < need else "window"] += 1
                    continue
                tested_here += 1
                better = signal_spec(n).better
                res = (_numeric_cell(vals[ri], vals[ci], better) if numeric
                       else _rate_cell(vals[ri], vals[ci], better, cfg.min_window))
                if res is None or res[0] is None:
                    constant += 1  # one value on both sides: nothing can move (no p-value, not in the family)
                    continue
                p_value, test, stat, rv, cv, eff, direction = res
                assert p_value is not None
                cells.append(_Cell(bucket=b.index, signal=n, segment=segment, test=test, p=float(p_value),
                                   stat=stat, ref_value=rv, cur_value=cv, n_ref=int(ri.size), n_cur=int(ci.size),
                                   direction=direction, effect=eff, ref_rows=ref, cur_rows=cur))
            if key is not None:
                continue
            if tested_here == 0 and ref.size >= cfg.min_window and exp_n is not None and exp_n >= cfg.min_window:
                blind.append(b.index)  # the window should have been testable and was not
            elif tested_here == 0:
                volume_only.append(b.index)  # too little traffic at this time of day, in the reference too
            for sk, (code_arr, values) in codes.items():
                from harness.stats.drift import chi_squared, jensen_shannon

                rc, cc = _code_counts(code_arr[ref], values), _code_counts(code_arr[cur], values)
                if sum(rc.values()) < cfg.min_window or sum(cc.values()) < cfg.min_window:
                    why["reference" if sum(rc.values()) < cfg.min_window else "window"] += 1
                    continue
                chi = chi_squared(rc, cc)
                if chi.p_value is None:
                    constant += 1
                    continue
                cells.append(_Cell(bucket=b.index, signal=f"segment:{sk}", segment=ALL, test="chi2",
                                   p=chi.p_value, stat="share", ref_value=None, cur_value=None,
                                   n_ref=sum(rc.values()), n_cur=sum(cc.values()), direction="none",
                                   effect=jensen_shannon(rc, cc) or 0.0, ref_rows=ref, cur_rows=cur))
    adjusted = benjamini_hochberg([c.p for c in cells])
    strong = holm([c.p for c in cells])
    moves: list[Move] = []
    mix: list[Move] = []
    better_n = 0
    labels = {b.index: b.label for b in buckets}
    ref_word = "same slot" if aligned != "none" else "whole reference"
    for c, q, fw in zip(cells, adjusted, strong, strict=True):
        assert q is not None
        if q > cfg.alpha:
            continue
        if c.signal.startswith("segment:"):
            code_arr, values = codes[c.signal[8:]]
            mix.append(_move(c, q, labels, ref_word, _mix_moved(code_arr, values, c)))
        elif c.signal == VOLUME and c.direction == "worse":
            moves.append(_move(c, q, labels, ref_word, _volume_text(c)).model_copy(
                update={"by_manifest": _count_by_manifest(c, mids), "p_holm": fw}))
        elif c.direction == "worse":
            vals, present, _ = cols[c.signal]
            moves.append(_move(c, q, labels, ref_word, _moved_text(c, vals, present)).model_copy(
                update={"by_manifest": _by_manifest(c, vals, present, mids), "p_holm": fw}))
        elif c.direction == "better":
            better_n += 1
    moves.sort(key=lambda m: (m.bucket, -abs(m.effect), m.signal, m.segment))
    first = _onset(moves, cfg.alpha)
    early = sum(1 for m in moves if first is not None and m.bucket < first)
    hits = _segments_hit([m for m in moves if first is not None and m.bucket >= first], [s for s, _, _ in segs])
    volume_moved = {m.bucket for m in moves if m.signal == VOLUME}
    unexplained = [i for i in blind if i not in volume_moved]
    signal_tested = len(judged) - len(blind) - len(volume_only)
    # "nothing moved" must describe most of the judged time: under half the buckets tested on a per-record
    # signal (the rest on the volume only) cannot judge
    thin = 2 * signal_tested < len(judged)
    status: Status = "moved" if moves else ("cannot_judge" if unexplained or thin or not cells else "quiet")
    if blind:
        buckets = [b.model_copy(update={"blind": True}) if b.index in set(blind) else b for b in buckets]
    in_judged = bidx >= first_judged
    vanished = []
    for key, (code_arr, values) in codes.items():
        before_n = np.bincount(code_arr[vol_ref], minlength=len(values) + 1)
        after_n = np.bincount(code_arr[in_judged], minlength=len(values) + 1)
        vanished += [f"{key}={v}" for j, v in enumerate(values) if before_n[j] and not after_n[j]]
    if vanished:
        notes.append(f"segment value{'s' * (len(vanished) != 1)} in the reference with no record since the judged "
                     f"time began: {', '.join(vanished)} (their volume is tested against the expected count)")
    if until is not None and ts.size and _from_us(int(ts.max())) < until - step:
        notes.append(f"the last record is at {_from_us(int(ts.max())).isoformat()}, more than a window before "
                     f"--until: later windows hold no record (an outage, or logs not yet ingested)")

    # versions
    since_total = {m: sum(b.by_manifest.get(m, 0) for b in buckets if b.start >= since) for m in last_us}
    n_since = sum(since_total.values()) or 1
    ref_counts = _name_counts(mid_codes, id_names, in_ref)
    spans = tuple(LiveSpan(manifest_id=m, first_seen=_from_us(min(t for (bb, mm), t in first_us.items() if mm == m)),
                           last_seen=_from_us(last_us[m]), n=id_total.get(m, 0),
                           share=since_total.get(m, 0) / n_since, n_reference=ref_counts.get(m, 0))
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

    def seg_rows(segment: str, sel: np.ndarray) -> np.ndarray:
        key, _, value = segment.partition("=")
        if segment == ALL:
            return sel
        code_arr, values = codes[key]
        return sel[code_arr[sel] == values.index(value)]

    # the charts: the first moved window's signals first, then the later moves', then the isolated early ones
    charted = sorted(moves, key=lambda m: (0 if m.bucket == first else 2 if first is not None and m.bucket < first
                                           else 1, m.bucket, -abs(m.effect)))
    series = _series(charted, buckets, cols, window_rows, seg_rows(ALL, ref_rows), seg_rows,
                     {s: (k, c) for s, k, c in segs}, expected)
    tested = Tested(n_buckets=len(judged), signals=(VOLUME, *names), segments=tuple(s for s, _, _ in segs),
                    n_tests=len(cells), untestable=sum(why.values()), min_window=cfg.min_window, alpha=cfg.alpha,
                    bucket_sizes=(min(bucket_sizes, default=0), max(bucket_sizes, default=0)),
                    untestable_window=why["window"], untestable_reference=why["reference"],
                    untestable_volume=why["volume"], constant=constant, min_exact=min(MIN_EXACT, cfg.min_window),
                    n_volume_tests=sum(1 for c in cells if c.signal == VOLUME),
                    n_exact_tests=sum(1 for c in cells if c.test == "fisher"), blind_buckets=tuple(blind),
                    blind_unexplained=tuple(unexplained), vanished=tuple(vanished),
                    volume_only=tuple(volume_only))
    snap = IncidentSnapshot(
        project=str(layout.project or loaded.base_dir), status=status, verdict="", since=since, until=end,
        window_seconds=int(step.total_seconds()), timezone=cfg.timezone, source=str(log) if log else "the store",
        reference_start=ref_start, reference_end=ref_end, reference_manifest=ref_manifest,
        reference_records=int(ref_mask.sum()), reference_note=ref_note, aligned=aligned, rule=RULE,
        buckets=tuple(buckets), spans=spans, deployments=tuple(deployments), unknown_records=unknown,
        moves=tuple(moves), better=better_n, mix_moves=tuple(mix), first_moved=first, segments_hit=tuple(hits),
        versions=tuple(versions), diffs=tuple(diffs), tested=tested, series=series, notes=tuple(notes),
        early_moves=early)
    return snap.model_copy(update={"verdict": verdict_line(snap, found)})


def _onset(moves: Sequence[Move], alpha: float) -> int | None:
    """The first moved window: the first bucket with a confirmed move -- one significant under Holm over the
    family (family-wise: no false move anywhere with probability 1 - alpha), or one whose signal and segment
    moved the same way in the next bucket too (an incident lasts). Benjamini-Hochberg lets about alpha of the
    moves be false, and with many true moves the false ones can fall anywhere, before the incident too: an
    isolated weak move is listed, never called the onset. No confirmed move: the first move."""
    if not moves:
        return None

    def way(m: Move) -> tuple[str, str, bool]:
        return m.signal, m.segment, (m.window_value or 0) > (m.reference_value or 0)

    seen = {(m.bucket, *way(m)) for m in moves}
    for m in moves:  # by bucket
        if (m.p_holm is not None and m.p_holm <= alpha) or (m.bucket + 1, *way(m)) in seen:
            return m.bucket
    return moves[0].bucket


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


def _moved_text(c: _Cell, vals: np.ndarray, present: np.ndarray) -> str:
    from harness.stats.drift import categorical_drift, numeric_drift

    ref, cur = vals[c.ref_rows[present[c.ref_rows]]], vals[c.cur_rows[present[c.cur_rows]]]
    if c.test == "ks":
        d = numeric_drift(ref, cur, n_resamples=50)
        q = d.quantiles
        return (f"p10 {_fmt(q['p10'][0])} -> {_fmt(q['p10'][1])}, p50 {_fmt(q['p50'][0])} -> {_fmt(q['p50'][1])}, "
                f"p90 {_fmt(q['p90'][0])} -> {_fmt(q['p90'][1])}")
    r1, c1 = int(ref.sum()), int(cur.sum())
    cd = categorical_drift({"true": r1, "false": ref.size - r1}, {"true": c1, "false": cur.size - c1}, n_resamples=50)
    how = " (Fisher's exact test)" if c.test == "fisher" else ""
    return (f"{c.signal} true: {cd.reference_shares[-1]:.1%} -> {cd.current_shares[-1]:.1%}{how}"
            if cd.categories[-1:] == ("true",) else f"rate {c.ref_value:.1%} -> {c.cur_value:.1%}{how}")


def _volume_text(c: _Cell) -> str:
    hours = c.t_ref / 3600
    if c.ref_value is None or c.ref_value == 0:
        return f"{c.n_cur:,} records; none in the reference's same slot ({hours:.3g} h)"
    return (f"{c.n_cur:,} records, {c.ref_value:,.1f} expected ({c.n_ref:,} in {hours:.3g} h of the reference at "
            f"this time of day): {c.n_cur / c.ref_value:.0%} of the expected traffic")


def _mix_moved(codes: np.ndarray, values: Sequence[str], c: _Cell) -> str:
    from harness.stats.drift import categorical_drift

    d = categorical_drift(_code_counts(codes[c.ref_rows], values), _code_counts(codes[c.cur_rows], values),
                          n_resamples=50)
    return f"{d.moved[0]}: {d.moved[1]:.1%} -> {d.moved[2]:.1%}" if d.moved else ""


def _by_manifest(c: _Cell, vals: np.ndarray, present: np.ndarray, mids: np.ndarray) -> dict[str, float | None]:
    rows = c.cur_rows[present[c.cur_rows]]
    sub, v = mids[rows], vals[rows]
    out: dict[str, float | None] = {}
    for m in sorted(set(sub.tolist())):
        x = v[sub == m]
        out[m] = None if x.size == 0 else float(np.median(x)) if c.stat == "median" else float(np.mean(x))
    return out


def _count_by_manifest(c: _Cell, mids: np.ndarray) -> dict[str, float | None]:
    if c.cur_rows.size == 0:
        return {}
    names, n = np.unique(mids[c.cur_rows].astype(str), return_counts=True)
    return {str(m): float(k) for m, k in zip(names.tolist(), n.tolist(), strict=True)}


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


def _series(moves: Sequence[Move], buckets: Sequence[Bucket], cols: dict[str, tuple[np.ndarray, np.ndarray, bool]],
            window_rows: Callable[[int, str | None, int], np.ndarray], ref_all: np.ndarray,
            seg_rows: Callable[[str, np.ndarray], np.ndarray], seg_keys: dict[str, tuple[str | None, int]],
            expected: Callable[[Bucket, str | None, int], tuple[float | None, int, float]]
            ) -> tuple[SeriesPoint, ...]:
    """The value per bucket (median or rate; bucket -1: the whole reference) of each moved signal and segment;
    for the volume, the records per bucket and the records expected from the reference's same slot."""
    keys = list(dict.fromkeys((m.signal, m.segment, m.statistic) for m in moves))[:MAX_SERIES]
    out: list[SeriesPoint] = []
    for signal, segment, stat in keys:
        key, code = seg_keys[segment]
        if signal == VOLUME:
            out.append(SeriesPoint(signal=signal, segment=segment, bucket=-1, value=None,
                                   n=int(seg_rows(segment, ref_all).size)))
            for b in buckets:
                exp = expected(b, key, code)[0]
                out.append(SeriesPoint(signal=signal, segment=segment, bucket=b.index,
                                       value=float(window_rows(b.index, key, code).size),
                                       n=int(window_rows(b.index, key, code).size), expected=exp))
            continue
        vals, present, _ = cols[signal]
        for index, sel in [(-1, seg_rows(segment, ref_all)), *((b.index, window_rows(b.index, key, code))
                                                               for b in buckets)]:
            v = vals[sel[present[sel]]]
            value = None if v.size == 0 else float(np.median(v) if stat == "median" else np.mean(v))
            out.append(SeriesPoint(signal=signal, segment=segment, bucket=index, value=value, n=int(v.size)))
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


def untestable_text(t: Tested) -> str:
    """``N untestable (why)``: the cells that could not be tested, by reason."""
    parts = []
    if t.untestable_window:
        parts.append(f"{t.untestable_window:,} with too few values in the window")
    if t.untestable_reference:
        parts.append(f"{t.untestable_reference:,} with too few in the reference")
    if t.untestable_volume:
        parts.append(f"{t.untestable_volume:,} volumes under {t.min_exact} records seen and expected")
    if not parts:
        return f"{t.untestable:,} untestable"
    return (f"{t.untestable:,} untestable: {', '.join(parts)}; a side needs {t.min_window}+ values, "
            f"{t.min_exact}+ for a rate's exact test")


def blind_text(snap: IncidentSnapshot, limit: int = 3) -> str:
    """The judged buckets no per-record signal could test though the reference's same slot could."""
    t = snap.tested
    if not t.blind_buckets:
        return ""
    shown = []
    for i in (t.blind_unexplained or t.blind_buckets)[:limit]:
        b = snap.buckets[i]
        exp = f", {b.expected:,.0f} expected" if b.expected is not None else ""
        shown.append(f"{b.label}: {b.n:,} record{'s' * (b.n != 1)}{exp}")
    more = len(t.blind_unexplained or t.blind_buckets) - len(shown)
    text = (f"{len(t.blind_buckets)} of {t.n_buckets} buckets too thin for any test but the volume although the "
            f"reference's same slot held {t.min_window}+ records")
    if t.blind_unexplained:
        text += f", {len(t.blind_unexplained)} of them with no volume move"
    else:
        text += ", each with a volume move"
    return text + f" ({'; '.join(shown)}{f'; {more} more' if more > 0 else ''})"


def verdict_line(snap: IncidentSnapshot, found: dict[str, _Found] | None = None) -> str:
    t = snap.tested
    sizes = (f"{t.n_buckets} buckets of {t.bucket_sizes[0]:,}-{t.bucket_sizes[1]:,} records against a reference "
             f"of {snap.reference_records:,}")
    if snap.status == "cannot_judge":
        if t.blind_unexplained:
            return (f"cannot judge: {blind_text(snap)}: a window that should hold enough records to test and holds "
                    f"too few is no \"nothing moved\" ({t.n_tests:,} tests elsewhere, none moved; "
                    f"{untestable_text(t)})")
        if t.n_tests:
            n_signal = t.n_buckets - len(t.volume_only) - len(t.blind_buckets)
            return (f"cannot judge: {n_signal} of {t.n_buckets} buckets could be tested on a signal other than the "
                    f"volume (too few records; {t.n_tests:,} tests, none moved; {sizes}; {untestable_text(t)})")
        return f"cannot judge: no test could be made ({sizes}; {untestable_text(t)})"
    if snap.status == "quiet" or snap.first_moved is None:
        thin = (f"; {len(t.volume_only)} of {t.n_buckets} buckets judged on the volume only (too little traffic at "
                "that time of day, in the reference too)" if t.volume_only else "")
        return (f"nothing moved: {t.n_buckets} buckets x {len(t.signals)} signals (volume included) x "
                f"{len(t.segments)} segments ({t.n_tests:,} tests; {untestable_text(t)}; buckets of "
                f"{t.bucket_sizes[0]:,}-{t.bucket_sizes[1]:,} records) against {snap.reference_note}; "
                f"BH alpha {t.alpha}{thin}")
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
    top = _top_move(in_first, {h.segment for h in snap.segments_hit if h.specific})
    text += f"; {move_words(top)} in {top.segment}"
    others = sorted({m.signal for m in in_first} - {top.signal})
    if others:
        text += f" (also {', '.join(others)})"
    if snap.early_moves:
        text += (f"; {snap.early_moves} isolated weak move{'s' * (snap.early_moves != 1)} before it (listed, not "
                 "called the onset)")
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
    if t.blind_buckets:
        text += f"; {blind_text(snap)}"
    return text


def _top_move(moves: Sequence[Move], specific: set[str]) -> Move:
    """The move the verdict names. Where the overall traffic moved on a signal, a segment's move is named
    instead only when that segment accounts for 80%+ of the overall change (records x rate change, or
    missing / extra records for the volume): the cause is there. Else the overall move; a signal that
    moved in segments only: the largest move of a specific segment (see :class:`SegmentHit`)."""
    overall = {m.signal: m for m in moves if m.segment == ALL}

    def change(m: Move) -> float | None:
        if m.window_value is None or m.reference_value is None:
            return None
        if m.statistic == "count":
            return m.window_value - m.reference_value
        if m.statistic == "rate":
            return m.n_window * (m.window_value - m.reference_value)
        return None

    def explains(m: Move) -> bool:
        whole, part = change(overall[m.signal]), change(m)
        return whole is not None and part is not None and whole != 0 and part / whole >= 0.8

    named = [m for m in moves if m.segment != ALL and m.signal in overall and explains(m)]
    if named:
        return max(named, key=lambda m: abs(m.effect))
    if overall:
        return max(overall.values(), key=lambda m: abs(m.effect))
    picks = [m for m in moves if m.segment in specific] or list(moves)
    return max(picks, key=lambda m: abs(m.effect))


def move_words(m: Move) -> str:
    """``format_valid down 100% → 40%``, ``volume down to 14% of the expected (98.5 → 14 records)``."""
    word = "down" if (m.window_value or 0) < (m.reference_value or 0) else "up"
    if m.signal == VOLUME:
        if not m.reference_value:
            return f"volume up from none expected to {_num(m.window_value)} records"
        ratio = (m.window_value or 0) / m.reference_value
        return (f"volume {word} to {ratio:.0%} of the expected ({m.reference_value:,.1f} → "
                f"{m.window_value or 0:,.0f} records)")
    fmt = _pct if m.statistic == "rate" else _num
    return f"{m.signal} {word} {fmt(m.reference_value)} → {fmt(m.window_value)}"


def _ago(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"
