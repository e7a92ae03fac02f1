"""Paired statistics over aligned per-case values: the numbers behind ``harness diff``.

Every function takes two aligned float arrays, ``base[i]`` and ``head[i]`` for the same golden case
``i``, and works on the per-case differences ``d[i] = head[i] - base[i]`` (DESIGN principle 2: per-case
scores first). The caller aligns by case id and drops pairs where either side is unscored, reporting
how many; NaN or infinite values here are an error, never silently skipped.

Conventions shared by all functions:

* The estimand is ``mean(head - base)``; ``alternative="greater"`` means "head is larger than base",
  whatever the metric's direction (the direction is applied only in :func:`compare_paired`).
* Every random procedure takes ``seed`` and draws from ``numpy.random.default_rng(seed)``; the same
  seed gives the same answer on any machine with the same numpy.
* Resampling is vectorized: an ``(rows, n)`` matrix of indices (bootstrap) or signs (permutation) per
  chunk of at most ~2M elements, never a Python loop per resample.
* Undefined results (no pairs, zero variance, zero base mean) are ``None``, never NaN, and produce no
  warnings.
* Large samples: above :data:`LARGE_N` pairs (``n > LARGE_N``) the resampling procedures are replaced by
  their own large-sample limits, which cost O(n) instead of O(n x resamples): the sign-flip test by its
  normal approximation (exact null mean 0 and variance ``sum(d^2)/n^2``), the bootstrap CI of the mean
  by the normal interval with the bootstrap distribution's exact variance, the bootstrap CI of the
  median by the order-statistic interval, the bootstrap test by the normal tail of its shifted null,
  Wilcoxon by scipy's normal approximation. The equal-magnitude (McNemar) sign-flip path stays exact
  at any ``n``. At or below ``LARGE_N`` every result is bit for bit what resampling gives. Each result
  records what computed it (``PairedTestResult.method``, ``BootstrapCI.computed_by``,
  ``PairedComparison.test_method``/``ci_computed_by``); every function takes ``large_n`` to move the
  switch (``0``: always the limit; ``sys.maxsize``: always resample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sps

Alternative = Literal["two-sided", "less", "greater"]
Statistic = Literal["mean", "median"]
CIMethod = Literal["percentile", "bca"]
ZeroMethod = Literal["wilcox", "pratt", "zsplit"]
TestName = Literal["permutation", "wilcoxon", "bootstrap"]
Direction = Literal["improved", "regressed", "unchanged"]

FloatArray = npt.NDArray[np.float64]

_ALTERNATIVES = ("two-sided", "less", "greater")
_CHUNK_ELEMENTS = 1 << 21
# scipy.stats.permutation_test's relative tolerance for "numerically equal to the observed statistic".
_REL_TOL = 100 * float(np.finfo(np.float64).eps)

LARGE_N = 20_000
"""Pairs above which resampling gives way to the large-sample limit (see the module docstring).

Chosen by measurement (2 shared cores, load ~7, numpy default_rng, 5,000 resamples = the diff's
default): at 20,000 pairs a sign-flip test took 0.88 s and a bootstrap CI 1.18 s (10,000 pairs: 0.26 s
and 0.62 s; 100,000: 6.3 s and 10.2 s), and a diff test in the corrected family draws ~24,000
permutations on top. Above it, the limits are more accurate than the resampling they replace: the
sign-flip null is symmetric given ``|d|``, so its normal approximation errs by O(1/n) (about 1e-5
relative at 20,000 pairs), while 24,000 random sign flips estimate a p near 1e-3 with ~20% relative
Monte Carlo error.
"""


# --------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class BootstrapCI:
    """A bootstrap confidence interval for a statistic of the paired differences.

    ``low``/``high`` are ``None`` when there are no pairs. ``n_resamples`` is the number of bootstrap
    replicates drawn (0 when the interval is degenerate and needed none).
    """

    estimate: float | None
    low: float | None
    high: float | None
    confidence: float
    method: CIMethod
    stat: Statistic
    n: int
    n_resamples: int
    computed_by: str = "bootstrap"
    """What computed the interval: ``"bootstrap-percentile"``/``"bootstrap-bca"`` (resampled),
    ``"normal"`` (the mean above :data:`LARGE_N` pairs), ``"order-statistics"`` (the median above
    :data:`LARGE_N`), ``"point"`` (constant differences) or ``"none"`` (no pairs)."""


@dataclass(frozen=True)
class PairedTestResult:
    """A paired significance test of ``head - base``.

    ``statistic`` is the observed test statistic (the mean difference for permutation and bootstrap
    tests). ``method`` names the exact variant: ``"permutation-exact"``, ``"permutation-random"``,
    ``"permutation-normal"`` (the sign-flip test's normal approximation above :data:`LARGE_N` pairs),
    ``"bootstrap"``, ``"bootstrap-normal"``. ``n_resamples`` is the size of the null distribution used
    (``2**n`` for an exact permutation test, 0 for analytic tests and large-sample limits).
    ``p_value`` is ``None`` when there are no pairs.
    """

    statistic: float | None
    p_value: float | None
    alternative: Alternative
    method: str
    n: int
    n_resamples: int


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test of ``head - base`` with its rank sums and effect size.

    ``r_plus``/``r_minus`` are the rank sums of positive/negative differences under ``zero_method``;
    ``statistic`` is scipy's (``min(r_plus, r_minus)`` two-sided, ``r_plus`` one-sided).
    ``rank_biserial`` is Kerby's (2014) simple-difference correlation ``(R+ - R-) / (R+ + R-)``.
    """

    statistic: float | None
    p_value: float | None
    alternative: Alternative
    zero_method: ZeroMethod
    n: int
    n_zero: int
    r_plus: float
    r_minus: float
    rank_biserial: float | None
    method: str = "auto"
    """scipy's ``method``: ``"auto"`` (scipy chooses), ``"approx"`` above :data:`LARGE_N` pairs."""


@dataclass(frozen=True)
class WinTieLoss:
    """Per-case outcome counts, judged in the metric's better direction."""

    wins: int
    ties: int
    losses: int


@dataclass(frozen=True)
class EffectSizes:
    """Effect sizes of ``head - base``; ``None`` where undefined."""

    mean_diff: float | None
    rel_delta: float | None
    cohens_dz: float | None
    rank_biserial: float | None


@dataclass(frozen=True)
class PairedComparison:
    """Everything ``harness diff`` reports for one metric (or metric x segment).

    ``direction`` is judged by the sign of ``delta`` and ``greater_is_better`` only: a change can be
    "regressed" and not significant. Significance is ``p_value`` (uncorrected; correct across metrics
    and segments with :func:`harness.stats.holm`). ``delta`` is ``mean(head - base)``; ``rel_delta`` is
    ``delta / |base_mean|`` (same sign as ``delta``; ``None`` when ``base_mean`` is 0). The CI is a
    bootstrap interval of ``delta``.
    """

    n: int
    base_mean: float | None
    head_mean: float | None
    delta: float | None
    rel_delta: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    ci_method: CIMethod
    p_value: float | None
    test: TestName
    alternative: Alternative
    wins: int
    ties: int
    losses: int
    cohens_dz: float | None
    rank_biserial: float | None
    direction: Direction | None
    greater_is_better: bool
    n_resamples: int
    seed: int
    test_method: str = ""
    """What computed ``p_value`` (``PairedTestResult.method``, or ``"wilcoxon-auto"``/``"wilcoxon-approx"``)."""
    ci_computed_by: str = ""
    """What computed the CI (:attr:`BootstrapCI.computed_by`)."""


# --------------------------------------------------------------------------------------------------
# validation helpers


def as_paired(base: npt.ArrayLike, head: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate and convert aligned per-case values to two 1-D float64 arrays (copies)."""
    b = np.array(base, dtype=np.float64, copy=True)
    h = np.array(head, dtype=np.float64, copy=True)
    if b.ndim != 1 or h.ndim != 1:
        raise ValueError(f"base and head must be 1-D arrays of per-case values, got shapes {b.shape} and {h.shape}")
    if b.shape != h.shape:
        raise ValueError(
            f"base and head must be aligned case by case: got {b.size} and {h.size} values; "
            "align by case id and drop unscored pairs first"
        )
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(h))):
        raise ValueError("base and head must be finite: drop unscored (None/NaN) pairs before calling, and count them")
    return b, h


def _check_alternative(alternative: str) -> None:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")


def _check_resamples(n_resamples: int) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _chunks(total: int, width: int) -> Iterator[tuple[int, int]]:
    """(start, rows) blocks of a ``(total, width)`` matrix with at most ~2M elements each."""
    rows = max(1, _CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, total, rows):
        yield start, min(rows, total - start)


def _stat_fn(stat: str) -> Callable[..., npt.NDArray[np.float64]]:
    if stat == "mean":
        return np.mean
    if stat == "median":
        return np.median
    raise ValueError(f"stat must be 'mean' or 'median', got {stat!r}")


def _is_large(n: int, large_n: int | None) -> bool:
    """Whether ``n`` pairs take the large-sample limit: ``n > large_n`` (:data:`LARGE_N` when ``None``)."""
    limit = LARGE_N if large_n is None else large_n
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 0:
        raise ValueError(f"large_n must be a non-negative integer or None, got {large_n!r}")
    return n > int(limit)


def _normal_tails(z: float) -> tuple[float, float]:
    """(P(Z <= z), P(Z >= z)) for a standard normal Z."""
    return float(special.ndtr(z)), float(special.ndtr(-z))


def _pick(p_le: float, p_ge: float, alternative: Alternative) -> float:
    p = {"less": p_le, "greater": p_ge, "two-sided": 2 * min(p_le, p_ge)}[alternative]
    return float(min(max(p, 0.0), 1.0))


# --------------------------------------------------------------------------------------------------
# bootstrap


def bootstrap_distribution(
    base: npt.ArrayLike,
    head: npt.ArrayLike,
    *,
    stat: Statistic = "mean",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> FloatArray:
    """The paired bootstrap distribution of ``stat(head - base)`` (Efron & Tibshirani 1993, ch. 6).

    Cases are resampled with replacement as pairs: replicate ``b`` is ``stat(d[idx_b])`` with
    ``idx_b`` drawn uniformly from ``0..n-1`` (``n`` draws). Returned so callers and tests can reuse
    the exact replicates behind :func:`paired_bootstrap_ci` and :func:`paired_bootstrap_test`.
    """
    b, h = as_paired(base, head)
    _check_resamples(n_resamples)
    fn = _stat_fn(stat)
    return _bootstrap_replicates(h - b, fn, int(n_resamples), np.random.default_rng(seed))


def _bootstrap_replicates(
    d: FloatArray, fn: Callable[..., FloatArray], n_resamples: int, rng: np.random.Generator
) -> FloatArray:
    n = d.size
    if n == 0:
        return np.empty(0, dtype=np.float64)
    out = np.empty(n_resamples, dtype=np.float64)
    for start, rows in _chunks(n_resamples, n):
        idx = rng.integers(0, n, size=(rows, n))
        out[start : start + rows] = fn(d[idx], axis=1)
    return out


def _jackknife(d: FloatArray, fn: Callable[..., FloatArray]) -> FloatArray:
    """Leave-one-out values of ``fn`` over ``d`` (vectorized; closed form for the mean)."""
    n = d.size
    if fn is np.mean:
        return (d.sum() - d) / (n - 1)
    out = np.empty(n, dtype=np.float64)
    cols = np.arange(n - 1)
    for start, rows in _chunks(n, n - 1):
        left_out = np.arange(start, start + rows)[:, None]
        idx = cols[None, :] + (cols[None, :] >= left_out)
        out[start : start + rows] = fn(d[idx], axis=1)
    return out


def _bca_levels(
    d: FloatArray, fn: Callable[..., FloatArray], theta_hat: float, reps: FloatArray, alpha: float
) -> tuple[float, float]:
    """BCa quantile levels (Efron & Tibshirani 1993, eq. 14.9-14.15), computed as scipy does.

    ``z0 = Phi^-1(#{theta* < theta_hat}/B + #{theta* == theta_hat}/(2B))`` (clipped to
    ``[1/(2B), 1 - 1/(2B)]`` so it stays finite), acceleration from the jackknife
    ``a = sum(U^3) / (6 (sum U^2)^1.5)`` with ``U_i = (n-1)(mean(theta_(.)) - theta_(i))`` (0 when
    all jackknife values are equal), and levels ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` for
    ``z = Phi^-1(alpha)`` and ``Phi^-1(1 - alpha)``.
    """
    n_b = reps.size
    frac = int(np.count_nonzero(reps < theta_hat) + np.count_nonzero(reps <= theta_hat)) / (2 * n_b)
    frac = min(max(frac, 1 / (2 * n_b)), 1 - 1 / (2 * n_b))
    z0 = float(special.ndtri(frac))
    jk = _jackknife(d, fn)
    u = (d.size - 1) * (jk.mean() - jk)
    den = float(np.sum(u**2))
    a_hat = float(np.sum(u**3)) / (6.0 * den**1.5) if den > 0 else 0.0
    z_lo = float(special.ndtri(alpha))
    levels = []
    for z in (z_lo, -z_lo):
        num = z0 + z
        levels.append(float(special.ndtr(z0 + num / (1 - a_hat * num))))
    return levels[0], levels[1]


def paired_bootstrap_ci(
    base: npt.ArrayLike,
    head: npt.ArrayLike,
    *,
    stat: Statistic = "mean",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    method: CIMethod = "percentile",
    large_n: int | None = None,
) -> BootstrapCI:
    """Two-sided bootstrap CI of ``stat(head - base)`` over resampled case pairs.

    ``method="percentile"``: the ``alpha/2`` and ``1 - alpha/2`` quantiles (numpy's linear
    interpolation) of the bootstrap replicates (Efron & Tibshirani 1993, ch. 13).
    ``method="bca"``: bias-corrected and accelerated quantile levels (ch. 14; see :func:`_bca_levels`).
    Both match ``scipy.stats.bootstrap(..., paired=True)`` given the same replicates.

    Degenerate inputs: no pairs gives ``low = high = None``; a single pair or constant differences
    give the point interval ``[d, d]`` (every resample equals the estimate).

    Above ``large_n`` pairs (default :data:`LARGE_N`) the bootstrap is replaced by its large-sample
    limit, for either ``method`` (BCa's bias and acceleration corrections vanish as n grows):

    * mean: the normal interval ``mean(d) +- z * sd(d) / sqrt(n)`` with ``sd`` the plug-in
      (``ddof=0``) deviation, i.e. the exact mean and variance of the bootstrap distribution of the
      mean, and ``z = Phi^-1(1 - alpha/2)`` (``computed_by="normal"``);
    * median: the distribution-free order-statistic interval ``[d_(l), d_(u)]`` with
      ``l = floor(n/2 - z sqrt(n)/2)``, ``u = ceil(n/2 + z sqrt(n)/2)`` (1-based, clipped to ``1..n``): the
      normal limit of the binomial count of differences below the median, which the bootstrap
      distribution of the sample median converges to (``computed_by="order-statistics"``).
    """
    b, h = as_paired(base, head)
    _check_resamples(n_resamples)
    _check_confidence(confidence)
    if method not in ("percentile", "bca"):
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    fn = _stat_fn(stat)
    d = h - b
    return _ci_from(d, fn, stat, method, confidence, int(n_resamples), seed, large_n)


def _ci_from(
    d: FloatArray, fn: Callable[..., FloatArray], stat: Statistic, method: CIMethod, confidence: float,
    n_resamples: int, seed: int, large_n: int | None = None,
) -> BootstrapCI:
    n = d.size
    large = _is_large(n, large_n)
    if n == 0:
        return BootstrapCI(None, None, None, confidence, method, stat, 0, 0, "none")
    theta_hat = float(fn(d))
    if n == 1 or np.all(d == d[0]):
        return BootstrapCI(theta_hat, theta_hat, theta_hat, confidence, method, stat, n, 0, "point")
    if large:
        from harness.stats.intervals import median_order_statistic_interval, normal_interval

        if stat == "mean":
            lo_n, hi_n = normal_interval(theta_hat, float(np.std(d)) / math.sqrt(n), confidence)
            return BootstrapCI(theta_hat, lo_n, hi_n, confidence, method, stat, n, 0, "normal")
        lo_o, hi_o = median_order_statistic_interval(np.sort(d), confidence)
        return BootstrapCI(theta_hat, lo_o, hi_o, confidence, method, stat, n, 0, "order-statistics")
    reps = _bootstrap_replicates(d, fn, n_resamples, np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    lo_level, hi_level = (alpha, 1 - alpha) if method == "percentile" else _bca_levels(d, fn, theta_hat, reps, alpha)
    lo, hi = np.quantile(reps, [lo_level, hi_level])
    return BootstrapCI(theta_hat, float(lo), float(hi), confidence, method, stat, n, n_resamples, f"bootstrap-{method}")


def _bootstrap_pvalue(theta_hat: float, reps: FloatArray, alternative: Alternative) -> float:
    """Shifted-null bootstrap p-value (Efron & Tibshirani 1993, sec. 16.4), add-one corrected.

    Translating the differences to mean zero and resampling gives replicates ``theta* - theta_hat``,
    so the null distribution is the bootstrap distribution recentred on 0.
    """
    null = reps - theta_hat
    gamma = abs(_REL_TOL * theta_hat)
    p_ge = (np.count_nonzero(null >= theta_hat - gamma) + 1) / (reps.size + 1)
    p_le = (np.count_nonzero(null <= theta_hat + gamma) + 1) / (reps.size + 1)
    if alternative == "greater":
        return float(p_ge)
    if alternative == "less":
        return float(p_le)
    abs_null = np.abs(null)
    return float(min(1.0, (np.count_nonzero(abs_null >= abs(theta_hat) - gamma) + 1) / (reps.size + 1)))


def paired_bootstrap_test(
    base: npt.ArrayLike,
    head: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    alternative: Alternative = "two-sided",
    large_n: int | None = None,
) -> PairedTestResult:
    """Bootstrap test of ``mean(head - base) = 0`` (Efron & Tibshirani 1993, sec. 16.4).

    p-value = ``(1 + #{|theta* - theta_hat| >= |theta_hat|}) / (B + 1)`` two-sided (one-sided:
    ``theta* - theta_hat >= theta_hat`` for ``greater``, ``<=`` for ``less``), using the same
    replicates as :func:`paired_bootstrap_ci` with the same seed. Constant differences give the
    degenerate null at 0: p = 1 if the mean difference is 0, else the smallest p-value ``1/(B+1)``.
    Fewer than two pairs give ``p_value=None``: one pair says nothing about sampling variability.

    Above ``large_n`` pairs (default :data:`LARGE_N`) the shifted null is replaced by its normal limit
    ``N(0, sd(d)^2 / n)`` (plug-in ``sd``, the bootstrap distribution's exact variance):
    ``z = mean(d) / (sd(d) / sqrt(n))``, p from the normal tails (``method="bootstrap-normal"``);
    constant differences then give p = 1 at mean 0, else 0 (a degenerate null).
    """
    b, h = as_paired(base, head)
    _check_resamples(n_resamples)
    _check_alternative(alternative)
    return _bootstrap_test(h - b, int(n_resamples), seed, alternative, large_n)


def _bootstrap_test(
    d: FloatArray, n_resamples: int, seed: int, alternative: Alternative, large_n: int | None
) -> PairedTestResult:
    """:func:`paired_bootstrap_test` on validated differences ``d``."""
    n = d.size
    if n < 2:
        return PairedTestResult(float(d.mean()) if n else None, None, alternative, "bootstrap", n, 0)
    theta_hat = float(d.mean())
    if _is_large(n, large_n):
        se = float(np.std(d)) / math.sqrt(n)
        if se == 0:
            p0 = 1.0 if theta_hat == 0 else 0.0
            return PairedTestResult(theta_hat, p0, alternative, "bootstrap-normal", n, 0)
        p_le, p_ge = _normal_tails(theta_hat / se)
        return PairedTestResult(theta_hat, _pick(p_le, p_ge, alternative), alternative, "bootstrap-normal", n, 0)
    reps = _bootstrap_replicates(d, np.mean, int(n_resamples), np.random.default_rng(seed))
    return PairedTestResult(theta_hat, _bootstrap_pvalue(theta_hat, reps, alternative), alternative, "bootstrap", n,
                            int(n_resamples))


# --------------------------------------------------------------------------------------------------
# permutation (sign-flip) test


def _sign_flip_null(d: FloatArray, total: int, exact: bool, rng: np.random.Generator) -> Iterator[FloatArray]:
    """Chunks of the sign-flip null distribution ``mean(s * d)``.

    Exact: sign vector ``c`` flips case ``i`` iff bit ``i`` of ``c`` is set, for ``c = 0..2**n - 1``.
    Random: each case is flipped by one independent fair random bit. The bits come as bytes, one byte
    per block of 8 cases, and a 256-entry table of each block's flipped partial sums turns a resample
    into ``n/8`` lookups: ``mean(s * d) = (sum(d) - 2 * sum(flipped d)) / n``.
    """
    n = d.size
    if exact:
        bit = np.arange(n, dtype=np.int64)
        for start, rows in _chunks(total, n):
            codes = np.arange(start, start + rows, dtype=np.int64)[:, None]
            yield ((1.0 - 2.0 * ((codes >> bit) & 1)) * d).mean(axis=1)
        return
    n_blocks = (n + 7) // 8
    blocks = np.zeros(n_blocks * 8, dtype=np.float64)
    blocks[:n] = d
    byte_bits = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.float64)
    table = blocks.reshape(n_blocks, 8) @ byte_bits.T
    block_ids = np.arange(n_blocks)
    total_sum = float(d.sum())
    for _, rows in _chunks(total, n_blocks):
        codes = rng.integers(0, 256, size=(rows, n_blocks), dtype=np.uint8)
        flipped = table[block_ids, codes].sum(axis=1)
        yield (total_sum - 2.0 * flipped) / n


def _equal_magnitude_test(d: FloatArray, observed: float, alternative: Alternative) -> PairedTestResult:
    """The sign-flip test when every nonzero difference has the same size (a 0/1 metric: the discordant
    pairs): the null's sum is ``|d| (2K - m)`` with ``K ~ Binomial(m, 1/2)`` over the ``m`` nonzero
    differences, so the enumeration of all ``2**n`` sign vectors is the binomial law, computed exactly at
    any ``n``. This is the exact McNemar test (``scipy.stats.binomtest(k_pos, m)``)."""
    from scipy.stats import binom

    m = int(np.count_nonzero(d))
    k = int(np.count_nonzero(d > 0))
    p_le = float(binom.cdf(k, m, 0.5))
    p_ge = float(binom.sf(k - 1, m, 0.5))
    p = {"less": p_le, "greater": p_ge, "two-sided": 2 * min(p_le, p_ge)}[alternative]
    return PairedTestResult(observed, float(min(max(p, 0.0), 1.0)), alternative, "permutation-exact", int(d.size), 0)


def _sign_flip_normal(d: FloatArray, observed: float, alternative: Alternative) -> PairedTestResult:
    """The sign-flip test's normal approximation: ``z = sum(d) / sqrt(sum(d^2))`` (all-zero d: p = 1)."""
    q = float(np.dot(d, d))
    if q == 0:
        return PairedTestResult(observed, 1.0, alternative, "permutation-normal", int(d.size), 0)
    p_le, p_ge = _normal_tails(float(d.sum()) / math.sqrt(q))
    return PairedTestResult(observed, _pick(p_le, p_ge, alternative), alternative, "permutation-normal", int(d.size), 0)


def paired_permutation_test(
    base: npt.ArrayLike,
    head: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    alternative: Alternative = "two-sided",
    large_n: int | None = None,
) -> PairedTestResult:
    """Paired permutation test of ``mean(head - base)`` by random sign flips (Fisher 1935).

    Under H0 (exchangeable pairs) each difference is equally likely to have either sign, so the
    null distribution is ``mean(s * d)`` over sign vectors ``s``. Semantics of
    ``scipy.stats.permutation_test(permutation_type="samples")`` with statistic ``mean(x - y)``:

    * exact: when ``2**n <= n_resamples`` all ``2**n`` sign vectors are enumerated and
      ``p = #{null >= observed} / 2**n`` (no correction);
    * random: otherwise ``n_resamples`` sign vectors of independent fair signs and
      ``p = (#{...} + 1) / (n_resamples + 1)`` (the add-one correction of Phipson & Smyth 2010, so p is never 0);
    * "two-sided" is ``min(1, 2 * min(p_less, p_greater))``; comparisons use scipy's relative
      tolerance ``100 * eps * |observed|`` so numerically equal statistics count as ties.

    All-zero differences give p = 1. No pairs gives ``p_value=None``. When every nonzero difference has the
    same size (0/1 metrics) the exact null is binomial and is used at any ``n`` (:func:`_equal_magnitude_test`:
    the exact McNemar test), never resampled.

    Above ``large_n`` pairs (default :data:`LARGE_N`) and with unequal magnitudes, the null is not
    sampled but replaced by its normal limit (``method="permutation-normal"``, ``n_resamples=0``):
    this is the same randomization test, in its large-sample form, not a different test. Given
    ``|d|``, ``sum(s * d)`` over independent fair signs has exact mean 0 and variance ``sum(d^2)``
    (so ``mean(s * d)`` has variance ``sum(d^2) / n^2``), and it is asymptotically normal (Lindeberg:
    no single difference dominates), so ``z = sum(d) / sqrt(sum(d^2))`` and ``p_less = Phi(z)``,
    ``p_greater = Phi(-z)``, two-sided ``min(1, 2 * min(...))``. The null is symmetric, so the error
    is O(1/n), well inside the Monte Carlo error of any feasible number of sign flips.
    """
    b, h = as_paired(base, head)
    _check_resamples(n_resamples)
    _check_alternative(alternative)
    return _permutation_test(h - b, int(n_resamples), seed, alternative, large_n)


def _permutation_test(
    d: FloatArray, n_resamples: int, seed: int, alternative: Alternative, large_n: int | None
) -> PairedTestResult:
    """:func:`paired_permutation_test` on validated differences ``d``."""
    n = d.size
    if n == 0:
        return PairedTestResult(None, None, alternative, "permutation", 0, 0)
    observed = float(d.mean())
    magnitudes = np.abs(d[d != 0])
    if magnitudes.size and np.allclose(magnitudes, magnitudes[0], rtol=1e-12, atol=0.0):
        return _equal_magnitude_test(d, observed, alternative)
    if _is_large(n, large_n):
        return _sign_flip_normal(d, observed, alternative)
    gamma = abs(_REL_TOL * observed)
    exact = n < 63 and 2**n <= n_resamples
    total = 2**n if exact else int(n_resamples)
    count_le = 0
    count_ge = 0
    for null in _sign_flip_null(d, total, exact, np.random.default_rng(seed)):
        count_le += int(np.count_nonzero(null <= observed + gamma))
        count_ge += int(np.count_nonzero(null >= observed - gamma))
    adj = 0 if exact else 1
    p_le = (count_le + adj) / (total + adj)
    p_ge = (count_ge + adj) / (total + adj)
    p = {"less": p_le, "greater": p_ge, "two-sided": 2 * min(p_le, p_ge)}[alternative]
    method = "permutation-exact" if exact else "permutation-random"
    return PairedTestResult(observed, float(min(max(p, 0.0), 1.0)), alternative, method, n, total)


# --------------------------------------------------------------------------------------------------
# Wilcoxon signed-rank


def _rank_sums(d: FloatArray, zero_method: ZeroMethod) -> tuple[float, float]:
    """Signed-rank sums (R+, R-) of ``d`` with zeros treated as scipy's ``zero_method``."""
    zeros = d == 0
    if zero_method == "wilcox":
        nz = d[~zeros]
        if nz.size == 0:
            return 0.0, 0.0
        r = sps.rankdata(np.abs(nz))
        return float(r[nz > 0].sum()), float(r[nz < 0].sum())
    r = sps.rankdata(np.abs(d))
    r_plus = float(r[d > 0].sum())
    r_minus = float(r[d < 0].sum())
    if zero_method == "zsplit":
        half = float(r[zeros].sum()) / 2
        return r_plus + half, r_minus + half
    return r_plus, r_minus


def rank_biserial(base: npt.ArrayLike, head: npt.ArrayLike, *, zero_method: ZeroMethod = "wilcox") -> float | None:
    """Matched-pairs rank-biserial correlation of ``head - base`` (Kerby 2014, simple difference).

    ``r = (R+ - R-) / (R+ + R-)`` with ``R+``/``R-`` the Wilcoxon signed-rank sums of positive and
    negative differences (zeros treated per ``zero_method``, as in :func:`wilcoxon_signed_rank`).
    In ``[-1, 1]``; +1 when head beats base on every changed case. ``None`` when no difference is
    non-zero under ``wilcox``/``pratt`` (or there are no pairs).
    """
    b, h = as_paired(base, head)
    return _rank_biserial(h - b, zero_method)


def _rank_biserial(d: FloatArray, zero_method: ZeroMethod = "wilcox") -> float | None:
    r_plus, r_minus = _rank_sums(d, zero_method)
    total = r_plus + r_minus
    return (r_plus - r_minus) / total if total > 0 else None


def wilcoxon_signed_rank(
    base: npt.ArrayLike,
    head: npt.ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    zero_method: ZeroMethod = "wilcox",
    large_n: int | None = None,
) -> WilcoxonResult:
    """Wilcoxon (1945) signed-rank test of ``head - base``: a thin wrapper over ``scipy.stats.wilcoxon``.

    Zeros (unchanged cases, common in per-case retrieval scores) follow ``zero_method``:
    ``"wilcox"`` (scipy's default) drops them and tests the changed cases only; ``"pratt"`` (Pratt
    1959) ranks them with the rest and then drops their ranks, which is more conservative when many
    cases are unchanged; ``"zsplit"`` gives half of each zero's rank to each side. Tied absolute
    differences get average ranks. scipy's ``method="auto"`` is used: the exact null distribution for
    n <= 50 without ties or zeros, an exact sign-flip enumeration for n <= 13 with ties/zeros, and
    the normal approximation with tie correction otherwise (no continuity correction).

    Above ``large_n`` pairs (default :data:`LARGE_N`) ``method="approx"`` is asked for explicitly: scipy's
    normal approximation with the tie correction and the zero treatment of ``zero_method`` (what
    ``"auto"`` already picks at that size; recorded in ``method``).

    Edge cases return values without warnings: no pairs gives ``p_value=None``; all differences zero
    gives ``statistic=0`` and ``p_value=1.0`` (there is no evidence of any change).
    """
    b, h = as_paired(base, head)
    _check_alternative(alternative)
    if zero_method not in ("wilcox", "pratt", "zsplit"):
        raise ValueError(f"zero_method must be 'wilcox', 'pratt' or 'zsplit', got {zero_method!r}")
    d = h - b
    n = d.size
    scipy_method = "approx" if _is_large(n, large_n) else "auto"
    n_zero = int(np.count_nonzero(d == 0))
    r_plus, r_minus = _rank_sums(d, zero_method)
    total = r_plus + r_minus
    rb = (r_plus - r_minus) / total if total > 0 else None
    if n == 0:
        return WilcoxonResult(None, None, alternative, zero_method, 0, 0, 0.0, 0.0, None, scipy_method)
    if n_zero == n:
        return WilcoxonResult(0.0, 1.0, alternative, zero_method, n, n_zero, r_plus, r_minus, rb, scipy_method)
    res = sps.wilcoxon(d, zero_method=zero_method, alternative=alternative, method=scipy_method)
    p = float(res.pvalue)
    stat = float(res.statistic)
    return WilcoxonResult(
        stat if math.isfinite(stat) else None,
        min(max(p, 0.0), 1.0) if math.isfinite(p) else None,
        alternative, zero_method, n, n_zero, r_plus, r_minus, rb, scipy_method,
    )


# --------------------------------------------------------------------------------------------------
# counts and effect sizes


def win_tie_loss(
    base: npt.ArrayLike, head: npt.ArrayLike, *, greater_is_better: bool, tol: float = 1e-12
) -> WinTieLoss:
    """Count cases where head is better than base, equal within ``tol`` (absolute), or worse.

    "Better" follows ``greater_is_better`` (DESIGN principle 5: never assume the direction).
    """
    b, h = as_paired(base, head)
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    return _win_tie_loss(h - b, greater_is_better, tol)


def _win_tie_loss(d: FloatArray, greater_is_better: bool, tol: float) -> WinTieLoss:
    if not greater_is_better:
        d = -d
    wins = int(np.count_nonzero(d > tol))
    losses = int(np.count_nonzero(d < -tol))
    return WinTieLoss(wins, d.size - wins - losses, losses)


def relative_delta(base_mean: float, head_mean: float) -> float | None:
    """``(head_mean - base_mean) / |base_mean|``: signed like the difference; ``None`` if base is 0."""
    if base_mean == 0:
        return None
    return (head_mean - base_mean) / abs(base_mean)


def cohens_dz(base: npt.ArrayLike, head: npt.ArrayLike) -> float | None:
    """Cohen's d_z for paired data (Cohen 1988; Lakens 2013, eq. 6): ``mean(d) / sd(d, ddof=1)``.

    ``None`` with fewer than two pairs or when the differences are constant (sd = 0).
    """
    b, h = as_paired(base, head)
    return _cohens_dz(h - b)


def _cohens_dz(d: FloatArray) -> float | None:
    if d.size < 2:
        return None
    sd = float(np.std(d, ddof=1))
    if sd == 0:
        return None
    return float(d.mean()) / sd


def effect_sizes(base: npt.ArrayLike, head: npt.ArrayLike, *, zero_method: ZeroMethod = "wilcox") -> EffectSizes:
    """Mean difference, relative delta, Cohen's d_z and the rank-biserial correlation in one call."""
    b, h = as_paired(base, head)
    if b.size == 0:
        return EffectSizes(None, None, None, None)
    return EffectSizes(
        mean_diff=float((h - b).mean()),
        rel_delta=relative_delta(float(b.mean()), float(h.mean())),
        cohens_dz=cohens_dz(b, h),
        rank_biserial=rank_biserial(b, h, zero_method=zero_method),
    )


def _direction(delta: float, greater_is_better: bool, tol: float) -> Direction:
    if abs(delta) <= tol:
        return "unchanged"
    return "improved" if (delta > 0) == greater_is_better else "regressed"


def compare_paired(
    base: npt.ArrayLike,
    head: npt.ArrayLike,
    *,
    greater_is_better: bool,
    seed: int = 0,
    n_resamples: int = 10_000,
    test: TestName = "permutation",
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
    ci_method: CIMethod = "percentile",
    tol: float = 1e-12,
    large_n: int | None = None,
) -> PairedComparison:
    """Compare one metric's aligned per-case values: means, delta, CI, p-value, W/T/L, effect sizes.

    The CI is :func:`paired_bootstrap_ci` of the mean difference and the p-value comes from
    ``test`` (:func:`paired_permutation_test`, :func:`wilcoxon_signed_rank` or
    :func:`paired_bootstrap_test`); each is called with the same ``seed`` so the numbers equal the
    standalone functions'. ``direction`` compares ``delta`` with ``tol`` and ``greater_is_better``;
    it says which way the metric moved, not whether the move is significant. Above ``large_n`` pairs
    (default :data:`LARGE_N`) the CI and the test are their large-sample limits (see the functions);
    ``test_method`` and ``ci_computed_by`` say what computed them.
    """
    b, h = as_paired(base, head)
    _check_resamples(n_resamples)
    _check_alternative(alternative)
    _check_confidence(confidence)
    if ci_method not in ("percentile", "bca"):
        raise ValueError(f"ci_method must be 'percentile' or 'bca', got {ci_method!r}")
    if test not in ("permutation", "wilcoxon", "bootstrap"):
        raise ValueError(f"test must be 'permutation', 'wilcoxon' or 'bootstrap', got {test!r}")
    _is_large(0, large_n)  # validates large_n before anything is computed
    n = b.size
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    d = h - b  # validated once here; the parts below work on it (the standalone functions' arithmetic)
    wtl = _win_tie_loss(d, greater_is_better, tol)
    if n == 0:
        return PairedComparison(
            0, None, None, None, None, None, None, confidence, ci_method, None, test, alternative,
            0, 0, 0, None, None, None, greater_is_better, int(n_resamples), seed,
        )
    base_mean = float(b.mean())
    head_mean = float(h.mean())
    delta = float(d.mean())
    ci = _ci_from(d, np.mean, "mean", ci_method, confidence, int(n_resamples), seed, large_n)
    p_value: float | None
    if test == "permutation":
        res = _permutation_test(d, int(n_resamples), seed, alternative, large_n)
        p_value, test_method = res.p_value, res.method
    elif test == "wilcoxon":
        wx = wilcoxon_signed_rank(b, h, alternative=alternative, large_n=large_n)
        p_value, test_method = wx.p_value, f"wilcoxon-{wx.method}"
    else:
        res = _bootstrap_test(d, int(n_resamples), seed, alternative, large_n)
        p_value, test_method = res.p_value, res.method
    return PairedComparison(
        n=n,
        base_mean=base_mean,
        head_mean=head_mean,
        delta=delta,
        rel_delta=delta / abs(base_mean) if base_mean != 0 else None,
        ci_low=ci.low,
        ci_high=ci.high,
        confidence=confidence,
        ci_method=ci_method,
        p_value=p_value,
        test=test,
        alternative=alternative,
        wins=wtl.wins,
        ties=wtl.ties,
        losses=wtl.losses,
        cohens_dz=_cohens_dz(d),
        rank_biserial=_rank_biserial(d),
        direction=_direction(delta, greater_is_better, tol),
        greater_is_better=greater_is_better,
        n_resamples=int(n_resamples),
        seed=seed,
        test_method=test_method,
        ci_computed_by=ci.computed_by,
    )
