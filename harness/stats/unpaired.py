"""Unpaired two-sample statistics for the canary verdict (``harness canary``): baseline records against canary
records, different requests on each side, so nothing pairs them.

* :func:`mann_whitney` — numeric signals (retrieval scores, latency, groundedness): the two-sided
  Mann-Whitney U p-value of :func:`scipy.stats.mannwhitneyu` (``method="auto"``: exact for small samples
  without ties, else the normal approximation with the tie correction), the Hodges-Lehmann shift (the median
  of every pairwise difference ``canary_j - baseline_i``) and its distribution-free confidence interval: the
  order statistics of the pairwise differences at the Mann-Whitney critical values (Hollander & Wolfe,
  *Nonparametric Statistical Methods*, 3rd ed., section 4.3; what R's ``wilcox.test(conf.int=TRUE)`` reports),
  with the exact null distribution of U for small samples without ties and the normal approximation (its
  variance tie-corrected) otherwise.
* :func:`two_proportions` — 0/1 signals (format valid, errors, timeouts): Fisher's exact two-sided p-value
  (:func:`scipy.stats.fisher_exact`, at every size: it is exact and takes under a millisecond even for
  400,000 records, so no large-sample z-test is needed), the difference of rates and Newcombe's (1998)
  hybrid score interval built from the two Wilson intervals (his method 10).
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

    test: Literal["mann-whitney", "fisher"]
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
    """How many differences ``y_j - x_i`` are ``<= t`` (x, y sorted)."""
    return int(np.searchsorted(y, x + t, side="right").sum())


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
             tolerance: float, bad: BadDirection, alpha: float = 0.05, min_records: int = 2) -> Classified:
    """``high`` / ``low`` when the adjusted p-value is below ``alpha`` and the relative move
    ``|effect| / |baseline_value|`` exceeds ``tolerance``; ``pass`` otherwise; ``nodata`` when either side
    has fewer than ``min_records`` values or no p-value. ``failed`` when the label is ``bad``'s direction
    (``increase`` -> high, ``decrease`` -> low, ``either`` -> both) or nodata.

    Kayenta (NetflixACAJudge / MannWhitneyClassifier) classifies a metric high when the lower bound of the
    Hodges-Lehmann interval (98%) exceeds a quarter of the estimate's size, with no correction across metrics,
    after removing outliers (IQR x 3), and only in the configured direction. Here significance is the
    corrected p-value (the family is every signal x segment), the effect-size rule is the signal's
    ``tolerance`` relative to the baseline's value (Kayenta's later ``allowedIncrease``/``allowedDecrease``
    effect sizes, as a share), nothing is dropped as an outlier (the rank test is robust), and a move in the
    good direction is labelled too (shown, never failed)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    relative = relative_move(result.effect, baseline_value)
    if (result.n_baseline < min_records or result.n_canary < min_records or result.p_value is None
            or alpha_adjusted_p is None or result.effect is None):
        return Classified("nodata", True, relative)
    label: Label = "pass"
    if alpha_adjusted_p < alpha and relative is not None and abs(relative) > tolerance and result.effect != 0:
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
