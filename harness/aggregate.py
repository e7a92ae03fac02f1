"""Aggregates from per-case scores: overall and per segment (tag=value).

The mean is over scored cases only; unscored cases (``None``) are counted beside it, never folded
in as NaN or 0 (DESIGN "Score"). Each summary records what its scorer declared of the metric (its
direction, role and label: :class:`~harness.metrics.MetricInfo`), so no reader parses a metric's name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

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
