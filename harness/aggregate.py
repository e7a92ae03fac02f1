"""Aggregates from per-case scores: overall and per segment (tag=value).

The mean is over scored cases only; unscored cases (``None``) are counted beside it, never folded
in as NaN or 0 (DESIGN "Score").
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

from harness.types import Aggregates, GoldenCase, MetricSummary, Score


def scored_mean(values: Sequence[float | None]) -> float | None:
    """Mean over the scored values (None = unscored, left out); None when nothing is scored."""
    scored = [v for v in values if v is not None]
    return math.fsum(scored) / len(scored) if scored else None


def summarize(values: Sequence[float | None], greater_is_better: bool = True) -> MetricSummary:
    scored = [v for v in values if v is not None]
    mean = math.fsum(scored) / len(scored) if scored else None
    return MetricSummary(mean=mean, n=len(scored), n_unscored=len(values) - len(scored),
                         greater_is_better=greater_is_better)


def aggregate(cases: Sequence[GoldenCase], scores: Sequence[Score], directions: Mapping[str, bool]) -> Aggregates:
    by_metric: dict[str, dict[str, float | None]] = defaultdict(dict)
    for s in scores:
        by_metric[s.metric][s.case_id] = s.value
    overall = {m: summarize(list(v.values()), directions.get(m, True)) for m, v in by_metric.items()}
    members: dict[str, list[str]] = defaultdict(list)
    for c in cases:
        for seg in c.segments():
            members[seg].append(c.id)
    segments = {
        seg: {m: summarize([v[cid] for cid in ids if cid in v], directions.get(m, True)) for m, v in by_metric.items()}
        for seg, ids in sorted(members.items())
    }
    return Aggregates(overall=overall, segments=segments)
