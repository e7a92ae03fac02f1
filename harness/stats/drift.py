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
    p_value: float | None  # permutation p-value (resampled_p_value: the tail extrapolated beyond them)
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
    sq = _sq_dists(pooled, pooled)  # once: the bandwidth, the observed statistic and every permutation use it
    if bandwidth is None:
        d = np.sqrt(sq[np.triu_indices(len(pooled), 1)])
        positive = d[d > 0]
        bandwidth = float(np.median(positive)) if positive.size else 1.0
    # Every permutation from one pooled kernel matrix: with a the 0/1 indicator of the first sample,
    # sum_xx = a'Ka, sum_yy = b'Kb, sum_xy = a'Kb (b = 1 - a), the diagonal (k(z, z) = 1) taken out.
    kernel = np.exp(-sq / (2.0 * bandwidth * bandwidth))
    m, n = len(x), len(y)
    rng = np.random.default_rng(seed)
    a = np.zeros((len(pooled), n_permutations + 1))
    a[:m, 0] = 1.0  # column 0: the observed split
    for j in range(1, n_permutations + 1):
        a[rng.permutation(len(pooled))[:m], j] = 1.0
    ka = kernel @ a
    k1 = kernel.sum(axis=1, keepdims=True)
    sxx = (a * ka).sum(axis=0)
    sxy = (a * (k1 - ka)).sum(axis=0)
    syy = ((1.0 - a) * (k1 - ka)).sum(axis=0)
    values = (sxx - m) / (m * (m - 1)) + (syy - n) / (n * (n - 1)) - 2.0 * sxy / (m * n)
    observed, null = float(values[0]), values[1:]
    return MMDResult(observed, resampled_p_value(null, observed), bandwidth, len(x), len(y))


@dataclass(frozen=True)
class NullDistribution:
    """A statistic's distribution when nothing drifted, at the windows' actual sizes."""

    values: tuple[float, ...]
    n_ref: int
    n_cur: int

    def threshold(self, alpha: float) -> float:
        """The value exceeded with probability ``alpha`` under no drift (the ``1 - alpha`` quantile)."""
        return float(np.quantile(np.array(self.values), 1.0 - alpha))

    def p_value(self, observed: float, *, extrapolate: bool = True) -> float:
        """The resampling p-value, with the tail beyond the resamples extrapolated (:func:`resampled_p_value`)."""
        return resampled_p_value(np.array(self.values), observed, extrapolate=extrapolate)


CHEAP_RESAMPLES = 2000
"""Count draws for the nulls that cost O(bins) per draw (PSI, Jensen-Shannon): p-values down to 1/2,001."""
MIN_EXPECTED = 5.0
"""Smallest expected count per bin or category for which a PSI or JS null is smooth enough to extrapolate."""


def resampled_p_value(null: npt.NDArray[np.float64], observed: float, *, extrapolate: bool = True) -> float:
    """P(null >= observed) from ``R`` resampled null values: ``(1 + #null >= observed) / (1 + R)`` while the
    observed value lies within them; beyond the largest, the tail of the moment-matched Pearson type III
    (shifted gamma) distribution of the null, capped at ``1 / (1 + R)`` (the gamma approximation of
    Gretton et al. 2009 for kernel statistics). Without the extrapolation a resampling test could never
    report less than 1/201 at 200 resamples, and in a Benjamini-Hochberg family of thousands of tests
    (signals x segments x windows) it could then never raise an alarm, however large the drift.

    ``extrapolate=False`` where the null is not smooth: a PSI null is a mixture (resamples with an empty bin
    form a second, far mode) whose tail no three moments describe; measured on a window of 102 records, the
    extrapolated tail said 1e-5 to 5e-9 where 20,000 permutations say 0.0023. PSI's p-value therefore comes
    from 2,000 count draws without extrapolation (down to 5e-4: it corroborates; KS, on the same values, is
    exact and extrapolates nothing), and JS's
    is extrapolated only when every category expects at least 5 records in each window."""
    r = null.size
    exceed = int(np.sum(null >= observed - 1e-12 * max(1.0, abs(observed))))
    floor = 1.0 / (1 + r)
    if exceed > 0 or r < 20 or not extrapolate:
        return (1 + exceed) / (1 + r)
    sd = float(null.std(ddof=1))
    if not sd > 0:
        return floor if observed <= float(null.max()) else 1e-300  # a constant null: anything above it is drift
    skew = float(sps.skew(null, bias=False))
    tail = float(sps.pearson3.sf(observed, skew, loc=float(null.mean()), scale=sd))
    return min(floor, max(tail, 1e-300))


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


_SUPPORT = 1000  # the Wasserstein null's bulk support points (its tails are kept exactly: _TAIL each side)
_TAIL = 50


def _psi_null(reference_fractions: Sequence[float], n_ref: int, n_cur: int, n_resamples: int,
              rng: np.random.Generator, eps: float = 1e-6) -> NullDistribution:
    """PSI's null with the bins as the observed statistic has them: cut at the reference's own quantiles, so
    the reference's fractions are what they are (never an empty bin) and only the current window's counts
    vary. For a continuous signal the true mass of bins cut at a sample's order statistics is
    Dirichlet(k_1, ..., k_B + 1) whatever the distribution (k_j: reference values in bin j; the uniform
    spacings result), so a resample draws the masses, then Multinomial(n_cur, masses) current counts. An
    earlier null that redrew the reference's counts too let reference bins be empty, a far second mode that
    made the threshold meaningless when one window is small (40 vs 2,000 records: no A/A p-value below 0.05,
    and a 1-SD shift read p = 0.11)."""
    e = np.maximum(np.asarray(reference_fractions, dtype=np.float64), eps)
    counts = np.rint(np.asarray(reference_fractions, dtype=np.float64) * n_ref)
    alpha = np.maximum(counts, 0.0)
    alpha[-1] += 1.0
    alpha = np.maximum(alpha, 1e-3)  # a tied reference can leave a bin without a value; it keeps a sliver of mass
    masses = rng.dirichlet(alpha, size=n_resamples)
    a = np.maximum(rng.multinomial(n_cur, masses) / n_cur, eps)
    return NullDistribution(tuple(float(v) for v in ((a - e[None, :]) * np.log(a / e[None, :])).sum(axis=1)),
                            n_ref, n_cur)


def _wasserstein_null(pooled: FloatArray, n_ref: int, n_cur: int, n_resamples: int,
                      rng: np.random.Generator) -> NullDistribution:
    """Wasserstein-1 between two windows of these sizes resampled from the pooled sample (the two windows
    together: what both come from when nothing drifted), by the Poisson bootstrap: each window's counts over
    the pooled sample's sorted values are independent Poisson(n x mass) draws, normalized; W1 of two
    distributions on one sorted support is sum |F_a - F_b| x gap.

    Up to 1,100 pooled values every value is a support point. Above, the 50 smallest and 50 largest values
    stay support points of their own (mass 1/N each) and the rest is represented by 1,000 equal-mass
    quantiles, so a lone outlier weighs in the null as it does in the observed statistic while a call costs
    O(resamples x 1,100) whatever the window size. (A Brownian-bridge null and plain quantile grids were
    tried and dropped: both lose the tails' spread and alarmed on A/A windows, up to p = 1e-136 for one
    outlier among 100 groundedness scores.)"""
    ordered = np.sort(pooled)
    total = ordered.size
    if total <= _SUPPORT + 2 * _TAIL:
        support = ordered
        blocks: tuple[tuple[int, float], ...] = ((total, 1.0 / total),)
    else:
        bulk = ordered[_TAIL:-_TAIL]
        grid = (np.arange(_SUPPORT) + 0.5) / _SUPPORT * (bulk.size - 1)
        support = np.concatenate([ordered[:_TAIL], np.interp(grid, np.arange(bulk.size), bulk), ordered[-_TAIL:]])
        blocks = ((_TAIL, 1.0 / total), (_SUPPORT, bulk.size / total / _SUPPORT), (_TAIL, 1.0 / total))
    if support.size < 2 or support[0] == support[-1]:
        return NullDistribution((0.0,) * n_resamples, n_ref, n_cur)
    gaps = np.diff(support)

    def counts(n: int) -> FloatArray:  # one scalar-rate draw per block of equal mass (much faster than per point)
        drawn = [rng.poisson(n * mass, size=(n_resamples, size)) for size, mass in blocks]
        return np.cumsum(np.concatenate(drawn, axis=1) if len(drawn) > 1 else drawn[0], axis=1, dtype=np.float64)

    ca, cb = counts(n_ref), counts(n_cur)
    diff = ca[:, :-1] / np.maximum(ca[:, -1:], 1.0) - cb[:, :-1] / np.maximum(cb[:, -1:], 1.0)
    return NullDistribution(tuple((np.abs(diff) @ gaps).tolist()), n_ref, n_cur)


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
    edges: tuple[float, ...] = ()  # the reference's PSI bin edges (interior), for showing both histograms
    reference_fractions: tuple[float, ...] = ()
    current_fractions: tuple[float, ...] = ()

    @property
    def p_values(self) -> tuple[float | None, ...]:
        """The tests' p-values, for a Benjamini-Hochberg correction across signals x segments x windows."""
        return self.ks_p_value, self.wasserstein_p_value, self.psi_p_value


def numeric_drift(reference: npt.ArrayLike, current: npt.ArrayLike, *, alpha: float = 0.05,
                  n_resamples: int = 200, seed: int = 0) -> NumericDrift:
    """KS (scipy), Wasserstein and PSI with p-values from the null at the windows' sizes, the PSI threshold
    calibrated at ``alpha`` beside the fixed rule's reading, and what moved.

    Both nulls resample the pooled windows at the two windows' sizes (the bootstrap version of a permutation
    test); they are drawn as counts (over the PSI bins; over the pool's support for Wasserstein) so a window
    of 100,000 records costs little more than one of 100."""
    ref, cur = _sample(reference, "reference"), _sample(current, "current")
    if ref.size == 0 or cur.size == 0:
        return NumericDrift(ref.size, cur.size, None, None, None, None, None, None, None, None, {}, None)
    rng = np.random.default_rng(seed)
    ks = ks_2samp(ref, cur)
    p = psi(ref, cur)
    assert p.psi is not None
    null_psi = _psi_null(p.expected_fractions, ref.size, cur.size, max(n_resamples, CHEAP_RESAMPLES), rng)
    null_w = _wasserstein_null(np.concatenate([ref, cur]), ref.size, cur.size, n_resamples, rng)
    w = _wasserstein_value(ref, cur)
    gain = np.array(p.actual_fractions) - np.array(p.expected_fractions)
    k = int(np.argmax(gain))
    upper = p.edges[k] if k < len(p.edges) else float("inf")
    quantiles = {f"p{q}": (float(np.quantile(ref, q / 100)), float(np.quantile(cur, q / 100))) for q in (10, 50, 90)}
    return NumericDrift(
        n_ref=ref.size, n_cur=cur.size, ks_statistic=ks.statistic, ks_p_value=ks.p_value,
        wasserstein=w, wasserstein_p_value=null_w.p_value(w), psi=p.psi,
        psi_p_value=null_psi.p_value(p.psi, extrapolate=False),
        psi_threshold=null_psi.threshold(alpha), psi_fixed_rule=p.psi > PSI_FIXED_RULE, quantiles=quantiles,
        moved_bin=(upper, p.expected_fractions[k], p.actual_fractions[k]), edges=p.edges,
        reference_fractions=p.expected_fractions, current_fractions=p.actual_fractions,
    )


@dataclass(frozen=True)
class CategoricalDrift:
    """One categorical signal's drift: chi-squared (scipy) and Jensen-Shannon with a p-value from the null at
    the windows' sizes (both windows drawn from the pooled shares: the permutation null of a homogeneity
    test), and the category whose share moved most."""

    n_ref: int
    n_cur: int
    chi2: float | None
    chi2_p_value: float | None
    js: float | None
    js_p_value: float | None
    categories: tuple[str, ...]
    reference_shares: tuple[float, ...]
    current_shares: tuple[float, ...]
    moved: tuple[str, float, float] | None  # (category, reference share, current share)


def categorical_drift(ref: Mapping[str, int], cur: Mapping[str, int], *, n_resamples: int = 200,
                      seed: int = 0) -> CategoricalDrift:
    cats, table = _counts(ref, cur)
    n_ref, n_cur = int(table[0].sum()) if table.size else 0, int(table[1].sum()) if table.size else 0
    if n_ref == 0 or n_cur == 0:
        return CategoricalDrift(n_ref, n_cur, None, None, None, None, tuple(cats), (), (), None)
    shares = table / table.sum(axis=1, keepdims=True)
    chi = chi_squared(ref, cur)
    js = float(spd.jensenshannon(table[0], table[1], base=2) ** 2) if len(cats) > 1 else 0.0
    if len(cats) > 1:
        rng = np.random.default_rng(seed)
        pooled = table.sum(axis=0) / table.sum()
        draws = max(n_resamples, CHEAP_RESAMPLES)
        a = rng.multinomial(n_ref, pooled, size=draws) / n_ref
        b = rng.multinomial(n_cur, pooled, size=draws) / n_cur
        m = (a + b) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_a = np.where(a > 0, a * np.log2(a / m), 0.0).sum(axis=1)
            kl_b = np.where(b > 0, b * np.log2(b / m), 0.0).sum(axis=1)
        null = (kl_a + kl_b) / 2
        smooth = min(n_ref, n_cur) * float(pooled[pooled > 0].min()) >= MIN_EXPECTED
        js_p: float | None = resampled_p_value(null, js, extrapolate=smooth)
    else:
        js_p = None
    k = int(np.argmax(np.abs(shares[1] - shares[0])))
    return CategoricalDrift(n_ref, n_cur, chi.statistic, chi.p_value, js, js_p, tuple(cats),
                            tuple(float(x) for x in shares[0]), tuple(float(x) for x in shares[1]),
                            (cats[k], float(shares[0, k]), float(shares[1, k])))


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
    # significant day-over-day tests with no testable week-over-week counterpart (no reference a week back,
    # or too few records there): neither drift nor seasonality can be told, so the pass cannot judge them
    unconfirmed: tuple[Alarm, ...] = ()
    rule: str = ("drift when the aligned week-over-week comparison (same weekday and hour) is significant; a "
                 "day-over-day move it does not show is seasonality. The alarm family (week-over-week, golden and "
                 "named comparisons over all signals x segments x windows x tests) is Benjamini-Hochberg adjusted "
                 "at once; day-over-day tests are adjusted in a family of their own, so the daily and weekly "
                 "cycles they pick up cannot loosen the alarm family's threshold. A significant day-over-day move "
                 "with no testable week-over-week comparison to tell it from the cycle is unconfirmed: the pass "
                 "cannot judge it (never seasonal, never a pass)")


def drift_alarms(tests: Sequence[DriftTest], alpha: float = 0.05) -> AlarmReport:
    """Alarms from a family of tests and the seasonality rule of :class:`AlarmReport`.

    Day-over-day tests compare unlike days (a Saturday with a Friday), so under daily and weekly seasonality
    many of them are truly significant. In one Benjamini-Hochberg family with the week-over-week tests,
    those seasonal discoveries would raise the step-up threshold for every other test and let week-over-week
    noise through (measured on a seasonal stream with no drift: alarms on 4 of 21 days). So the alarm
    family is every week-over-week, golden and named test (all signals x segments x windows x tests,
    adjusted at once), and the day-over-day tests are adjusted as their own family: a significant one is
    listed with the week-over-week alarm of the same signal, segment, test and day that confirms it, or
    set aside as seasonal."""
    from harness.stats.multiple import benjamini_hochberg

    alarm_idx = [i for i, t in enumerate(tests) if t.comparison != "day_over_day"]
    dod_idx = [i for i, t in enumerate(tests) if t.comparison == "day_over_day"]
    adjusted: dict[int, float | None] = {}
    for family in (alarm_idx, dod_idx):
        for i, p in zip(family, benjamini_hochberg([tests[i].p_value for i in family]), strict=True):
            adjusted[i] = p
    significant = {i for i, p in adjusted.items() if p is not None and p <= alpha}
    wow = {(t.signal, t.segment, t.test, t.current): (t, adjusted[i]) for i, t in enumerate(tests)
           if t.comparison == "week_over_week" and i in significant}
    testable_wow = {(t.signal, t.segment, t.test, t.current) for t in tests
                    if t.comparison == "week_over_week" and t.p_value is not None}
    alarms: list[Alarm] = []
    seasonal: list[Alarm] = []
    unconfirmed: list[Alarm] = []
    for i in sorted(significant):
        t, p = tests[i], adjusted[i]
        assert p is not None
        if t.comparison == "day_over_day":
            key = (t.signal, t.segment, t.test, t.current)
            agree = wow.get(key)
            if agree:
                alarms.append(Alarm(t, p, agree[0]))
            else:
                (seasonal if key in testable_wow else unconfirmed).append(Alarm(t, p))
        else:
            alarms.append(Alarm(t, p))
    return AlarmReport(tuple(alarms), tuple(seasonal), len(tests), sum(1 for t in tests if t.p_value is None),
                       unconfirmed=tuple(unconfirmed))
