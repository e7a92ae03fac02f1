"""Metric statistics: one paired comparison per metric x segment, corrected over one family.

For every metric (overall and per ``tag=value`` segment): base and head means over the cases both runs
scored, the absolute and relative delta, a paired bootstrap CI of the delta, a paired permutation
p-value (seeded), win/tie/loss counts and Cohen's d_z, with Holm (or Benjamini-Hochberg) correction
across one family of tests (see :func:`metric_deltas`); the gate, the reports and the pytest plugin read
these values, never a second correction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from harness.columns import RunColumns
from harness.diff.align import Alignment
from harness.diff.records import DiffSettings, MetricDelta
from harness.types import MetricRole, RunResult

if TYPE_CHECKING:
    from harness.stats import PairedComparison


def directions(base: RunColumns | RunResult, head: RunColumns | RunResult) -> dict[str, bool]:
    """``greater_is_better`` of every metric either run aggregated (head's declaration wins)."""
    return {m: s.greater_is_better for run in (base, head) for m, s in run.aggregates.overall.items()}


def roles(base: RunColumns | RunResult, head: RunColumns | RunResult) -> dict[str, MetricRole]:
    """The role of every metric either run aggregated (head's declaration wins)."""
    return {m: s.role for run in (base, head) for m, s in run.aggregates.overall.items()}


CHANGE_TOL = 1e-12  # the tolerance of win/tie/loss: a smaller difference is a tie


def _changed(b: np.ndarray, h: np.ndarray) -> int:
    """How many aligned, scored cases differ between the runs (what a paired test can see); NaN = not scored."""
    with np.errstate(invalid="ignore"):
        return int(np.count_nonzero(np.abs(h - b) > CHANGE_TOL))


def _min_p(changed: int, test: str) -> float:
    """The smallest p-value the configured test can reach with ``changed`` differing cases."""
    from harness.stats.multiple import sign_flip_min_p

    if test == "bootstrap":
        return 1.0 if changed == 0 else 0.0
    return sign_flip_min_p(changed)


def _compare(
    metric: str,
    segment: str,
    bv: np.ndarray,
    hv: np.ndarray,
    gib: bool,
    settings: DiffSettings,
    p_resamples: int,
    changed: int,
    role: MetricRole,
) -> MetricDelta:
    """One metric in one segment: ``bv``/``hv`` are the paired cases' values in base's order (NaN: not scored)."""
    bs, hs = ~np.isnan(bv), ~np.isnan(hv)
    both = bs & hs
    b = np.ascontiguousarray(bv[both], dtype=float)
    h = np.ascontiguousarray(hv[both], dtype=float)
    return MetricDelta(
        metric=metric,
        segment=segment,
        n_base=int(bs.sum()),
        n_head=int(hs.sum()),
        comparison=paired_comparison(b, h, gib, settings, p_resamples),
        changed=changed,
        role=role,
    )


def paired_comparison(b: np.ndarray, h: np.ndarray, gib: bool, settings: DiffSettings,
                      p_resamples: int) -> PairedComparison:
    """The paired comparison of the cases both runs scored (``b``/``h``, in the same order): p = 1 when
    nothing differs; a permutation p-value re-run with the family's ``p_resamples`` when that is more."""
    from harness.stats import compare_paired, paired_permutation_test

    cmp = compare_paired(
        b, h, greater_is_better=gib, seed=settings.seed, n_resamples=settings.n_resamples, test=settings.test
    )
    if b.size and np.array_equal(b, h):
        cmp = replace(cmp, p_value=1.0)
    elif b.size and settings.test == "permutation" and p_resamples > settings.n_resamples:
        res = paired_permutation_test(b, h, n_resamples=p_resamples, seed=settings.seed)
        cmp = replace(cmp, p_value=res.p_value, test_method=res.method)  # the method that gave this p
    return cmp


def metric_deltas(
    base: RunColumns, head: RunColumns, alignment: Alignment, dirs: dict[str, bool], settings: DiffSettings
) -> tuple[list[MetricDelta], list[MetricDelta], int]:
    """(overall deltas, segment deltas, family size) of the metrics both runs aggregated.

    The adjusted p-values are corrected over one family, the same for every reader (diff, gate, report,
    pytest): the metric x segment tests that can reach significance with the cases that changed
    (:func:`harness.stats.multiple.tarone_family` on the smallest p-value each test can give). A test
    where no case changed cannot vary; one with too few changed cases cannot pass ``alpha / K``; both
    stay out (``in_family = False``, ``p_adjusted = None``) instead of raising everyone else's bar.
    """
    n = len(alignment)
    metrics = [m for m in dirs if m in base.aggregates.overall and m in head.aggregates.overall]

    def paired(run: RunColumns, rows: np.ndarray, m: str) -> np.ndarray:
        col = run.values.get(m)
        return np.full(n, np.nan) if col is None else np.asarray(col, dtype=np.float64)[rows]

    per_metric = {m: (paired(base, alignment.base_rows, m), paired(head, alignment.head_rows, m)) for m in metrics}
    # One family for every front end (diff, gate, report, pytest): each metric x segment test that can
    # reach significance with the cases that changed (Tarone 1990). A test where nothing changed cannot
    # vary and stays out, so constant metrics and tiny segments do not dilute the real comparisons.
    keys: list[tuple[str, str, np.ndarray | None]] = [(m, "all", None) for m in metrics] + [
        (m, seg, mask) for seg, mask in alignment.segments.items() for m in metrics
    ]

    def values(m: str, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        b, h = per_metric[m]
        return (b, h) if mask is None else (b[mask], h[mask])

    changed = [_changed(*values(m, mask)) for m, _, mask in keys]
    role = roles(base, head)

    def test(key: tuple[str, str, np.ndarray | None], c: int, p_resamples: int) -> MetricDelta:
        m, seg, mask = key
        return _compare(m, seg, *values(m, mask), dirs.get(m, True), settings, p_resamples, c,
                        role.get(m, "quality"))

    tested, family = corrected_family(keys, changed, test, settings)
    return tested[: len(metrics)], tested[len(metrics) :], family


K = TypeVar("K")


def corrected_family(keys: Sequence[K], changed: Sequence[int], test: Callable[[K, int, int], MetricDelta],
                     settings: DiffSettings) -> tuple[list[MetricDelta], int]:
    """(``test(key, changed, resamples)`` of every key with its family fields set, the family size): the
    Tarone family of the tests that can reach significance with the cases that ``changed``, corrected
    (Holm, BH or none) over that family alone; a test out of it gets ``p_adjusted = None``."""
    from harness.stats import benjamini_hochberg, holm
    from harness.stats.multiple import tarone_family

    in_family = tarone_family([_min_p(c, settings.test) for c in changed], settings.alpha)
    family = sum(in_family)
    # A permutation p-value cannot be smaller than 1/(R+1); with m tests Holm needs p < alpha/m, so the
    # resolution grows with the family (20x the Bonferroni threshold) instead of capping significance.
    p_resamples = max(settings.n_resamples, math.ceil(20 * family / settings.alpha))
    tested = [test(key, c, p_resamples if fam else settings.n_resamples)
              for key, c, fam in zip(keys, changed, in_family, strict=True)]
    raw = [t.p_value if fam else None for t, fam in zip(tested, in_family, strict=True)]
    adjusted: Sequence[float | None]
    if settings.correction == "holm":
        adjusted = holm(raw)
    elif settings.correction == "bh":
        adjusted = benjamini_hochberg(raw)
    else:
        adjusted = raw
    return [
        t.model_copy(update={"p_adjusted": a, "in_family": fam, "significant": a is not None and a < settings.alpha})
        for t, a, fam in zip(tested, adjusted, in_family, strict=True)
    ], family
