"""Drift between a reference window and a current one, with thresholds calibrated at the actual sizes.

The tests (issue 13's monitoring builds on them): Kolmogorov-Smirnov, Wasserstein-1 and the population
stability index for numeric signals; chi-squared and Jensen-Shannon for categorical ones; the kernel
maximum mean discrepancy (MMD, RBF kernel) for embeddings. scipy computes what it has (KS, Wasserstein,
chi-squared, Jensen-Shannon distance); MMD is computed here and checked against its definition.

A fixed rule ("PSI > 0.2") means different things at different sample sizes: with 100 records per
window it fires on most pairs drawn from one distribution. :func:`null_distribution` resamples the
reference at both windows' sizes to give the statistic's null distribution, so a threshold is its
``1 - alpha`` quantile and an observed value gets a p-value; :func:`numeric_drift` reports the fixed
rule's reading beside the calibrated one and what moved (quantiles, the bin that gained most mass).
Every random procedure takes ``seed``; undefined results are ``None``, never NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps
from scipy.spatial import distance as spd

from harness.stats.distribution import _sample, ks_2samp, psi

FloatArray = npt.NDArray[np.float64]
Statistic = Callable[[FloatArray, FloatArray], float]
PSI_FIXED_RULE = 0.2
"""The customary PSI alarm level, reported beside the calibrated threshold (never used alone)."""


def wasserstein(a: npt.ArrayLike, b: npt.ArrayLike) -> float | None:
    """Wasserstein-1 (earth mover's) distance between two samples; None when one is empty."""
    x, y = _sample(a, "a"), _sample(b, "b")
    return None if x.size == 0 or y.size == 0 else float(sps.wasserstein_distance(x, y))


def _counts(ref: Mapping[str, int], cur: Mapping[str, int]) -> tuple[list[str], FloatArray]:
    cats = sorted(set(ref) | set(cur))
    table = np.array([[ref.get(c, 0) for c in cats], [cur.get(c, 0) for c in cats]], dtype=np.float64)
    if (table < 0).any():
        raise ValueError("counts must not be negative")
    keep = table.sum(axis=0) > 0
    return [c for c, k in zip(cats, keep, strict=True) if k], table[:, keep]


@dataclass(frozen=True)
class ChiSquared:
    statistic: float | None
    p_value: float | None
    dof: int


def chi_squared(ref: Mapping[str, int], cur: Mapping[str, int]) -> ChiSquared:
    """Chi-squared test of homogeneity of two categorical count tables (scipy's ``chi2_contingency``, no
    continuity correction); undefined (None) with fewer than two categories or an empty window."""
    _, table = _counts(ref, cur)
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return ChiSquared(None, None, 0)
    res = sps.chi2_contingency(table, correction=False)
    return ChiSquared(float(res.statistic), float(res.pvalue), int(res.dof))


def jensen_shannon(ref: Mapping[str, int], cur: Mapping[str, int]) -> float | None:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two categorical distributions: the square of
    scipy's Jensen-Shannon distance. None when a window is empty."""
    _, table = _counts(ref, cur)
    if table.size == 0 or (table.sum(axis=1) == 0).any():
        return None
    return float(spd.jensenshannon(table[0], table[1], base=2) ** 2)


def _sq_dists(x: FloatArray, y: FloatArray) -> FloatArray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def _matrix(x: npt.ArrayLike, name: str) -> FloatArray:
    m = np.array(x, dtype=np.float64, copy=True)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must be a finite (n, d) array")
    return m


def mmd2_unbiased(x: FloatArray, y: FloatArray, bandwidth: float) -> float:
    """The unbiased estimate of MMD² with the RBF kernel exp(-|a-b|² / (2 bandwidth²)) (Gretton et al. 2012,
    eq. 3): within-sample kernel means without the diagonal, minus twice the cross mean."""
    gamma = 1.0 / (2.0 * bandwidth * bandwidth)
    kxx, kyy, kxy = (np.exp(-gamma * _sq_dists(a, b)) for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


@dataclass(frozen=True)
class MMDResult:
    statistic: float | None  # unbiased MMD²
    p_value: float | None  # permutation p-value, (1 + #null >= observed) / (1 + n_permutations)
    bandwidth: float | None
    n_ref: int
    n_cur: int


def mmd_test(ref: npt.ArrayLike, cur: npt.ArrayLike, *, bandwidth: float | None = None,
             n_permutations: int = 200, seed: int = 0) -> MMDResult:
    """Two-sample kernel MMD test (for query embeddings): the unbiased MMD² and its permutation p-value;
    the bandwidth defaults to the median pairwise distance of the pooled sample (the median heuristic)."""
    x, y = _matrix(ref, "ref"), _matrix(cur, "cur")
    if len(x) < 2 or len(y) < 2:
        return MMDResult(None, None, None, len(x), len(y))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"ref and cur differ in dimension ({x.shape[1]} vs {y.shape[1]})")
    pooled = np.vstack([x, y])
    if bandwidth is None:
        d = np.sqrt(_sq_dists(pooled, pooled))[np.triu_indices(len(pooled), 1)]
        positive = d[d > 0]
        bandwidth = float(np.median(positive)) if positive.size else 1.0
    observed = mmd2_unbiased(x, y, bandwidth)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(n_permutations):
        idx = rng.permutation(len(pooled))
        if mmd2_unbiased(pooled[idx[:len(x)]], pooled[idx[len(x):]], bandwidth) >= observed:
            exceed += 1
    return MMDResult(observed, (1 + exceed) / (1 + n_permutations), bandwidth, len(x), len(y))


@dataclass(frozen=True)
class NullDistribution:
    """A statistic's distribution when nothing drifted, at the windows' actual sizes."""

    values: tuple[float, ...]
    n_ref: int
    n_cur: int

    def threshold(self, alpha: float) -> float:
        """The value exceeded with probability ``alpha`` under no drift (the ``1 - alpha`` quantile)."""
        return float(np.quantile(np.array(self.values), 1.0 - alpha))

    def p_value(self, observed: float) -> float:
        """(1 + #null >= observed) / (1 + #null): never 0, valid for any number of resamples."""
        return (1 + sum(v >= observed for v in self.values)) / (1 + len(self.values))


def null_distribution(statistic: Statistic, reference: npt.ArrayLike, n_ref: int, n_cur: int, *,
                      n_resamples: int = 200, seed: int = 0) -> NullDistribution:
    """``statistic(ref*, cur*)`` over ``n_resamples`` pairs drawn with replacement from ``reference`` at
    sizes ``n_ref`` and ``n_cur``: what the statistic looks like between two windows of these sizes when
    both come from the reference distribution."""
    ref = _sample(reference, "reference")
    if ref.size == 0 or n_ref < 1 or n_cur < 1:
        raise ValueError("a null distribution needs a non-empty reference and window sizes >= 1")
    rng = np.random.default_rng(seed)
    values = [statistic(rng.choice(ref, n_ref), rng.choice(ref, n_cur)) for _ in range(n_resamples)]
    return NullDistribution(tuple(float(v) for v in values), n_ref, n_cur)


def _psi_value(a: FloatArray, b: FloatArray) -> float:
    value = psi(a, b).psi
    assert value is not None, "both samples are non-empty"
    return value


def _wasserstein_value(a: FloatArray, b: FloatArray) -> float:
    return float(sps.wasserstein_distance(a, b))


@dataclass(frozen=True)
class NumericDrift:
    """One numeric signal's drift between a reference and a current window."""

    n_ref: int
    n_cur: int
    ks_statistic: float | None
    ks_p_value: float | None
    wasserstein: float | None
    wasserstein_p_value: float | None  # calibrated: against the null at these sizes
    psi: float | None
    psi_p_value: float | None  # calibrated
    psi_threshold: float | None  # the calibrated alarm level at alpha
    psi_fixed_rule: bool | None  # the customary reading, PSI > 0.2, for comparison only
    quantiles: dict[str, tuple[float, float]]  # "p10"/"p50"/"p90": (reference, current)
    moved_bin: tuple[float, float, float] | None  # (upper edge or inf, reference share, current share)

    @property
    def p_values(self) -> tuple[float | None, ...]:
        """The tests' p-values, for a Benjamini-Hochberg correction across signals x segments x windows."""
        return self.ks_p_value, self.wasserstein_p_value, self.psi_p_value


def numeric_drift(reference: npt.ArrayLike, current: npt.ArrayLike, *, alpha: float = 0.05,
                  n_resamples: int = 200, seed: int = 0) -> NumericDrift:
    """KS (scipy), Wasserstein and PSI with p-values from the null at the windows' sizes, the PSI threshold
    calibrated at ``alpha`` beside the fixed rule's reading, and what moved."""
    ref, cur = _sample(reference, "reference"), _sample(current, "current")
    if ref.size == 0 or cur.size == 0:
        return NumericDrift(ref.size, cur.size, None, None, None, None, None, None, None, None, {}, None)
    ks = ks_2samp(ref, cur)
    p = psi(ref, cur)
    null_psi = null_distribution(_psi_value, ref, ref.size, cur.size, n_resamples=n_resamples, seed=seed)
    null_w = null_distribution(_wasserstein_value, ref, ref.size, cur.size, n_resamples=n_resamples, seed=seed + 1)
    w = _wasserstein_value(ref, cur)
    gain = np.array(p.actual_fractions) - np.array(p.expected_fractions)
    k = int(np.argmax(gain))
    upper = p.edges[k] if k < len(p.edges) else float("inf")
    quantiles = {f"p{q}": (float(np.quantile(ref, q / 100)), float(np.quantile(cur, q / 100))) for q in (10, 50, 90)}
    assert p.psi is not None
    return NumericDrift(
        n_ref=ref.size, n_cur=cur.size, ks_statistic=ks.statistic, ks_p_value=ks.p_value,
        wasserstein=w, wasserstein_p_value=null_w.p_value(w), psi=p.psi, psi_p_value=null_psi.p_value(p.psi),
        psi_threshold=null_psi.threshold(alpha), psi_fixed_rule=p.psi > PSI_FIXED_RULE, quantiles=quantiles,
        moved_bin=(upper, p.expected_fractions[k], p.actual_fractions[k]),
    )


# --- alarms: one corrected family, seasonality told apart ---------------------------------------------------

Comparison = Literal["day_over_day", "week_over_week", "golden", "named"]


@dataclass(frozen=True)
class DriftTest:
    """One test of one signal in one segment between two windows (``reference``, ``current`` are labels,
    e.g. ``"2026-11-24T09"``); ``effect`` is the statistic's value, ``moved`` what changed, in words."""

    signal: str
    segment: str
    comparison: Comparison
    reference: str
    current: str
    test: str
    p_value: float | None
    effect: float | None = None
    moved: str = ""


@dataclass(frozen=True)
class Alarm:
    test: DriftTest
    p_adjusted: float
    confirmed_by: DriftTest | None = None  # the aligned week-over-week test that agrees (for a day-over-day one)


@dataclass(frozen=True)
class AlarmReport:
    """The alarms (drift), the day-over-day moves put down to seasonality, and the family's size."""

    alarms: tuple[Alarm, ...]
    seasonal: tuple[Alarm, ...]
    n_tests: int
    untestable: int  # tests with no p-value (an empty window): counted, never a silent pass
    rule: str = ("drift when the aligned week-over-week comparison (same weekday and hour) is significant, "
                 "alone or with day-over-day; a day-over-day move that the aligned week-over-week comparison "
                 "does not show is seasonality; every p-value is Benjamini-Hochberg adjusted over all signals x "
                 "segments x windows x tests at once")


def drift_alarms(tests: Sequence[DriftTest], alpha: float = 0.05) -> AlarmReport:
    """Alarms from a family of tests: Benjamini-Hochberg over all of them (signals x segments x windows),
    then the seasonality rule of :class:`AlarmReport`. Golden and named-window comparisons alarm on their
    own adjusted p-value."""
    from harness.stats.multiple import benjamini_hochberg

    adjusted = benjamini_hochberg([t.p_value for t in tests])
    significant = {i for i, p in enumerate(adjusted) if p is not None and p <= alpha}
    wow = {(t.signal, t.segment, t.test): (t, adjusted[i]) for i, t in enumerate(tests)
           if t.comparison == "week_over_week" and i in significant}
    alarms: list[Alarm] = []
    seasonal: list[Alarm] = []
    for i in sorted(significant):
        t, p = tests[i], adjusted[i]
        assert p is not None
        if t.comparison == "day_over_day":
            agree = wow.get((t.signal, t.segment, t.test))
            (alarms if agree else seasonal).append(Alarm(t, p, agree[0] if agree else None))
        else:
            alarms.append(Alarm(t, p))
    return AlarmReport(tuple(alarms), tuple(seasonal), len(tests), sum(1 for t in tests if t.p_value is None))
