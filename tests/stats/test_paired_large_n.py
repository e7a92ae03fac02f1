"""Large-sample limits of the paired statistics (above harness.stats.paired.LARGE_N pairs).

Oracles: scipy's exact sign-flip enumeration (permutation_test) for the null's mean and variance, the
resampling path itself run explicitly (large_n=sys.maxsize) with enough resamples, scipy's wilcoxon,
binomtest, norm.interval and quantile_test; and values pinned before the change for n <= LARGE_N.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats import intervals
from harness.stats.paired import (
    LARGE_N,
    Alternative,
    CIMethod,
    TestName,
    ZeroMethod,
    compare_paired,
    paired_bootstrap_ci,
    paired_bootstrap_test,
    paired_permutation_test,
    wilcoxon_signed_rank,
)

RESAMPLE = sys.maxsize  # large_n that forces the resampling path at any n
N_ABOVE = LARGE_N + 1


def _metric_pairs(n: int, seed: int, mean_diff: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-case scores like nDCG (skewed, clipped to [0, 1], 60% of cases unchanged), with the moved
    cases shifted so that ``mean(head - base)`` is ``mean_diff``."""
    rng = np.random.default_rng(seed)
    b = rng.beta(0.7, 1.5, n)
    moved = rng.random(n) < 0.4
    h = np.where(moved, np.clip(b + rng.normal(0.0, 0.15, n), 0.0, 1.0), b)
    h = h + moved * (mean_diff - float((h - b).mean())) / float(moved.mean())
    return b, h


def test_sign_flip_limit_has_the_exact_null_mean_and_variance_of_scipys_enumeration() -> None:
    rng = np.random.default_rng(12)
    base = rng.random(12)
    head = base + rng.normal(0.1, 0.3, 12)
    d = head - base
    ref = sps.permutation_test((head, base), lambda x, y, axis: np.mean(x - y, axis=axis),
                               permutation_type="samples", vectorized=True, n_resamples=np.inf)
    null = ref.null_distribution
    assert null.size == 2**12  # exact enumeration
    assert null.mean() == pytest.approx(0.0, abs=1e-15)
    assert null.var() == pytest.approx(float(np.sum(d**2)) / 12**2, rel=1e-12)
    z = float(d.mean()) / math.sqrt(float(null.var()))
    assert z == pytest.approx(float(d.sum()) / math.sqrt(float(np.sum(d**2))), rel=1e-12)
    refs: list[tuple[Alternative, float]] = [
        ("two-sided", 2 * sps.norm.sf(abs(z))), ("greater", sps.norm.sf(z)), ("less", sps.norm.cdf(z))
    ]
    for alt, p_ref in refs:
        r = paired_permutation_test(base, head, alternative=alt, large_n=0)
        assert r.method == "permutation-normal" and r.n_resamples == 0
        assert r.p_value == pytest.approx(float(p_ref), rel=1e-12)
    # The exact test's p and the limit's already agree roughly at n = 12 (not a tight oracle: discreteness).
    exact = paired_permutation_test(base, head, n_resamples=2**12)
    assert exact.method == "permutation-exact"
    assert exact.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_sign_flip_limit_agrees_with_resampling_just_above_the_threshold() -> None:
    b, h = _metric_pairs(N_ABOVE, 1, 0.0012)
    asym = paired_permutation_test(b, h)
    assert asym.method == "permutation-normal" and asym.n == N_ABOVE
    reps = 10_000
    mc = paired_permutation_test(b, h, n_resamples=reps, seed=5, large_n=RESAMPLE)
    assert mc.method == "permutation-random"
    assert asym.p_value is not None and mc.p_value is not None
    assert 0.01 < asym.p_value < 0.5  # a p where Monte Carlo resolves the comparison
    half = asym.p_value / 2
    mc_sd = 2 * math.sqrt(half * (1 - half) / reps)
    assert abs(asym.p_value - mc.p_value) < 4 * mc_sd + 1 / reps
    one_sided: list[Alternative] = ["greater", "less"]
    for alt in one_sided:
        a1 = paired_permutation_test(b, h, alternative=alt).p_value
        m1 = paired_permutation_test(b, h, alternative=alt, n_resamples=reps, seed=6, large_n=RESAMPLE).p_value
        assert a1 is not None and m1 is not None
        assert abs(a1 - m1) < 4 * math.sqrt(a1 * (1 - a1) / reps) + 1 / reps


def test_bootstrap_ci_and_test_limits_agree_with_resampling_just_above_the_threshold() -> None:
    b, h = _metric_pairs(N_ABOVE, 2, 0.001)
    d = h - b
    se = float(np.std(d)) / math.sqrt(d.size)
    reps = 3000
    ci_methods: list[CIMethod] = ["percentile", "bca"]
    for method in ci_methods:
        asym = paired_bootstrap_ci(b, h, method=method)
        assert (asym.computed_by, asym.n_resamples, asym.method) == ("normal", 0, method)
        lo_ref, hi_ref = sps.norm.interval(0.95, loc=float(d.mean()), scale=se)
        assert (asym.low, asym.high) == pytest.approx((lo_ref, hi_ref), rel=1e-12)
        mc = paired_bootstrap_ci(b, h, method=method, n_resamples=reps, seed=3, large_n=RESAMPLE)
        assert mc.computed_by == f"bootstrap-{method}"
        assert asym.low is not None and asym.high is not None and mc.low is not None and mc.high is not None
        # Monte Carlo sd of a 2.5% bootstrap quantile ~ sqrt(.025 * .975 / B) / phi(1.96) * se ~ 0.05 se.
        assert abs(asym.low - mc.low) < 0.25 * se
        assert abs(asym.high - mc.high) < 0.25 * se
    t_asym = paired_bootstrap_test(b, h)
    t_mc = paired_bootstrap_test(b, h, n_resamples=reps, seed=4, large_n=RESAMPLE)
    assert t_asym.method == "bootstrap-normal" and t_mc.method == "bootstrap"
    assert t_asym.p_value is not None and 0.01 < t_asym.p_value < 0.5
    assert t_asym.p_value is not None and t_mc.p_value is not None
    assert t_asym.p_value == pytest.approx(2 * sps.norm.sf(abs(float(d.mean())) / se), rel=1e-12)
    half = t_asym.p_value / 2
    assert abs(t_asym.p_value - t_mc.p_value) < 4 * 2 * math.sqrt(half * (1 - half) / reps) + 2 / reps


def test_median_limit_is_the_order_statistic_interval_and_agrees_with_resampling() -> None:
    rng = np.random.default_rng(3)
    b = rng.random(N_ABOVE)
    h = b + rng.standard_t(4, N_ABOVE) * 0.1 + 0.001
    d = np.sort(h - b)
    asym = paired_bootstrap_ci(b, h, stat="median")
    assert asym.computed_by == "order-statistics"
    # Oracle: scipy's exact binomial order-statistic CI of the median; the normal ranks are within 2 of it.
    exact = sps.quantile_test(d, q=float(np.median(d)), p=0.5).confidence_interval(0.95)
    lo_rank = int(np.searchsorted(d, exact.low))
    hi_rank = int(np.searchsorted(d, exact.high))
    assert d[max(lo_rank - 2, 0)] <= asym.low <= d[lo_rank + 2]
    assert d[hi_rank - 2] <= asym.high <= d[min(hi_rank + 2, d.size - 1)]
    mc = paired_bootstrap_ci(b, h, stat="median", n_resamples=400, seed=9, large_n=RESAMPLE)
    assert asym.low is not None and asym.high is not None and mc.low is not None and mc.high is not None
    width = asym.high - asym.low
    assert abs(asym.low - mc.low) < 0.25 * width
    assert abs(asym.high - mc.high) < 0.25 * width


def test_wilcoxon_above_the_threshold_is_scipys_normal_approximation() -> None:
    b, h = _metric_pairs(N_ABOVE, 4, 0.003)
    d = h - b
    zero_methods: list[ZeroMethod] = ["wilcox", "pratt", "zsplit"]
    for zero_method in zero_methods:
        r = wilcoxon_signed_rank(b, h, zero_method=zero_method)
        ref = sps.wilcoxon(d, zero_method=zero_method, method="approx")
        assert r.method == "approx"
        assert (r.statistic, r.p_value) == (float(ref.statistic), float(ref.pvalue))
    small = wilcoxon_signed_rank(b[:40], h[:40])
    assert small.method == "auto"
    assert small.p_value == float(sps.wilcoxon(d[:40], method="auto").pvalue)


def test_equal_magnitude_differences_stay_exact_mcnemar_at_any_n() -> None:
    rng = np.random.default_rng(5)
    n = 5 * LARGE_N
    b = (rng.random(n) < 0.6).astype(float)
    h = np.where(rng.random(n) < 0.05, 1.0 - b, b)
    h[:40] = 1.0  # a few extra discordant pairs one way
    d = h - b
    k, m = int(np.count_nonzero(d > 0)), int(np.count_nonzero(d))
    alts: list[Alternative] = ["two-sided", "greater", "less"]
    for alt in alts:
        r = paired_permutation_test(b, h, alternative=alt)
        assert r.method == "permutation-exact" and r.n_resamples == 0
        assert r.p_value == pytest.approx(sps.binomtest(k, m, 0.5, alternative=alt).pvalue, rel=1e-9)


# Computed with the code before the large-sample paths existed (same seeds, same data): resampling is
# untouched at or below LARGE_N, bit for bit.
_PINNED = {
    30: {"perm": 0.6169154228855721, "ci": [-0.026444583388604073, 0.039255199281673106],
         "ci_bca_median": -0.018395272245397276, "bt": 0.6368159203980099, "wx": 0.761065473780036,
         "cmp": [-0.023286045153447097, 0.0335547982819986, 0.6069651741293532]},
    2000: {"perm": 0.009950248756218905, "ci": [0.005721447842705323, 0.01471496972153448],
           "ci_bca_median": 0.0026174542301412927, "bt": 0.004975124378109453, "wx": 2.9795868385359858e-05,
           "cmp": [0.005964032746587645, 0.013874926159803224, 0.009950248756218905]},
    19_999: {"perm": 0.009950248756218905, "ci": [0.008683349904490255, 0.011380185456076384],
             "ci_bca_median": None, "bt": 0.004975124378109453, "wx": 1.4651150373824833e-48,
             "cmp": [0.008718847700339939, 0.011185816097348148, 0.009950248756218905]},
}


@pytest.mark.parametrize("n", sorted(_PINNED))
def test_below_the_threshold_results_are_unchanged_bit_for_bit(n: int) -> None:
    pinned = _PINNED[n]
    rng = np.random.default_rng(n)
    b = rng.random(n)
    h = np.clip(b + rng.normal(0.01, 0.1, n), 0, 1)
    perm = paired_permutation_test(b, h, n_resamples=200, seed=3)
    assert perm.p_value == pinned["perm"] and perm.method == "permutation-random"
    ci = paired_bootstrap_ci(b, h, n_resamples=200, seed=4)
    assert [ci.low, ci.high] == pinned["ci"] and ci.computed_by == "bootstrap-percentile"
    if pinned["ci_bca_median"] is not None:
        bca = paired_bootstrap_ci(b, h, n_resamples=100, seed=5, stat="median", method="bca")
        assert bca.low == pinned["ci_bca_median"] and bca.computed_by == "bootstrap-bca"
    bt = paired_bootstrap_test(b, h, n_resamples=200, seed=6)
    assert bt.p_value == pinned["bt"] and bt.method == "bootstrap"
    assert wilcoxon_signed_rank(b, h).p_value == pinned["wx"]
    c = compare_paired(b, h, greater_is_better=True, n_resamples=200, seed=7)
    assert [c.ci_low, c.ci_high, c.p_value] == pinned["cmp"]
    assert (c.test_method, c.ci_computed_by) == ("permutation-random", "bootstrap-percentile")


def test_the_threshold_itself_still_resamples_and_one_more_pair_does_not() -> None:
    b, h = _metric_pairs(N_ABOVE, 6, 0.002)
    at = compare_paired(b[:LARGE_N], h[:LARGE_N], greater_is_better=True, n_resamples=50)
    above = compare_paired(b, h, greater_is_better=True, n_resamples=50)
    assert (at.test_method, at.ci_computed_by) == ("permutation-random", "bootstrap-percentile")
    assert (above.test_method, above.ci_computed_by) == ("permutation-normal", "normal")
    d = h - b
    assert above.p_value == pytest.approx(2 * sps.norm.sf(abs(d.sum()) / math.sqrt(np.sum(d**2))), rel=1e-12)
    named: list[tuple[TestName, str]] = [("wilcoxon", "wilcoxon-approx"), ("bootstrap", "bootstrap-normal")]
    for test, name in named:
        assert compare_paired(b, h, greater_is_better=True, test=test).test_method == name
    # No signal at all: p = 1 from every limit.
    same = compare_paired(b, b, greater_is_better=True)
    assert same.p_value == 1.0 and (same.ci_low, same.ci_high) == (0.0, 0.0) and same.ci_computed_by == "point"


def test_large_n_is_validated_and_the_interval_helpers_match_scipy() -> None:
    with pytest.raises(ValueError, match="large_n"):
        paired_permutation_test([0.0, 1.0], [1.0, 0.5], large_n=-1)
    with pytest.raises(ValueError, match="large_n"):
        compare_paired([], [], greater_is_better=True, large_n=-1)
    assert intervals.normal_interval(0.3, 0.02, 0.9) == pytest.approx(sps.norm.interval(0.9, 0.3, 0.02), rel=1e-12)
    with pytest.raises(ValueError, match="standard error"):
        intervals.normal_interval(0.3, -1.0)
    with pytest.raises(ValueError, match="at least one"):
        intervals.median_order_statistic_interval([])
    assert intervals.median_order_statistic_interval([2.0]) == (2.0, 2.0)
