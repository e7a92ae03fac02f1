"""Aggregates from per-case scores: overall and per segment (tag=value).

The mean is over scored cases only; unscored cases (``None``) are counted beside it, never folded
in as NaN or 0 (DESIGN "Score"). Each summary records what its scorer declared of the metric (its
direction, role and label: :class:`~harness.metrics.MetricInfo`), so no reader parses a metric's name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from harness.metrics import MetricInfo
from harness.types import Aggregates, GoldenCase, MetricSummary, Score


def scored_mean(values: Sequence[float | None]) -> float | None:
    """Mean over the scored values (None = unscored, left out); None when nothing is scored."""
    scored = [v for v in values if v is not None]
    return math.fsum(scored) / len(scored) if scored else None


def summarize(values: Sequence[float | None], info: MetricInfo | None = None) -> MetricSummary:
    """The summary of one metric's values; a metric its scorer did not declare counts as a quality
    metric where greater is better."""
    scored = [v for v in values if v is not None]
    mean = math.fsum(scored) / len(scored) if scored else None
    if info is None:
        return MetricSummary(mean=mean, n=len(scored), n_unscored=len(values) - len(scored))
    return MetricSummary(mean=mean, n=len(scored), n_unscored=len(values) - len(scored),
                         greater_is_better=info.greater_is_better, role=info.role, label=info.label)


def aggregate(cases: Sequence[GoldenCase], scores: Sequence[Score], infos: Mapping[str, MetricInfo]) -> Aggregates:
    by_metric: dict[str, dict[str, float | None]] = defaultdict(dict)
    for s in scores:
        by_metric[s.metric][s.case_id] = s.value
    overall = {m: summarize(list(v.values()), infos.get(m)) for m, v in by_metric.items()}
    members: dict[str, list[str]] = defaultdict(list)
    for c in cases:
        for seg in c.segments():
            members[seg].append(c.id)
    segments = {
        seg: {m: summarize([v[cid] for cid in ids if cid in v], infos.get(m)) for m, v in by_metric.items()}
        for seg, ids in sorted(members.items())
    }
    return Aggregates(overall=overall, segments=segments)


_SHIFT = 1126
"""Exact sums are kept as integers in units of 2**-1126: a float64 is M * 2**(e - 53) with M an integer of at
most 53 bits and e >= -1073 (the smallest subnormal), so every finite value is a whole number of units."""


class _ExactSum:
    """A sum of floats kept exactly (a Python integer of units), so its float is ``math.fsum`` of all the
    values added, however they were split into parts."""

    __slots__ = ("n", "n_unscored", "special", "total")

    def __init__(self) -> None:
        self.n = 0
        self.n_unscored = 0
        self.total = 0
        self.special: list[float] = []  # inf and nan: fsum's own rules decide the result

    def add(self, values: Sequence[float | None]) -> None:
        scored = [v for v in values if v is not None]
        self.n_unscored += len(values) - len(scored)
        if not scored:
            return
        self.n += len(scored)
        arr = np.asarray(scored, dtype=np.float64)
        finite = np.isfinite(arr)
        if not finite.all():
            self.special += arr[~finite].tolist()
            arr = arr[finite]
        arr = arr[arr != 0.0]
        if not arr.size:
            return
        mant, exp = np.frexp(arr)
        whole = np.ldexp(mant, 53).astype(np.int64)  # exact: a mantissa has 53 bits
        hi, lo = whole >> 26, whole & ((1 << 26) - 1)  # sums of < 2**27 values cannot overflow int64
        for e in np.unique(exp).tolist():
            at = exp == e
            part = (int(hi[at].sum()) << 26) + int(lo[at].sum())
            self.total += part << (e - 53 + _SHIFT)

    def fsum(self) -> float:
        exact = self.total / (1 << _SHIFT)  # int / int is correctly rounded: what math.fsum returns
        return math.fsum([*self.special, exact]) if self.special else exact

    def summary(self, info: MetricInfo | None) -> MetricSummary:
        mean = self.fsum() / self.n if self.n else None
        if info is None:
            return MetricSummary(mean=mean, n=self.n, n_unscored=self.n_unscored)
        return MetricSummary(mean=mean, n=self.n, n_unscored=self.n_unscored,
                             greater_is_better=info.greater_is_better, role=info.role, label=info.label)


class AggregateAccumulator:
    """:func:`aggregate` a part of the run at a time: :meth:`add` each part's cases with their scores (the
    parts partition the run's cases; a part's scores are for its own cases), then :meth:`result` equals
    ``aggregate(all cases, all scores, infos)`` exactly (means from exact sums: ``math.fsum`` over the whole,
    not a sum of rounded partial sums), overall and per segment. Memory: one exact sum per metric and
    segment, whatever the number of cases."""

    def __init__(self) -> None:
        self._overall: dict[str, _ExactSum] = {}
        self._segments: dict[str, dict[str, _ExactSum]] = {}

    def add(self, cases: Sequence[GoldenCase], scores: Sequence[Score]) -> None:
        by_metric: dict[str, dict[str, float | None]] = defaultdict(dict)
        for s in scores:
            by_metric[s.metric][s.case_id] = s.value
        for m, v in by_metric.items():
            self._overall.setdefault(m, _ExactSum()).add(list(v.values()))
        members: dict[str, list[str]] = defaultdict(list)
        for c in cases:
            for seg in c.segments():
                members[seg].append(c.id)
        for seg, ids in members.items():
            sums = self._segments.setdefault(seg, {})
            for m, v in by_metric.items():
                sums.setdefault(m, _ExactSum()).add([v[cid] for cid in ids if cid in v])

    def result(self, infos: Mapping[str, MetricInfo]) -> Aggregates:
        overall = {m: acc.summary(infos.get(m)) for m, acc in self._overall.items()}
        empty = _ExactSum()
        segments = {seg: {m: sums.get(m, empty).summary(infos.get(m)) for m in self._overall}
                    for seg, sums in sorted(self._segments.items())}
        return Aggregates(overall=overall, segments=segments)
