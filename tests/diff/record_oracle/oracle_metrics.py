"""Oracle of tests/diff/test_diff_columns.py: the record-based diff as it was before the columnar one.

Metric statistics, one paired comparison per metric x segment: what this oracle holds on its own is how the
paired values are read from the runs' records (per-case score dicts, cases as id lists); the statistics of the
pairs and the one corrected family are harness's (:func:`harness.diff.metrics.paired_comparison`,
:func:`harness.diff.metrics.corrected_family`), unchanged by the columnar rewrite.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.diff.metrics import CHANGE_TOL, corrected_family, directions, paired_comparison, roles
from harness.diff.records import DiffSettings, MetricDelta
from harness.types import MetricRole, RunResult
from tests.diff.record_oracle.oracle_align import Alignment

__all__ = ["directions", "metric_deltas", "roles"]


def _changed(ids: Sequence[str], bv: dict[str, float | None], hv: dict[str, float | None]) -> int:
    """How many aligned, scored cases differ between the runs (what a paired test can see)."""
    n = 0
    for c in ids:
        b, h = bv.get(c), hv.get(c)
        if b is not None and h is not None and abs(h - b) > CHANGE_TOL:
            n += 1
    return n


def _compare(
    metric: str,
    segment: str,
    ids: Sequence[str],
    bv: dict[str, float | None],
    hv: dict[str, float | None],
    gib: bool,
    settings: DiffSettings,
    p_resamples: int,
    changed: int,
    role: MetricRole,
) -> MetricDelta:
    pairs = [(bv[c], hv[c]) for c in ids if bv.get(c) is not None and hv.get(c) is not None]
    b = np.array([p[0] for p in pairs], dtype=float)
    h = np.array([p[1] for p in pairs], dtype=float)
    return MetricDelta(
        metric=metric,
        segment=segment,
        n_base=sum(1 for c in ids if bv.get(c) is not None),
        n_head=sum(1 for c in ids if hv.get(c) is not None),
        comparison=paired_comparison(b, h, gib, settings, p_resamples),
        changed=changed,
        role=role,
    )


def metric_deltas(
    base: RunResult, head: RunResult, alignment: Alignment, dirs: dict[str, bool], settings: DiffSettings
) -> tuple[list[MetricDelta], list[MetricDelta], int]:
    """(overall deltas, segment deltas, family size) of the metrics both runs aggregated."""
    bcs, hcs = base.case_scores(), head.case_scores()
    common = alignment.common
    metrics = [m for m in dirs if m in base.aggregates.overall and m in head.aggregates.overall]
    per_metric = {
        m: ({c: bcs.get(c, {}).get(m) for c in common}, {c: hcs.get(c, {}).get(m) for c in common}) for m in metrics
    }
    keys: list[tuple[str, str, tuple[str, ...]]] = [(m, "all", common) for m in metrics] + [
        (m, seg, ids) for seg, ids in alignment.segments.items() for m in metrics
    ]
    changed = [_changed(ids, *per_metric[m]) for m, _, ids in keys]
    role = roles(base, head)

    def test(key: tuple[str, str, tuple[str, ...]], c: int, p_resamples: int) -> MetricDelta:
        m, seg, ids = key
        return _compare(m, seg, ids, *per_metric[m], dirs.get(m, True), settings, p_resamples, c,
                        role.get(m, "quality"))

    tested, family = corrected_family(keys, changed, test, settings)
    return tested[: len(metrics)], tested[len(metrics) :], family
