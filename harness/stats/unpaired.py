"""Unpaired two-sample statistics for the canary verdict (``harness canary``): baseline records against canary
records, different requests on each side, so nothing pairs them.

* :func:`mann_whitney` — numeric signals, unstratified (retrieval scores, latency, groundedness): the two-sided
  Mann-Whitney U p-value of :func:`scipy.stats.mannwhitneyu` (``method="auto"``: exact for small samples
  without ties, else the normal approximation with the tie correction), the Hodges-Lehmann shift (the median
  of every pairwise difference ``canary_j - baseline_i``) and its distribution-free confidence interval: the
  order statistics of the pairwise differences at the Mann-Whitney critical values (Hollander & Wolfe,
  *Nonparametric Statistical Methods*, 3rd ed., section 4.3; what R's ``wilcox.test(conf.int=TRUE)`` reports),
  with the exact null distribution of U for small samples without ties and the normal approximation (its
  variance tie-corrected) otherwise.
* :func:`two_proportions` — 0/1 signals, unstratified (format valid, errors, timeouts): Fisher's exact p-value
  (:func:`scipy.stats.fisher_exact`, at every size: it is exact and takes under a millisecond even for
  400,000 records, so no large-sample z-test is needed), the difference of rates and Newcombe's (1998)
  hybrid score interval built from the two Wilson intervals (his method 10).
* :func:`van_elteren` — numeric signals compared within strata (the canary's hours): van Elteren's (1960)
  stratified Wilcoxon rank-sum test (per-stratum rank sums weighted by ``1 / (N_k + 1)``, the normal
  approximation with per-stratum tie-corrected variances; one stratum: exactly the Mann-Whitney normal
  approximation without continuity correction), the shift that zeroes the statistic (the Hodges-Lehmann
  estimate, stratified) and the shifts it does not reject as the interval, and the baseline's median
  re-weighted to the canary's mix over strata. Cost per test ``O(N log N)`` once plus ~20-60 evaluations of
  ``O(min(n, m) log max(n, m))``: ~0.3-0.6 s CPU at a million records (measured in the tests).
* :func:`stratified_proportions` / :func:`cochran_mantel_haenszel` — 0/1 signals within strata: the CMH test
  (with Mantel and Haenszel's continuity correction, as R's ``mantelhaen.test``), the canary's rate against
  the baseline's directly standardised to the canary's mix, Newcombe's hybrid interval at the standardised
  rate's effective size. Strata are the canary's hours (:data:`MIN_STRATUM`: none merged by default;
  :func:`merge_strata` can merge small ones into a neighbour).
* :func:`classify` and :func:`score` — Kayenta's per-metric classification (pass / high / low / nodata) and
  its score (100 x the weight of passing metrics over the weight of judged ones), see their docstrings for
  where this differs from Kayenta.

Order statistics of the ``n * m`` pairwise differences are exact at every size. Up to :data:`MAX_PAIRS`
differences they are read from the sorted matrix; beyond it, without forming the matrix, by selection:
the count of differences ``<= t`` is ``sum_i searchsorted(canary, baseline_i + t)`` (``O(n log m)``), a
bisection on ``t`` narrows the ``k``-th difference to an interval holding no other distinct difference, and
the value is then read off as the smallest difference above the interval's lower end (memory ``O(n + m)``;
exact up to the floating rounding of ``baseline_i + t``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sps

from harness.stats.intervals import wilson_interval

Label = Literal["pass", "high", "low", "nodata"]
BadDirection = Literal["increase", "decrease", "either"]
FloatArray = npt.NDArray[np.float64]

MAX_PAIRS = 4_000_000
"""Above this many pairwise differences the Hodges-Lehmann order statistics are found by selection."""
EXACT_CI_MAX = 50
"""The exact null distribution of U gives the interval when both samples are smaller than this and untied."""


@dataclass(frozen=True)
class UnpairedResult:
    """One unpaired comparison, canary against baseline.

    ``effect`` is canary - baseline: the Hodges-Lehmann shift (``test="mann-whitney"``) or the difference of
    rates (``test="fisher"``); ``ci_low``/``ci_high`` its interval at ``confidence``. ``baseline_value`` and
    ``canary_value`` are the medians (numeric) or rates. Undefined values (an empty side) are ``None``."""

    test: Literal["mann-whitney", "fisher", "van-elteren", "cmh"]
    n_baseline: int
    n_canary: int
    statistic: float | None
    p_value: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    baseline_value: float | None
    canary_value: float | None
    confidence: float
    method: str = ""  # how p and the interval were computed, e.g. "exact; ci exact" / "asymptotic; ci normal"
    strata: int | None = None  # stratified tests: strata compared (after merging small ones)
    labels: int | None = None  # ... distinct labels (hours) holding a value
    merged: int = 0  # ... labels with fewer than min_stratum values on a side, merged into a neighbour


def _finite(values: Sequence[float] | FloatArray, what: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} holds NaN or infinite values; drop unmeasured records first")
    return arr


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


# --- order statistics of the pairwise differences --------------------------------------------------------


def _count_le(x: FloatArray, y: FloatArray, t: float) -> int:
    """How many differences ``y_j - x_i`` are ``<= t`` (x, y sorted), querying the smaller side."""
    if x.size <= y.size:
        return int(np.searchsorted(y, x + t, side="right").sum())
    return int(x.size * y.size - np.searchsorted(x, y - t, side="left").sum())  # n - #{x_i < y_j - t} per j


def _kth_by_selection(x: FloatArray, y: FloatArray, k: int) -> float:
    """The ``k``-th smallest (1-based) of ``y_j - x_i`` without forming the matrix (x, y sorted)."""
    lo = float(y[0] - x[-1]) - 1.0  # count(<= lo) = 0 < k
    hi = float(y[-1] - x[0])  # count(<= hi) = n*m >= k
    for _ in range(200):
        mid = lo + (hi - lo) / 2
        if mid <= lo or mid >= hi:
            break
        if _count_le(x, y, mid) >= k:
            hi = mid
        else:
            lo = mid
    # the k-th difference is in (lo, hi]: gather the differences there (those of tied values, or one or two)
    below = _count_le(x, y, lo)
    start = np.searchsorted(y, x + lo, side="right")
    stop = np.searchsorted(y, x + hi, side="right")
    width = stop - start
    inside = int(width.sum())
    rows = np.flatnonzero(width > 0)
    if inside <= 1_000_000:
        cols = np.concatenate([np.arange(start[i], stop[i]) for i in rows]) if rows.size else np.zeros(0, np.int64)
        vals = np.sort(y[cols] - np.repeat(x[rows], width[rows]))
        pos = min(max(k - below - 1, 0), vals.size - 1)
        return float(vals[pos]) if vals.size else hi
    # a converged window holding a huge tie: its differences are one value up to rounding
    return float(np.min(y[start[rows]] - x[rows]))


def pairwise_order_statistics(baseline: Sequence[float] | FloatArray, canary: Sequence[float] | FloatArray,
                              ks: Sequence[int], *, max_pairs: int = MAX_PAIRS) -> list[float]:
    """The ``k``-th smallest (1-based) pairwise differences ``canary_j - baseline_i`` for each ``k`` in
    ``ks`` (sorted matrix up to ``max_pairs`` differences, selection beyond: see the module docstring)."""
    x = np.sort(_finite(baseline, "baseline"))
    y = np.sort(_finite(canary, "canary"))
    total = x.size * y.size
    for k in ks:
        if not 1 <= k <= total:
            raise ValueError(f"order statistic {k} is outside 1..{total}")
    if total <= max_pairs:
        diffs = np.partition((y[None, :] - x[:, None]).ravel(), sorted({int(k) - 1 for k in ks}))
        return [float(diffs[k - 1]) for k in ks]
    return [_kth_by_selection(x, y, int(k)) for k in ks]


def hodges_lehmann(baseline: Sequence[float] | FloatArray, canary: Sequence[float] | FloatArray, *,
                   max_pairs: int = MAX_PAIRS) -> float | None:
    """The median of all pairwise differences ``canary_j - baseline_i`` (None when a side is empty)."""
    n, m = len(baseline), len(canary)
    total = n * m
    if total == 0:
        return None
    if total % 2:
        return pairwise_order_statistics(baseline, canary, [(total + 1) // 2], max_pairs=max_pairs)[0]
    a, b = pairwise_order_statistics(baseline, canary, [total // 2, total // 2 + 1], max_pairs=max_pairs)
    return (a + b) / 2


def u_null_cdf(n: int, m: int) -> FloatArray:
    """``P(U <= u)`` for ``u = 0..n*m`` under the null without ties (U = the Mann-Whitney count for samples of
    sizes n and m): the coefficients of the Gaussian binomial ``[n+m choose n]_q`` over ``C(n+m, n)``."""
    if n < 0 or m < 0:
        raise ValueError("sample sizes must be non-negative")
    size = n * m + 1
    coef = np.zeros(size, dtype=np.float64)
    coef[0] = 1.0
    # prod_{i=1..n} (1 - q^(m+i)) / (1 - q^i): multiply by the numerator factor, divide by the denominator's
    for i in range(1, n + 1):
        shift = m + i
        if shift < size:
            coef[shift:] -= coef[: size - shift].copy()
        for k in range(i, size):  # division by (1 - q^i): c[k] += c[k - i]
            coef[k] += coef[k - i]
    total = math.comb(n + m, n)
    return np.minimum(1.0, np.cumsum(coef) / total)


def _critical_rank(n: int, m: int, confidence: float, x: FloatArray, y: FloatArray) -> tuple[int, str]:
    """The order statistic (1-based) of the lower confidence bound: the smallest ``c`` with
    ``P(U <= c) >= (1 - confidence) / 2``, at least 1 (R's ``qwilcox``)."""
    alpha = 1.0 - confidence
    pooled = np.concatenate([x, y])
    tied = np.unique(pooled).size < pooled.size
    if n < EXACT_CI_MAX and m < EXACT_CI_MAX and not tied:
        cdf = u_null_cdf(n, m)
        c = int(np.searchsorted(cdf, alpha / 2 - 1e-12, side="left"))
        return max(c, 1), "exact"
    # normal approximation: mean nm/2, variance with the tie correction
    _, counts = np.unique(pooled, return_counts=True)
    big_n = n + m
    var = n * m / 12.0 * ((big_n + 1) - float(np.sum(counts**3 - counts)) / (big_n * (big_n - 1)))
    z = float(special.ndtri(1.0 - alpha / 2))
    c = math.floor(n * m / 2.0 - z * math.sqrt(max(var, 0.0)))
    return max(c, 1), "normal"


def mann_whitney(baseline: Sequence[float] | FloatArray, canary: Sequence[float] | FloatArray, *,
                 confidence: float = 0.95, max_pairs: int = MAX_PAIRS) -> UnpairedResult:
    """Mann-Whitney U test (two-sided), Hodges-Lehmann shift canary - baseline and its distribution-free
    interval. ``statistic`` is U of the canary sample (``scipy.stats.mannwhitneyu(canary, baseline)``)."""
    _check_confidence(confidence)
    x = _finite(baseline, "baseline")
    y = _finite(canary, "canary")
    n, m = x.size, y.size
    base_med = float(np.median(x)) if n else None
    can_med = float(np.median(y)) if m else None
    if n == 0 or m == 0:
        return UnpairedResult("mann-whitney", n, m, None, None, None, None, None, base_med, can_med, confidence)
    res = sps.mannwhitneyu(y, x, alternative="two-sided", method="auto")
    p = float(res.pvalue)
    if math.isnan(p):  # every value identical on both sides: no evidence of a shift
        p = 1.0
    p = min(1.0, max(0.0, p))
    c, how = _critical_rank(n, m, confidence, x, y)
    total = n * m
    if c > total - c + 1:  # too few records for any interval at this confidence: the widest one
        c = 1
        how += " (widest: too few records for the level)"
    k_mid = [(total + 1) // 2] if total % 2 else [total // 2, total // 2 + 1]
    stats = pairwise_order_statistics(x, y, [c, total - c + 1, *k_mid], max_pairs=max_pairs)
    low, high = stats[0], stats[1]
    hl = stats[2] if len(k_mid) == 1 else (stats[2] + stats[3]) / 2
    return UnpairedResult("mann-whitney", n, m, float(res.statistic), p, hl, low, high, base_med, can_med,
                          confidence, f"p scipy mannwhitneyu (auto); ci {how}")


# --- two proportions ----------------------------------------------------------------------------------------


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Newcombe's (1998) hybrid score interval for ``k1/n1 - k2/n2`` (his method 10): with Wilson intervals
    ``(l1, u1)`` and ``(l2, u2)``, ``d - sqrt((p1-l1)^2 + (u2-p2)^2) .. d + sqrt((u1-p1)^2 + (p2-l2)^2)``."""
    w1 = wilson_interval(k1, n1, confidence)
    w2 = wilson_interval(k2, n2, confidence)
    if w1 is None or w2 is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    low = d - math.sqrt((p1 - w1[0]) ** 2 + (w2[1] - p2) ** 2)
    high = d + math.sqrt((w1[1] - p1) ** 2 + (p2 - w2[0]) ** 2)
    return max(-1.0, low), min(1.0, high)


def two_proportions(k_base: int, n_base: int, k_canary: int, n_canary: int, *,
                    confidence: float = 0.95) -> UnpairedResult:
    """Fisher's exact two-sided test of two rates; ``effect`` = canary rate - baseline rate with Newcombe's
    hybrid score interval."""
    _check_confidence(confidence)
    for k, n, what in ((k_base, n_base, "baseline"), (k_canary, n_canary, "canary")):
        if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n or n < 0 or not 0 <= k <= n:
            raise ValueError(f"{what}: need integers 0 <= k <= n, got k={k!r}, n={n!r}")
    kb, nb, kc, nc = int(k_base), int(n_base), int(k_canary), int(n_canary)
    rb = kb / nb if nb else None
    rc = kc / nc if nc else None
    if nb == 0 or nc == 0:
        return UnpairedResult("fisher", nb, nc, None, None, None, None, None, rb, rc, confidence)
    odds, p = sps.fisher_exact([[kc, nc - kc], [kb, nb - kb]], alternative="two-sided")
    ci = newcombe_interval(kc, nc, kb, nb, confidence)
    assert ci is not None
    assert rb is not None and rc is not None
    odds_f = float(odds)
    return UnpairedResult("fisher", nb, nc, odds_f if math.isfinite(odds_f) else None, min(1.0, float(p)),
                          rc - rb, ci[0], ci[1], rb, rc, confidence, "p Fisher exact; ci Newcombe hybrid score")


# --- Kayenta-style classification and score -----------------------------------------------------------------


@dataclass(frozen=True)
class Classified:
    """A signal's classification: ``label`` (pass / high / low / nodata), ``failed`` (the label is the
    signal's bad direction, or nodata: what cannot be judged never passes) and the relative move
    ``effect / |baseline_value|`` (None when undefined)."""

    label: Label
    failed: bool
    relative: float | None


def relative_move(effect: float | None, baseline_value: float | None) -> float | None:
    if effect is None or baseline_value is None:
        return None
    if baseline_value == 0:
        return 0.0 if effect == 0 else math.copysign(math.inf, effect)
    return effect / abs(baseline_value)


def classify(result: UnpairedResult, *, alpha_adjusted_p: float | None, baseline_value: float | None,
             tolerance: float, bad: BadDirection, alpha: float = 0.05, min_records: int = 2,
             abs_tolerance: float = 0.0) -> Classified:
    """``high`` / ``low`` when the adjusted p-value is below ``alpha``, the relative move
    ``|effect| / |baseline_value|`` exceeds ``tolerance`` and ``|effect|`` exceeds ``abs_tolerance``; ``pass``
    otherwise; ``nodata`` when either side
    has fewer than ``min_records`` values or no p-value. ``failed`` when the label is ``bad``'s direction
    (``increase`` -> high, ``decrease`` -> low, ``either`` -> both) or nodata.

    Kayenta (NetflixACAJudge / MannWhitneyClassifier) classifies a metric high when the lower bound of the
    Hodges-Lehmann interval (98%) exceeds a quarter of the estimate's size, with no correction across metrics,
    after removing outliers (IQR x 3), and only in the configured direction. Here significance is the
    corrected p-value (the family is every signal x segment), the effect-size rule is the signal's
    ``tolerance`` relative to the baseline's value (Kayenta's later ``allowedIncrease``/``allowedDecrease``
    effect sizes, as a share), nothing is dropped as an outlier (the rank test is robust), and a move in the
    good direction is labelled too (shown, never failed)."""
    if tolerance < 0 or abs_tolerance < 0:
        raise ValueError(f"tolerances must be >= 0, got {tolerance!r} and {abs_tolerance!r}")
    relative = relative_move(result.effect, baseline_value)
    if (result.n_baseline < min_records or result.n_canary < min_records or result.p_value is None
            or alpha_adjusted_p is None or result.effect is None):
        return Classified("nodata", True, relative)
    label: Label = "pass"
    if (alpha_adjusted_p < alpha and relative is not None and abs(relative) > tolerance
            and abs(result.effect) > abs_tolerance and result.effect != 0):
        label = "high" if result.effect > 0 else "low"
    failed = (label == "high" and bad in ("increase", "either")) or (label == "low" and bad in ("decrease", "either"))
    return Classified(label, failed, relative)


@dataclass(frozen=True)
class ScoreResult:
    """Kayenta's score over one group of classified signals: ``score`` = 100 x the weight of passing signals
    over the weight of judged ones (None when none was judged); ``critical_failed``: indices of critical
    signals that failed (a failed critical signal fails the group whatever its score)."""

    score: float | None
    passed: int
    judged: int
    nodata: int
    critical_failed: tuple[int, ...]


def score(tests: Sequence[Classified], weights: Sequence[float], *,
          critical: Sequence[bool] | None = None) -> ScoreResult:
    """The weighted score of one group (a segment). Nodata signals are left out of the weight judged (and
    counted): a group with every signal nodata has no score. A critical signal that failed on a judged
    classification (high or low in its bad direction) is listed in ``critical_failed``; a critical signal
    with no data is not a critical failure here (it is counted as nodata, and the caller's rules for
    unjudged groups apply) — Kayenta counts it as failed."""
    if len(weights) != len(tests) or (critical is not None and len(critical) != len(tests)):
        raise ValueError("tests, weights and critical must have the same length")
    crit = list(critical) if critical is not None else [False] * len(tests)
    judged_w = passed_w = 0.0
    passed = judged = nodata = 0
    failed_crit: list[int] = []
    for i, (t, w) in enumerate(zip(tests, weights, strict=True)):
        if w <= 0 or not math.isfinite(w):
            raise ValueError(f"weight #{i} is {w!r}; weights must be positive")
        if t.label == "nodata":
            nodata += 1
            continue
        judged += 1
        judged_w += w
        if not t.failed:
            passed += 1
            passed_w += w
        elif crit[i]:
            failed_crit.append(i)
    value = 100.0 * passed_w / judged_w if judged else None
    return ScoreResult(value, passed, judged, nodata, tuple(failed_crit))


def score_status(value: float | None, critical_failed: bool, *, pass_score: float,
                 marginal_score: float) -> Literal["pass", "marginal", "fail", "cannot_judge"]:
    """Kayenta's threshold classifier: below ``marginal_score`` fails, below ``pass_score`` is marginal (not a
    pass), a failed critical signal fails; no score cannot be judged."""
    if critical_failed:
        return "fail"
    if value is None:
        return "cannot_judge"
    if value < marginal_score:
        return "fail"
    if value < pass_score:
        return "marginal"
    return "pass"


# --- stratified comparisons (the canary's hourly strata) --------------------------------------------------

MIN_STRATUM = 1
"""The canary's strata are its hours, none merged: van Elteren's and the CMH statistics sum over strata, so
an hour with a single value per side still counts, and an hour with one side empty adds nothing (weight 0)
— its records stay counted in the sides' sizes, they are just not compared with another hour's. Merging
small hours into a neighbour (``min_size >= 2`` in :func:`merge_strata`) pools hours whose levels differ and
brings back the bias stratifying removes: on an A/A canary ramping from 5% to 50% at noon over scores with
a noon step, a minimum of 5 per side gave 3 alarms in 10 runs, of 2, 16 in 100; unmerged, see the tests."""
SHIFT_XTOL = 1e-4
"""The stratified shift and its interval are found to within this many standard errors (then snapped to
the pairwise difference where the rank statistic steps; see :func:`van_elteren`)."""
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Strata:
    """Merged strata: ``baseline`` / ``canary`` hold each value's merged stratum (0..``strata``-1);
    ``labels`` the distinct original labels (hours) holding a value on either side, ``small`` how many of them
    had fewer than ``min_size`` values on a side (merged with a neighbour; with ``min_size <= 1``, nothing is
    merged and ``small`` counts the labels with one side empty). No value is dropped: every value of every
    label lands in some stratum."""

    baseline: IntArray
    canary: IntArray
    labels: int
    strata: int
    small: int


def merge_strata(baseline_labels: npt.ArrayLike, canary_labels: npt.ArrayLike, *,
                 min_size: int = MIN_STRATUM) -> Strata:
    """Group ordered stratum labels (hours) into strata holding at least ``min_size`` values on each side:
    walking the labels in order, a stratum is closed once both sides reach ``min_size``; what is left at the
    end joins the last closed stratum. When a side has fewer than ``min_size`` values in total everything is
    one stratum. ``min_size <= 1`` merges nothing: each label is a stratum and ``small`` counts the labels
    with one side empty."""
    b = np.asarray(baseline_labels, dtype=np.int64).ravel()
    c = np.asarray(canary_labels, dtype=np.int64).ravel()
    if b.size + c.size == 0:
        return Strata(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0, 0)
    first = int(min(b.min() if b.size else c.min(), c.min() if c.size else b.min()))
    last = int(max(b.max() if b.size else c.max(), c.max() if c.size else b.max()))
    if last - first < 10_000_000:  # labels are hours: count them directly
        nb_all = np.bincount(b - first, minlength=last - first + 1)
        nc_all = np.bincount(c - first, minlength=last - first + 1)
        present = np.flatnonzero((nb_all > 0) | (nc_all > 0))
        labels = present + first
        nb, nc = nb_all[present], nc_all[present]
    else:
        labels = np.union1d(b, c)
        nb = np.bincount(np.searchsorted(labels, b), minlength=labels.size)
        nc = np.bincount(np.searchsorted(labels, c), minlength=labels.size)
    group = np.zeros(labels.size, dtype=np.int64)
    if min_size <= 1:  # nothing merged: a label with one side empty keeps its stratum (it carries no weight)
        group = np.arange(labels.size, dtype=np.int64)
        small = int(np.sum((nb == 0) | (nc == 0)))
        return Strata(_lookup(group, labels, first, last, b), _lookup(group, labels, first, last, c),
                      int(labels.size), int(labels.size), small)
    g = acc_b = acc_c = 0
    for i in range(labels.size):
        group[i] = g
        acc_b += int(nb[i])
        acc_c += int(nc[i])
        if acc_b >= min_size and acc_c >= min_size:
            g += 1
            acc_b = acc_c = 0
    if (acc_b or acc_c) and g > 0:  # an unfinished last group joins the one before it
        group[group == g] = g - 1
    small = int(np.sum((nb < min_size) | (nc < min_size)))
    return Strata(_lookup(group, labels, first, last, b), _lookup(group, labels, first, last, c), int(labels.size),
                  int(group.max()) + 1, small)


def _lookup(group: IntArray, labels: IntArray, first: int, last: int, values: IntArray) -> IntArray:
    """Each value's group, by its label."""
    if last - first < 10_000_000:
        table = np.zeros(last - first + 1, dtype=np.int64)
        table[labels - first] = group
        return table[values - first]
    return group[np.searchsorted(labels, values)]


def _sorted_groups(values: FloatArray, groups: IntArray, k: int) -> list[FloatArray]:
    order = np.argsort(groups, kind="stable")
    v = values[order]
    bounds = np.searchsorted(groups[order], np.arange(k + 1))
    return [np.sort(v[bounds[i]:bounds[i + 1]]) for i in range(k)]


def _weighted_median_sorted(xs: list[FloatArray], weights: FloatArray) -> float | None:
    """:func:`weighted_median` of sorted groups sharing one weight per group, without sorting them together:
    bisection on the value until few values lie between the bounds, then those values sorted."""
    groups = [(x, float(w)) for x, w in zip(xs, weights, strict=True) if x.size and w > 0]
    if not groups:
        return None
    half = sum(w * x.size for x, w in groups) / 2.0
    lo = min(float(x[0]) for x, _ in groups)
    hi = max(float(x[-1]) for x, _ in groups)
    lo_idx = np.zeros(len(groups), dtype=np.int64)  # values <= lo (none: lo is below everything)
    hi_idx = np.array([x.size for x, _ in groups], dtype=np.int64)  # values <= hi (all)
    lo = math.nextafter(lo, -math.inf)
    ws = np.array([w for _, w in groups])
    for _ in range(200):
        if int((hi_idx - lo_idx).sum()) <= 4096:
            break
        mid = lo + (hi - lo) / 2.0
        if not lo < mid < hi:
            break
        idx = np.array([np.searchsorted(x, mid, side="right") for x, _ in groups], dtype=np.int64)
        if float(np.dot(ws, idx)) >= half * (1 - 1e-12):
            hi, hi_idx = mid, idx
        else:
            lo, lo_idx = mid, idx
    # the median is among the values in (lo, hi]: sort them with their weights, the weight below lo first
    vals = np.concatenate([x[i:j] for (x, _), i, j in zip(groups, lo_idx, hi_idx, strict=True)])
    wts = np.concatenate([np.full(j - i, w) for (_, w), i, j in zip(groups, lo_idx, hi_idx, strict=True)])
    below = float(np.dot(ws, lo_idx))
    if vals.size > 1_000_000:  # one value tied across the bounds: the bisection cannot split it
        return float(np.min(vals))
    order = np.argsort(vals, kind="stable")
    vals, wts = vals[order], wts[order]
    cw = below + np.cumsum(wts)
    i = min(int(np.searchsorted(cw, half, side="left")), vals.size - 1)
    if math.isclose(float(cw[i]), half, rel_tol=1e-12, abs_tol=0.0):
        rest = [x[j] for (x, _), j in zip(groups, hi_idx, strict=True) if j < x.size]
        following = vals[i + 1] if i + 1 < vals.size else (min(rest) if rest else vals[i])
        return float((vals[i] + following) / 2.0)
    return float(vals[i])


def _tie_sum(sorted_values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Distinct values of a sorted array and their counts."""
    if sorted_values.size == 0:
        return sorted_values, np.zeros(0)
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    counts = np.diff(np.concatenate([starts, [sorted_values.size]])).astype(np.float64)
    return sorted_values[starts], counts


def _sorted_median(a: FloatArray) -> float:
    h = a.size // 2
    return float(a[h]) if a.size % 2 else float((a[h - 1] + a[h]) / 2.0)


def _tie_terms(tx: tuple[FloatArray, FloatArray], ty: tuple[FloatArray, FloatArray]) -> tuple[float, float]:
    """``sum(t^3 - t)`` over the tie groups of the pooled sample and over those within each side, from each
    side's distinct values and counts (:func:`_tie_sum`)."""
    vx, cx = tx
    vy, cy = ty
    within = float(np.sum(cx**3 - cx) + np.sum(cy**3 - cy))
    pos = np.searchsorted(vx, vy)
    hit = pos < vx.size
    hit[hit] = vx[pos[hit]] == vy[hit]
    a, b = cx[pos[hit]], cy[hit]
    pooled = within + float(np.sum((a + b) ** 3 - (a + b) - (a**3 - a) - (b**3 - b)))
    return pooled, within


def weighted_median(values: npt.ArrayLike, weights: npt.ArrayLike) -> float | None:
    """The median of a weighted sample: the smallest value whose cumulative weight reaches half the total,
    or the mean of it and the next value when the cumulative weight equals half exactly (so equal weights give
    :func:`numpy.median`). None without positive weight."""
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    keep = w > 0
    v, w = v[keep], w[keep]
    if v.size == 0:
        return None
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cw = np.cumsum(w)
    half = cw[-1] / 2.0
    i = int(np.searchsorted(cw, half, side="left"))
    i = min(i, v.size - 1)
    if i + 1 < v.size and math.isclose(float(cw[i]), half, rel_tol=1e-12, abs_tol=0.0):
        return float((v[i] + v[i + 1]) / 2.0)
    return float(v[i])


def standardizing_weights(strata_baseline: IntArray, strata_canary: IntArray, k: int) -> FloatArray:
    """Per baseline value, the weight that gives the baseline the canary's mix over strata:
    ``(canary share of the stratum) / (baseline share of the stratum)`` (0 where the canary has none)."""
    nb = np.bincount(strata_baseline, minlength=k).astype(np.float64)
    nc = np.bincount(strata_canary, minlength=k).astype(np.float64)
    per = np.zeros(k)
    ok = nb > 0
    if nc[ok].sum() == 0 or strata_baseline.size == 0:
        return np.zeros(strata_baseline.size)
    share_c = nc / nc[ok].sum()  # canary strata without baseline values cannot be represented: renormalised
    per[ok] = share_c[ok] / (nb[ok] / nb.sum())
    return np.asarray(per[strata_baseline], dtype=np.float64)


def _cumulative(counts: FloatArray) -> FloatArray:
    out = np.zeros(counts.size + 1)
    np.cumsum(counts, out=out[1:])
    return out


class _StratifiedShift:
    """van Elteren's centred statistic ``T(d) = sum_k w_k (U_k(d) - n_k m_k / 2)`` of the canary shifted down
    by ``d``: ``U_k(d)`` counts the pairs with ``canary - d > baseline`` in stratum k (ties half at ``d = 0``;
    above it, where only the step locations matter, strictly). Non-increasing in ``d``."""

    def __init__(self, xs: list[FloatArray], ys: list[FloatArray], weights: FloatArray,
                 ties: list[tuple[tuple[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]]) -> None:
        self.xs, self.ys = xs, ys
        self.evaluations = 0
        live = [i for i, (x, y) in enumerate(zip(xs, ys, strict=True)) if x.size and y.size]
        self.const = float(sum(weights[i] * xs[i].size * ys[i].size / 2.0 for i in live))
        # Every stratum as its distinct values and counts (tied data, e.g. scores rounded to 3 decimals, has far
        # fewer distinct values than records), laid out in one sorted array: stratum b's values are moved to
        # [b * spacing, b * spacing + range], far enough apart that a shifted query of stratum b only meets
        # stratum b's keys, so one searchsorted evaluates every stratum (offsets cost ~1e-16 x strata x
        # range in rounding). The side with fewer distinct values is the query side.
        both = [np.concatenate([xs[i], ys[i]]) for i in live]
        low = min((float(v[0]) if v.size else 0.0) for v in (xs[i] for i in live)) if live else 0.0
        low = min([low, *(float(ys[i][0]) for i in live)]) if live else 0.0
        high = max((float(v.max()) for v in both), default=0.0)
        self.dmax = (high - low) + 1.0
        spacing = 3.0 * (high - low) + 3.0
        tx = [ties[i][0] for i in live]
        ty = [ties[i][1] for i in live]
        self.query_y = sum(v.size for v, _ in ty) <= sum(v.size for v, _ in tx)
        keys_side, query_side = (tx, ty) if self.query_y else (ty, tx)
        offsets = [b * spacing - low for b in range(len(live))]
        self.keys = np.concatenate([v + o for (v, _), o in zip(keys_side, offsets, strict=True)]) if live \
            else np.zeros(0)
        self.cum = _cumulative(np.concatenate([c for _, c in keys_side])) if live else np.zeros(1)
        starts = np.cumsum([0, *(v.size for v, _ in keys_side)])[:-1] if live else np.zeros(0, np.int64)
        sizes = [float(c.sum()) for _, c in keys_side]
        self.queries = np.concatenate([v + o for (v, _), o in zip(query_side, offsets, strict=True)]) if live \
            else np.zeros(0)
        self.raw_keys = np.concatenate([v for v, _ in keys_side]) if live else np.zeros(0)
        self.raw_queries = np.concatenate([v for v, _ in query_side]) if live else np.zeros(0)
        self.qweight = np.concatenate([c * weights[i] for (_, c), i in zip(query_side, live, strict=True)]) if live \
            else np.zeros(0)
        reps = [v.size for v, _ in query_side]
        self.qstart = np.repeat(np.asarray(starts, dtype=np.int64), reps)
        self.qtotal = np.repeat(np.asarray(sizes, dtype=np.float64), reps)
        self.qsize = np.repeat(np.asarray([v.size for v, _ in keys_side], dtype=np.int64), reps)
        self.cum_start = self.cum[self.qstart]
        self.buffer = np.empty_like(self.queries)

    def at(self, d: float) -> float:
        """``T(d)`` with pairs at exactly ``d`` not counted (right-continuous)."""
        self.evaluations += 1
        d = min(max(d, -self.dmax), self.dmax)  # beyond the data's range T is at its extreme already
        if self.query_y:  # sum_j cy_j #{x < y_j - d}
            idx = np.searchsorted(self.keys, np.subtract(self.queries, d, out=self.buffer), side="left")
            counts = np.subtract(self.cum[idx], self.cum_start, out=self.buffer)
        else:  # sum_i cx_i #{y > x_i + d}
            idx = np.searchsorted(self.keys, np.add(self.queries, d, out=self.buffer), side="right")
            counts = self.qtotal - np.subtract(self.cum[idx], self.cum_start, out=self.buffer)
        return float(np.multiply(self.qweight, counts, out=self.buffer).sum()) - self.const  # no BLAS threads

    def snap(self, a: float, b: float) -> float:
        """The smallest pairwise difference ``y - x`` above ``a`` (where ``T`` steps inside ``(a, b]``), or
        ``b`` when rounding puts it outside."""
        a_c = min(max(a, -self.dmax), self.dmax)
        if self.query_y:  # the largest x < y_j - a in y_j's stratum
            idx = np.searchsorted(self.keys, self.queries - a_c, side="left") - 1
            ok = idx >= self.qstart
            diffs = self.raw_queries[ok] - self.raw_keys[idx[ok]]
        else:  # the smallest y > x_i + a
            idx = np.searchsorted(self.keys, self.queries + a_c, side="right")
            ok = idx < self.qstart + self.qsize
            diffs = self.raw_keys[idx[ok]] - self.raw_queries[ok]
        if not diffs.size:
            return b
        best = float(np.min(diffs))
        return best if a < best <= b else b

    def crossing(self, target: float, strict: bool, guess: float, step: float, xtol: float,
                 slope: float | None = None) -> float:
        """``inf {d : T(d) <= target}`` (``< target`` when ``strict``): bracketed from ``guess`` by doubling
        steps, narrowed by the Illinois variant of regula falsi (a bisection whenever it stalls) to ``xtol``,
        then snapped to the pairwise difference where ``T`` steps. With ``slope`` (an estimate of ``-dT/dd``)
        the first bracket is sized by the linear model: 1.5 times the distance it predicts to the crossing."""

        def g(d: float) -> float:
            return self.at(d) - target

        def past(v: float) -> bool:
            return v < 0 if strict else v <= 0

        step = max(step, 1e-12 * (1.0 + abs(guess)))
        gv = g(guess)
        if slope is not None and slope > 0:
            step = max(1.5 * abs(gv) / slope, xtol, 1e-12 * (1.0 + abs(guess)))
        if past(gv):
            b, gb = guess, gv
            a = guess - step
            ga = g(a)
            for _ in range(200):
                if not past(ga):
                    break
                b, gb = a, ga
                step *= 2
                a = b - step
                ga = g(a)
        else:
            a, ga = guess, gv
            b = guess + step
            gb = g(b)
            for _ in range(200):
                if past(gb):
                    break
                a, ga = b, gb
                step *= 2
                b = a + step
                gb = g(b)
        side = 0
        width = b - a
        bisect = False
        stalls = 0
        for _ in range(200):
            if b - a <= xtol:
                break
            if stalls >= 2:  # stalling on a coarse step (tied data): is the next pairwise difference the one?
                stalls = 0
                jump = self.snap(a, b)
                eps = min(xtol / 2.0, (b - jump) / 2.0)
                if jump < b:
                    probe = jump + eps  # past the rounding of the offsets, short of any further step > xtol/2
                    gp = g(probe)
                    if past(gp):
                        return jump  # T is constant on [a, jump): the crossing is there (within eps)
                    a, ga = probe, gp
                    continue
            c = a + (b - a) / 2.0
            interpolated = False
            if not bisect and ga != gb:
                interp = b - gb * (b - a) / (gb - ga)
                if a < interp < b:
                    c, interpolated = interp, True
            gc = g(c)
            if past(gc):
                b, gb = c, gc
                if side == -1:
                    ga /= 2.0
                side = -1
            else:
                a, ga = c, gc
                if side == 1:
                    gb /= 2.0
                side = 1
            if interpolated and b - a > xtol:
                # close the bracket from the other side: by the secant the crossing is within |g(c)| / slope of c
                secant = (ga - gb) / (b - a)
                reach = 1.5 * abs(gc) / secant + xtol / 2.0 if secant > 0 else (b - a) / 2.0
                q = c - reach if c == b else c + reach
                if a < q < b:
                    gq = g(q)
                    if past(gq):
                        b, gb = q, gq
                    else:
                        a, ga = q, gq
            bisect = (b - a) > width / 2.0  # the last step did not halve the bracket: bisect next
            stalls = stalls + 1 if bisect else 0
            width = b - a
        return self.snap(a, b)


def _stratified_inputs(baseline: Sequence[float] | FloatArray, canary: Sequence[float] | FloatArray,
                       baseline_strata: npt.ArrayLike,
                       canary_strata: npt.ArrayLike, confidence: float
                       ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The two samples (finite floats) and their stratum labels (one int per value), checked."""
    _check_confidence(confidence)
    x = _finite(baseline, "baseline")
    y = _finite(canary, "canary")
    sx = np.asarray(baseline_strata, dtype=np.int64).ravel()
    sy = np.asarray(canary_strata, dtype=np.int64).ravel()
    if sx.size != x.size or sy.size != y.size:
        raise ValueError("each value needs one stratum label")
    return x, y, sx, sy


def van_elteren(baseline: Sequence[float] | FloatArray, canary: Sequence[float] | FloatArray,
                baseline_strata: npt.ArrayLike, canary_strata: npt.ArrayLike, *, confidence: float = 0.95,
                min_stratum: int = MIN_STRATUM) -> UnpairedResult:
    """van Elteren's stratified Wilcoxon rank-sum test (two-sided), a stratified shift and its interval.

    Strata (hours) are first merged by :func:`merge_strata` (``min_stratum`` values per side; 1: none). In
    stratum k
    with n_k baseline and m_k canary values (N_k = n_k + m_k) the canary's rank sum W_k (mid-ranks) has mean
    ``m_k (N_k + 1) / 2`` and variance ``n_k m_k / 12 ((N_k + 1) - sum(t^3 - t) / (N_k (N_k - 1)))`` (the tie
    correction of the stratum); ``T = sum_k (W_k - E W_k) / (N_k + 1)``, ``z = T / sqrt(sum_k V_k / (N_k + 1)^2)``
    and ``p = 2 (1 - Phi(|z|))`` (no continuity correction: with one stratum, exactly
    ``scipy.stats.mannwhitneyu(method="asymptotic", use_continuity=False)``). ``statistic`` is z (> 0: canary
    higher).

    ``effect`` is the shift d that makes the statistic of ``canary - d`` against the baseline zero (the
    Hodges-Lehmann principle, stratified: with one stratum the median of the pairwise differences) and the
    interval the shifts the test does not reject at ``confidence`` (``|T(d)| <= z_(1-a/2) sigma``, sigma with
    the ties within each side, which persist under any shift): the interval excludes 0 exactly when the test
    rejects, up to the two variances' tie terms. Both are located by bracketing and regula falsi to
    :data:`SHIFT_XTOL` standard errors, then snapped to the pairwise difference where the statistic steps, so
    with one stratum they are the exact order statistics (the interval's within one rank of
    :func:`mann_whitney`'s normal-approximation bounds); each evaluation is ``O(min(n, m) log max(n, m))``.

    ``canary_value`` is the canary's median; ``baseline_value`` the baseline's median re-weighted to the
    canary's mix over strata (:func:`standardizing_weights`), so the two describe the same hours."""
    x, y, sx, sy = _stratified_inputs(baseline, canary, baseline_strata, canary_strata, confidence)
    n, m = x.size, y.size
    if n == 0 or m == 0:
        return UnpairedResult("van-elteren", n, m, None, None, None, None, None,
                              float(np.median(x)) if n else None, float(np.median(y)) if m else None, confidence)
    st = merge_strata(sx, sy, min_size=min_stratum)
    k = st.strata
    xs = _sorted_groups(x, st.baseline, k)
    ys = _sorted_groups(y, st.canary, k)
    w = np.zeros(k)
    var0 = var_ci = t0 = 0.0
    ties = [(_tie_sum(xk), _tie_sum(yk)) for xk, yk in zip(xs, ys, strict=True)]
    for i, (xk, yk) in enumerate(zip(xs, ys, strict=True)):
        nk, mk = xk.size, yk.size
        if not nk or not mk:
            continue
        big = nk + mk
        w[i] = 1.0 / (big + 1)
        u = (np.searchsorted(xk, yk, side="left").sum() + np.searchsorted(xk, yk, side="right").sum()) / 2.0
        t0 += w[i] * (float(u) - nk * mk / 2.0)
        pooled, within = _tie_terms(*ties[i])
        var0 += w[i] ** 2 * nk * mk / 12.0 * ((big + 1) - pooled / (big * (big - 1)))
        var_ci += w[i] ** 2 * nk * mk / 12.0 * ((big + 1) - within / (big * (big - 1)))
    nb_k = np.array([xk.size for xk in xs], dtype=np.float64)
    nc_k = np.array([yk.size if xk.size else 0 for xk, yk in zip(xs, ys, strict=True)], dtype=np.float64)
    per_value = np.divide(nc_k / nc_k.sum() if nc_k.sum() else nc_k, nb_k / n, out=np.zeros(k), where=nb_k > 0)
    base_v = _weighted_median_sorted(xs, per_value)
    can_v = float(np.median(y))
    if var0 > 0:
        z = t0 / math.sqrt(var0)
        p = float(special.erfc(abs(z) / math.sqrt(2.0)))
    else:  # every value of every stratum tied: no evidence of a shift
        z, p = 0.0, 1.0
    shift = _StratifiedShift(xs, ys, w, ties)
    # a first guess of the shift and its standard error: the canary-weighted per-stratum median differences
    # and a robust pooled spread
    med_d = [_sorted_median(yk) - _sorted_median(xk) if xk.size and yk.size else 0.0 for xk, yk in zip(xs, ys,
                                                                                                      strict=True)]
    counts = np.array([yk.size if xk.size else 0 for xk, yk in zip(xs, ys, strict=True)], dtype=np.float64)
    guess = float(np.dot(counts, med_d) / counts.sum()) if counts.sum() else 0.0
    q75, q25 = np.percentile(np.concatenate([x, y]), [75, 25])
    spread = float(q75 - q25) / 1.349 or float(np.std(np.concatenate([x, y]))) or 1.0
    se = spread * math.sqrt(1.0 / n + 1.0 / m)
    xtol = SHIFT_XTOL * se
    first = shift.at(guess)  # a secant over one guessed standard error gives the slope of T
    second = shift.at(guess + se)
    lo_mid = shift.crossing(0.0, False, guess, se, xtol, (first - second) / se if first > second else None)
    hi_mid = shift.crossing(0.0, True, lo_mid, xtol, xtol)
    hl = (lo_mid + hi_mid) / 2.0
    zq = float(special.ndtri(1.0 - (1.0 - confidence) / 2.0))
    sigma = math.sqrt(var_ci)
    bounds = []
    for sign, strict in ((-1.0, False), (1.0, True)):
        # T is close to linear around the estimate in large samples: its slope over one guessed standard
        # error places each bound, and a bracket a tenth of that distance wide usually holds it
        probe = hl + sign * zq * se
        rise = -sign * shift.at(probe)
        slope = rise / (zq * se) if rise > 0 else None
        guess = hl + sign * zq * sigma / slope if slope else probe
        bounds.append(shift.crossing(-sign * zq * sigma, strict, guess, max(abs(guess - hl) / 10.0, xtol), xtol,
                                     slope))
    low, high = bounds
    merged = (f", {st.small} {'one-sided' if min_stratum <= 1 else 'small merged'}") if st.small else ""
    how = (f"van Elteren over {k} strata of {st.labels}{merged}; shift by inversion "
           f"({shift.evaluations} evaluations)")
    return UnpairedResult("van-elteren", n, m, z, min(1.0, p), hl, low, high, base_v, can_v, confidence, how,
                          strata=k, labels=st.labels, merged=st.small)


def cochran_mantel_haenszel(k_base: npt.ArrayLike, n_base: npt.ArrayLike, k_canary: npt.ArrayLike,
                            n_canary: npt.ArrayLike, *, correction: bool = True) -> tuple[float, float]:
    """The Cochran-Mantel-Haenszel test of K 2x2 tables (canary / baseline x event / no event), two-sided:
    ``S = sum_k (a_k - E a_k)`` with ``a_k`` the canary's events, ``E a_k = m_k t_k / N_k`` and the
    hypergeometric variance ``V_k = n_k m_k t_k (N_k - t_k) / (N_k^2 (N_k - 1))``; the statistic
    ``(|S| - 1/2)^2 / sum V_k`` (``S^2 / sum V_k`` without ``correction``, or when ``|S| < 1/2``: R's
    ``mantelhaen.test``) against chi-square with 1 degree of freedom. Tables with an empty side add nothing.
    Returns ``(statistic, p)``; ``(0, 1)`` when every table has zero variance (one constant value)."""
    kb = np.asarray(k_base, dtype=np.float64).ravel()
    nb = np.asarray(n_base, dtype=np.float64).ravel()
    kc = np.asarray(k_canary, dtype=np.float64).ravel()
    nc = np.asarray(n_canary, dtype=np.float64).ravel()
    if not (kb.size == nb.size == kc.size == nc.size):
        raise ValueError("the four count arrays need one entry per table")
    if np.any((kb < 0) | (kb > nb) | (kc < 0) | (kc > nc)):
        raise ValueError("need 0 <= k <= n in every table")
    ok = (nb > 0) & (nc > 0) & (nb + nc >= 2)
    kb, nb, kc, nc = kb[ok], nb[ok], kc[ok], nc[ok]
    big = nb + nc
    t = kb + kc
    s = float(np.sum(kc - nc * t / big))
    v = float(np.sum(nb * nc * t * (big - t) / (big**2 * (big - 1))))
    if v <= 0:
        return 0.0, 1.0
    yates = 0.5 if correction and abs(s) >= 0.5 else 0.0
    stat = (abs(s) - yates) ** 2 / v
    return stat, float(sps.chi2.sf(stat, 1))


def _wilson_float(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson's score interval at a (possibly fractional, effective) size ``n``."""
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    return (0.0 if p <= 0 else max(0.0, centre - half)), (1.0 if p >= 1 else min(1.0, centre + half))


def stratified_proportions(baseline: Sequence[float] | FloatArray, canary: Sequence[float] | FloatArray,
                           baseline_strata: npt.ArrayLike, canary_strata: npt.ArrayLike, *,
                           confidence: float = 0.95, min_stratum: int = MIN_STRATUM,
                           correction: bool = True) -> UnpairedResult:
    """Two rates compared within strata: 0/1 values and their stratum labels, strata merged by
    :func:`merge_strata`, p from :func:`cochran_mantel_haenszel`. ``canary_value`` is the canary's rate,
    ``baseline_value`` the baseline's rate re-weighted to the canary's mix over strata (direct
    standardisation: ``sum_k (m_k / M) k_bk / n_bk``), ``effect`` their difference and its interval Newcombe's
    hybrid score interval (method 10) from the canary's Wilson interval and the standardised rate's Wilson
    interval at its effective (Kish) size ``1 / sum_k (m_k / M)^2 / n_bk`` — with one stratum exactly
    :func:`newcombe_interval`. ``statistic`` is the chi-square."""
    x, y, sx, sy = _stratified_inputs(baseline, canary, baseline_strata, canary_strata, confidence)
    if np.any((x != 0) & (x != 1)) or np.any((y != 0) & (y != 1)):
        raise ValueError("rates need 0/1 values")
    n, m = x.size, y.size
    if n == 0 or m == 0:
        return UnpairedResult("cmh", n, m, None, None, None, None, None, float(x.mean()) if n else None,
                              float(y.mean()) if m else None, confidence)
    st = merge_strata(sx, sy, min_size=min_stratum)
    k = st.strata
    nb = np.bincount(st.baseline, minlength=k).astype(np.float64)
    nc = np.bincount(st.canary, minlength=k).astype(np.float64)
    kb = np.bincount(st.baseline, weights=x, minlength=k)
    kc = np.bincount(st.canary, weights=y, minlength=k)
    stat, p = cochran_mantel_haenszel(kb, nb, kc, nc, correction=correction)
    both = (nb > 0) & (nc > 0)
    v = nc[both] / nc[both].sum()
    # sum_k m_k rate_k / M, summed exactly so that a constant rate (all 0, all 1) stays exactly that
    rb = min(1.0, max(0.0, math.fsum((nc[both] * (kb[both] / nb[both])).tolist()) / float(nc[both].sum())))
    rc = float(kc[both].sum() / nc[both].sum())
    n_eff = 1.0 / float(np.sum(v**2 / nb[both]))
    zq = float(special.ndtri(1.0 - (1.0 - confidence) / 2.0))
    lc, uc = _wilson_float(rc, float(nc[both].sum()), zq)
    lb, ub = _wilson_float(rb, n_eff, zq)
    d = rc - rb
    low = max(-1.0, d - math.sqrt((rc - lc) ** 2 + (ub - rb) ** 2))
    high = min(1.0, d + math.sqrt((uc - rc) ** 2 + (rb - lb) ** 2))
    merged = (f", {st.small} {'one-sided' if min_stratum <= 1 else 'small merged'}") if st.small else ""
    return UnpairedResult("cmh", n, m, stat, min(1.0, p), d, low, high, rb, rc, confidence,
                          f"CMH{' (continuity-corrected)' if correction else ''} over {k} strata of "
                          f"{st.labels}{merged}; ci Newcombe hybrid, baseline at effective n {n_eff:.0f}",
                          strata=k, labels=st.labels, merged=st.small)
