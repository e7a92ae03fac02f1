"""What a monitor pass finds: the records every face (text, md, JSON, HTML) renders; faces compute nothing.

A :class:`MonitorReport` holds the drift alarms (one Benjamini-Hochberg family, the seasonality rule), the
SLO and log-contract results, a time series per signal and segment, and for each alarm the two windows'
distributions side by side. Its :attr:`MonitorReport.status` fails closed: ``alarm`` when anything is
wrong, ``cannot_judge`` when the windows hold too little to test, ``ok`` only when every check ran.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.stats.drift import Alarm, AlarmReport

Status = Literal["ok", "alarm", "cannot_judge"]
CheckStatus = Literal["pass", "fail", "not_judged"]


@dataclass(frozen=True)
class SeriesPoint:
    """One signal's summary in one window and segment (``segment`` "all" or ``key=value``): the mean of a
    numeric signal, the share of a flag, or the share of the window's most frequent category."""

    signal: str
    segment: str
    window: str  # the window's label, e.g. "2026-11-24"
    value: float | None
    n: int


@dataclass(frozen=True)
class Distribution:
    """A signal's distribution in two windows, for showing side by side: ``labels`` are bin ranges (numeric)
    or categories; ``reference`` and ``current`` their shares (each sums to 1)."""

    signal: str
    segment: str
    reference_window: str
    current_window: str
    kind: Literal["numeric", "categorical"]
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    n_reference: int
    n_current: int


@dataclass(frozen=True)
class SLOResult:
    window: str
    segment: str
    limit: str  # e.g. "latency total p95", "error_rate", "timeout_rate"
    threshold: float
    observed: float | None  # the quantile, or the rate's upper bound
    n: int
    status: CheckStatus
    detail: str = ""


ContractCheck = Literal["null_rate", "duplicates", "new_field", "missing_field", "retyped_field", "freshness"]


@dataclass(frozen=True)
class ContractFinding:
    """One data-contract check on the log in one window: a limit from ``[monitor.log_contract]`` (pass/fail),
    or a change in the log's shape against the reference window (new, missing or retyped fields: fail)."""

    window: str
    check: ContractCheck
    field: str  # the source field ("*" for the whole record)
    status: CheckStatus
    observed: float | None = None
    threshold: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class SampleNote:
    """How many records of a window an expensive signal (query embedding, groundedness) was computed on."""

    signal: str
    window: str
    segment: str
    sampled: int
    total: int


@dataclass(frozen=True)
class AlarmGroup:
    """The alarms of one signal in one segment and current window, shown as one row: the alarm with the
    smallest adjusted p-value, and which tests and comparisons agreed (a drifted numeric signal is often
    flagged by KS, Wasserstein and PSI, day over day and week over week)."""

    alarm: Alarm
    tests: tuple[str, ...]  # every test that alarmed, the shown one first
    comparisons: tuple[str, ...]
    n: int  # alarms in the group


@dataclass(frozen=True)
class MonitorReport:
    project: str
    windows: tuple[str, ...]  # the judged windows (current), oldest first
    segments: tuple[str, ...]  # "all" first, then key=value
    n_records: int
    drift: AlarmReport
    series: tuple[SeriesPoint, ...] = ()
    distributions: tuple[Distribution, ...] = ()  # one per alarm (its signal, segment and windows)
    slo: tuple[SLOResult, ...] = ()
    contracts: tuple[ContractFinding, ...] = ()
    samples: tuple[SampleNote, ...] = ()
    not_judged: tuple[str, ...] = ()  # windows or comparisons that could not be made, with the reason
    empty_windows: tuple[str, ...] = ()  # judged days (asked for) that hold no record: never a pass
    settings: dict[str, Any] = field(default_factory=dict)  # alpha, min_window, timezone, seed, sample sizes

    @property
    def alarm_groups(self) -> tuple[AlarmGroup, ...]:
        """The alarms grouped by (signal, segment, current window), in the order their first alarm comes."""
        groups: dict[tuple[str, str, str], list[Alarm]] = {}
        for a in self.drift.alarms:
            groups.setdefault((a.test.signal, a.test.segment, a.test.current), []).append(a)
        out = []
        for members in groups.values():
            members.sort(key=lambda a: a.p_adjusted)
            out.append(AlarmGroup(members[0], tuple(dict.fromkeys(a.test.test for a in members)),
                                  tuple(dict.fromkeys(a.test.comparison for a in members)), len(members)))
        return tuple(out)

    @property
    def slo_failures(self) -> tuple[SLOResult, ...]:
        return tuple(r for r in self.slo if r.status == "fail")

    @property
    def contract_failures(self) -> tuple[ContractFinding, ...]:
        return tuple(c for c in self.contracts if c.status == "fail")

    @property
    def cannot_judge(self) -> tuple[str, ...]:
        """Why the pass cannot say "ok": no window, no record or no testable drift test; a judged day with no
        record (a logging gap); a day-over-day move no week-over-week comparison can confirm or dismiss; an
        SLO limit not judged over all of a day's traffic (a segment's small window is listed, not blocking)."""
        reasons: list[str] = []
        if not self.windows or self.n_records == 0:
            reasons.append("no records in the judged windows")
        elif self.drift.n_tests == self.drift.untestable:
            reasons.append(f"all {self.drift.n_tests:,} drift tests untestable (a window empty or too small)")
        if self.empty_windows:
            reasons.append(f"no records on {', '.join(self.empty_windows)}")
        if self.drift.unconfirmed:
            days = sorted({a.test.current for a in self.drift.unconfirmed})
            reasons.append(f"{len(self.drift.unconfirmed):,} day-over-day moves with no week-over-week comparison "
                           f"to tell drift from seasonality ({', '.join(days)})")
        overall = sorted({r.window for r in self.slo if r.status == "not_judged" and r.segment == "all"})
        if overall:
            reasons.append(f"SLO limits not judged over all traffic on {', '.join(overall)}")
        return tuple(reasons)

    @property
    def status(self) -> Status:
        """``alarm`` on any drift alarm, SLO or contract failure; else ``cannot_judge`` for any reason of
        :attr:`cannot_judge`; else ``ok``. Never ``ok`` by default: an empty pass is ``cannot_judge``."""
        if self.drift.alarms or self.slo_failures or self.contract_failures:
            return "alarm"
        return "cannot_judge" if self.cannot_judge else "ok"

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = self.status
        out["cannot_judge"] = list(self.cannot_judge)
        return out
