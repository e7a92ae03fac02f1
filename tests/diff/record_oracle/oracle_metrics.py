"""Oracle of tests/diff/test_diff_columns.py: the record-based diff as it was before the columnar one.

Metric statistics: one paired comparison per metric x segment, corrected over one family.

For every metric (overall and per ``tag=value`` segment): base and head means over the cases both runs
scored, the absolute and relative delta, a paired bootstrap CI of the delta, a paired permutation
p-value (seeded), win/tie/loss counts and Cohen's d_z, with Holm (or Benjamini-Hochberg) correction
across one family of tests (see :func:`metric_deltas`); the gate, the reports and the pytest plugin read
these values, never a second correction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from harness.diff.records import DiffSettings, MetricDelta
from harness.types import MetricRole, RunResult
from tests.diff.record_oracle.oracle_align import Alignment


def directions(base: RunResult, head: RunResult) -> dict[str, bool]:
    """``greater_is_better`` of every metric either run aggregated (head's declaration wins)."""
    return {m: s.greater_is_better for run in (base, head) for m, s in run.aggregates.overall.items()}


def roles(base: RunResult, head: RunResult) -> dict[str, MetricRole]:
    """The role of every metric either run aggregated (head's declaration wins)."""
    return {m: s.role for run in (base, head) for m, s in run.aggregates.overall.items()}


CHANGE_TOL = 1e-12  # the tolerance of win/tie/loss: a smaller difference is a tie


def _changed(ids: Sequence[str], bv: dict[str, float | None], hv: dict[str, float | None]) -> int:
    """How many aligned, scored cases differ between the runs (what a paired test can see)."""
    n = 0
    for c in ids:
        b, h = bv.get(c), hv.get(c)
        if b is not None and h is not None and abs(h - b) > CHANGE_TOL:
            n += 1
    return n


def _min_p(changed: int, test: str) -> float:
    """The smallest p-value the configured test can reach with ``changed`` differing cases."""
    from harness.stats.multiple import sign_flip_min_p

    if test == "bootstrap":
        return 1.0 if changed == 0 else 0.0
    return sign_flip_min_p(changed)


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
    from harness.stats import compare_paired, paired_permutation_test

    pairs = [(bv[c], hv[c]) for c in ids if bv.get(c) is not None and hv.get(c) is not None]
    b = np.array([p[0] for p in pairs], dtype=float)
    h = np.array([p[1] for p in pairs], dtype=float)
    cmp = compare_paired(
        b, h, greater_is_better=gib, seed=settings.seed, n_resamples=settings.n_resamples, test=settings.test
    )
    if pairs and np.array_equal(b, h):
        cmp = replace(cmp, p_value=1.0)
    elif pairs and settings.test == "permutation" and p_resamples > settings.n_resamples:
        cmp = replace(cmp, p_value=paired_permutation_test(b, h, n_resamples=p_resamples, seed=settings.seed).p_value)
    return MetricDelta(
        metric=metric,
        segment=segment,
        n_base=sum(1 for c in ids if bv.get(c) is not None),
        n_head=sum(1 for c in ids if hv.get(c) is not None),
        comparison=cmp,
        changed=changed,
        role=role,
    )


def metric_deltas(
    base: RunResult, head: RunResult, alignment: Alignment, dirs: dict[str, bool], settings: DiffSettings
) -> tuple[list[MetricDelta], list[MetricDelta], int]:
    """(overall deltas, segment deltas, family size) of the metrics both runs aggregated.

    The adjusted p-values are corrected over one family, the same for every reader (diff, gate, report,
    pytest): the metric x segment tests that can reach significance with the cases that changed
    (:func:`harness.stats.multiple.tarone_family` on the smallest p-value each test can give). A test
    where no case changed cannot vary; one with too few changed cases cannot pass ``alpha / K``; both
    stay out (``in_family = False``, ``p_adjusted = None``) instead of raising everyone else's bar.
    """
    from harness.stats import benjamini_hochberg, holm
    from harness.stats.multiple import tarone_family

    bcs, hcs = base.case_scores(), head.case_scores()
    common = alignment.common
    metrics = [m for m in dirs if m in base.aggregates.overall and m in head.aggregates.overall]
    per_metric = {
        m: ({c: bcs.get(c, {}).get(m) for c in common}, {c: hcs.get(c, {}).get(m) for c in common}) for m in metrics
    }
    # One family for every front end (diff, gate, report, pytest): each metric x segment test that can
    # reach significance with the cases that changed (Tarone 1990). A test where nothing changed cannot
    # vary and stays out, so constant metrics and tiny segments do not dilute the real comparisons.
    keys: list[tuple[str, str, tuple[str, ...]]] = [(m, "all", common) for m in metrics] + [
        (m, seg, ids) for seg, ids in alignment.segments.items() for m in metrics
    ]
    changed = [_changed(ids, *per_metric[m]) for m, _, ids in keys]
    in_family = tarone_family([_min_p(c, settings.test) for c in changed], settings.alpha)
    family = sum(in_family)
    # A permutation p-value cannot be smaller than 1/(R+1); with m tests Holm needs p < alpha/m, so the
    # resolution grows with the family (20x the Bonferroni threshold) instead of capping significance.
    p_resamples = max(settings.n_resamples, math.ceil(20 * family / settings.alpha))
    role = roles(base, head)
    tested = [
        _compare(m, seg, ids, *per_metric[m], dirs.get(m, True), settings,
                 p_resamples if fam else settings.n_resamples, c, role.get(m, "quality"))
        for (m, seg, ids), c, fam in zip(keys, changed, in_family, strict=True)
    ]
    raw = [t.p_value if fam else None for t, fam in zip(tested, in_family, strict=True)]
    adjusted: Sequence[float | None]
    if settings.correction == "holm":
        adjusted = holm(raw)
    elif settings.correction == "bh":
        adjusted = benjamini_hochberg(raw)
    else:
        adjusted = raw
    tested = [
        t.model_copy(update={"p_adjusted": a, "in_family": fam, "significant": a is not None and a < settings.alpha})
        for t, a, fam in zip(tested, adjusted, in_family, strict=True)
    ]
    return tested[: len(metrics)], tested[len(metrics) :], family
