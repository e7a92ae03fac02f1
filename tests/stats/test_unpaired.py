"""Unpaired statistics of the canary verdict, against hand-computed values, brute force, scipy and Newcombe's
(1998) published intervals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats.unpaired import (
    SHIFT_XTOL,
    Classified,
    _sorted_groups,
    _weighted_median_sorted,
    classify,
    cochran_mantel_haenszel,
    hodges_lehmann,
    mann_whitney,
    merge_strata,
    newcombe_interval,
    pairwise_order_statistics,
    score,
    score_status,
    standardizing_weights,
    stratified_proportions,
    two_proportions,
    u_null_cdf,
    van_elteren,
    weighted_median,
)


def test_mann_whitney_hand_computed():
    # every canary value above every baseline value: U = 9, P(U = 9) = 1 / C(6, 3) = 1/20, two-sided 0.1
    r = mann_whitney([1, 2, 3], [4, 5, 6])
    assert r.statistic == 9.0
    assert r.p_value == pytest.approx(0.1)
    # differences 1, 2, 2, 3, 3, 3, 4, 4, 5: median 3; at n = m = 3 no interval reaches 95%: the widest
    assert r.effect == 3.0
    assert (r.ci_low, r.ci_high) == (1.0, 5.0)
    assert r.baseline_value == 2.0 and r.canary_value == 5.0


def test_u_null_distribution_matches_enumeration():
    for n, m in ((3, 4), (4, 4), (2, 6), (5, 3)):
        counts = np.zeros(n * m + 1)
        for idx in itertools.combinations(range(n + m), n):
            # U of the first sample = pairs (x_i, y_j) with x_i > y_j, ranks 0..n+m-1
            xs = set(idx)
            u = sum(1 for i in xs for j in range(n + m) if j not in xs and i > j)
            counts[u] += 1
        assert np.allclose(u_null_cdf(n, m), np.cumsum(counts) / counts.sum())
    # the textbook two-sided 5% critical value for n = m = 10 is U <= 23
    cdf = u_null_cdf(10, 10)
    assert cdf[23] <= 0.025 < cdf[24]


def test_interval_is_the_order_statistics_at_the_critical_values():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 12)
    y = rng.normal(0.8, 1, 15)
    r = mann_whitney(x, y)
    diffs = np.sort((y[None, :] - x[:, None]).ravel())
    cdf = u_null_cdf(12, 15)
    c = int(np.argmax(cdf >= 0.025))  # the smallest u with P(U <= u) >= alpha / 2
    assert r.ci_low == pytest.approx(diffs[c - 1])
    assert r.ci_high == pytest.approx(diffs[12 * 15 - c])
    assert r.effect == pytest.approx(np.median(diffs))
    assert r.p_value == pytest.approx(sps.mannwhitneyu(y, x).pvalue)
    assert "ci exact" in r.method


def test_large_samples_normal_interval_and_coverage():
    # the normal-approximation interval covers the true shift about 95% of the time
    rng = np.random.default_rng(11)
    hits = 0
    trials = 200
    for _ in range(trials):
        x = rng.exponential(1.0, 80)
        y = rng.exponential(1.0, 70) + 0.3
        r = mann_whitney(x, y)
        assert r.ci_low is not None and r.ci_high is not None
        hits += r.ci_low <= 0.3 <= r.ci_high
    assert 0.91 <= hits / trials <= 0.99


def test_selection_matches_brute_force():
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(0, 1, 700), 2)  # ties on purpose
    y = np.round(rng.normal(0.2, 1.3, 650), 2)
    diffs = np.sort((y[None, :] - x[:, None]).ravel())
    ks = [1, 2, 17, 1000, diffs.size // 2, diffs.size // 2 + 1, diffs.size - 3, diffs.size]
    got = pairwise_order_statistics(x, y, ks, max_pairs=1000)  # forces the selection path
    assert np.allclose(got, [diffs[k - 1] for k in ks], rtol=0, atol=1e-12)
    assert hodges_lehmann(x, y, max_pairs=1000) == pytest.approx(float(np.median(diffs)), abs=1e-12)
    a = mann_whitney(x, y)
    b = mann_whitney(x, y, max_pairs=1000)
    assert (a.effect, a.ci_low, a.ci_high) == pytest.approx((b.effect, b.ci_low, b.ci_high), abs=1e-12)
    # lopsided sides (the count queries the smaller one), both ways round
    for xs_, ys_ in ((x, y[:60]), (x[:60], y)):
        d = np.sort((ys_[None, :] - xs_[:, None]).ravel())
        ks_ = [1, 5, d.size // 3, d.size // 2, d.size]
        assert np.allclose(pairwise_order_statistics(xs_, ys_, ks_, max_pairs=100), [d[k - 1] for k in ks_],
                           rtol=0, atol=1e-12)


def test_mann_whitney_degenerate_inputs():
    r = mann_whitney([], [1.0, 2.0])
    assert r.p_value is None and r.effect is None
    same = mann_whitney([1.0] * 30, [1.0] * 40)
    assert same.p_value == 1.0 and same.effect == 0.0
    with pytest.raises(ValueError):
        mann_whitney([1.0, math.nan], [1.0])


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score)
NEWCOMBE = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0)),
    ((10, 10, 0, 10), (0.6075, 1.0)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE)
def test_newcombe_published_examples(counts, expected):
    low, high = newcombe_interval(*counts)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == expected


def test_two_proportions_against_scipy():
    # canary 56/70 against baseline 48/80: difference 0.2 with Newcombe's (0.0524, 0.3339)
    r = two_proportions(48, 80, 56, 70)
    assert r.effect == pytest.approx(0.2)
    assert (round(r.ci_low, 4), round(r.ci_high, 4)) == (0.0524, 0.3339)  # type: ignore[arg-type]
    assert r.p_value == pytest.approx(sps.fisher_exact([[56, 14], [48, 32]]).pvalue)
    assert r.baseline_value == 0.6 and r.canary_value == 0.8
    big = two_proportions(2000, 100_000, 640, 30_000)
    assert big.p_value == pytest.approx(sps.fisher_exact([[640, 29_360], [2000, 98_000]]).pvalue)
    assert two_proportions(0, 0, 1, 5).p_value is None
    with pytest.raises(ValueError):
        two_proportions(5, 3, 1, 5)


def test_classify_and_score():
    r = two_proportions(980, 1000, 400, 1000)
    low = classify(r, alpha_adjusted_p=1e-9, baseline_value=r.baseline_value, tolerance=0.1, bad="decrease")
    assert low.label == "low" and low.failed and low.relative == pytest.approx((0.4 - 0.98) / 0.98)
    # the same move with a generous tolerance passes; a good-direction move is labelled, not failed
    assert classify(r, alpha_adjusted_p=1e-9, baseline_value=0.98, tolerance=0.7, bad="decrease").label == "pass"
    good = classify(r, alpha_adjusted_p=1e-9, baseline_value=0.98, tolerance=0.0, bad="increase")
    assert good.label == "low" and not good.failed
    assert classify(r, alpha_adjusted_p=0.2, baseline_value=0.98, tolerance=0, bad="either").label == "pass"
    small = two_proportions(3, 10, 1, 10)
    nd = classify(small, alpha_adjusted_p=0.5, baseline_value=0.3, tolerance=0, bad="decrease", min_records=50)
    assert nd.label == "nodata" and nd.failed

    ok = Classified("pass", False, 0.0)
    bad = Classified("low", True, -0.5)
    nodata = Classified("nodata", True, None)
    s = score([ok, ok, bad, nodata], [1, 1, 2, 1])
    assert s.score == pytest.approx(50.0) and (s.passed, s.judged, s.nodata) == (2, 3, 1)
    crit = score([ok, bad], [1, 1], critical=[False, True])
    assert crit.critical_failed == (1,)
    assert score([nodata], [1]).score is None
    assert score_status(96, False, pass_score=95, marginal_score=75) == "pass"
    assert score_status(90, False, pass_score=95, marginal_score=75) == "marginal"
    assert score_status(70, False, pass_score=95, marginal_score=75) == "fail"
    assert score_status(100, True, pass_score=95, marginal_score=75) == "fail"
    assert score_status(None, False, pass_score=95, marginal_score=75) == "cannot_judge"


# --- stratified (van Elteren, Cochran-Mantel-Haenszel) ----------------------------------------------------


def test_van_elteren_one_stratum_is_the_mann_whitney_normal_approximation():
    rng = np.random.default_rng(8)
    for n, m, decimals in ((300, 200, 1), (80, 700, 3), (1000, 40, 0)):
        x = np.round(rng.normal(0, 1, n), decimals)  # ties on purpose
        y = np.round(rng.normal(0.2, 1.2, m), decimals)
        r = van_elteren(x, y, np.zeros(n), np.zeros(m))
        ref = sps.mannwhitneyu(y, x, method="asymptotic", use_continuity=False)
        assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert r.strata == 1 and r.test == "van-elteren"
        # the shift: with one stratum exactly the median of the pairwise differences; the interval within one
        # rank of the order statistics Mann-Whitney's normal approximation picks
        diffs = np.sort((y[None, :] - x[:, None]).ravel())
        assert r.effect == pytest.approx(float(np.median(diffs)), abs=1e-12)
        mw = mann_whitney(x, y)
        assert mw.ci_low is not None and mw.ci_high is not None and r.ci_low is not None and r.ci_high is not None
        k_low = int(np.searchsorted(diffs, mw.ci_low))  # 0-based rank of mann_whitney's lower bound
        k_high = int(np.searchsorted(diffs, mw.ci_high))
        assert diffs[max(k_low - 1, 0)] - 1e-12 <= r.ci_low <= diffs[min(k_low + 1, diffs.size - 1)] + 1e-12
        assert diffs[max(k_high - 1, 0)] - 1e-12 <= r.ci_high <= diffs[min(k_high + 1, diffs.size - 1)] + 1e-12
        assert r.baseline_value == pytest.approx(float(np.median(x))) and r.canary_value == float(np.median(y))


def test_van_elteren_hand_computed():
    # stratum 0: baseline 1, 2; canary 3 -> canary rank 3, E = 1 * 4 / 2 = 2, V = 2 * 1 / 12 * 4 = 2/3
    # stratum 1: baseline 5; canary 4, 6 -> canary ranks 1 + 3 = 4, E = 2 * 4 / 2 = 4, V = 2/3
    # weights 1 / (N + 1) = 1/4 each: T = (3 - 2) / 4 + 0 = 1/4, Var = (2/3 + 2/3) / 16 = 1/12, z = sqrt(3)/2
    r = van_elteren([1, 2, 5], [3, 4, 6], [0, 0, 1], [0, 1, 1], min_stratum=1)
    assert r.strata == 2 and r.merged == 0
    assert r.statistic == pytest.approx(math.sqrt(3) / 2)
    assert r.p_value == pytest.approx(2 * sps.norm.sf(math.sqrt(3) / 2))
    # differences within strata: 2, 1 (stratum 0) and -1, 1 (stratum 1), equal weights: T(d) = 0 nowhere,
    # <= 0 from d = 1: the shift is 1
    assert r.effect == pytest.approx(1.0)


def test_van_elteren_against_brute_force_ranks():
    rng = np.random.default_rng(21)
    xs, ys, sx, sy = [], [], [], []
    for k, (n, m, level) in enumerate(((30, 8, 0.0), (12, 25, 2.0), (50, 50, -1.0), (7, 9, 5.0))):
        xs.append(np.round(rng.normal(level, 1, n), 1))
        ys.append(np.round(rng.normal(level + 0.3, 1, m), 1))
        sx.append(np.full(n, k))
        sy.append(np.full(m, k))
    t = var = 0.0
    for x, y in zip(xs, ys, strict=True):
        pooled = np.concatenate([x, y])
        ranks = sps.rankdata(pooled)  # mid-ranks
        n, m, big = x.size, y.size, x.size + y.size
        w_sum = ranks[n:].sum()
        _, counts = np.unique(pooled, return_counts=True)
        v = n * m / 12 * ((big + 1) - np.sum(counts**3 - counts) / (big * (big - 1)))
        t += (w_sum - m * (big + 1) / 2) / (big + 1)
        var += v / (big + 1) ** 2
    r = van_elteren(np.concatenate(xs), np.concatenate(ys), np.concatenate(sx), np.concatenate(sy))
    assert r.strata == 4
    assert r.statistic == pytest.approx(t / math.sqrt(var), rel=1e-12)
    assert r.p_value == pytest.approx(2 * sps.norm.sf(abs(t / math.sqrt(var))), rel=1e-9)
    # the shift zeroes the weighted statistic of canary - shift: check T on both sides of it by brute force
    def stat(d: float) -> float:
        out = 0.0
        for x, y in zip(xs, ys, strict=True):
            diffs = (y[None, :] - d) - x[:, None]
            out += ((diffs > 0).sum() + 0.5 * (diffs == 0).sum() - x.size * y.size / 2) / (x.size + y.size + 1)
        return out
    assert r.effect is not None
    assert stat(r.effect - 1e-9) > 0 >= stat(r.effect + 1e-9) or stat(r.effect - 1e-9) >= 0 > stat(r.effect + 1e-9)
    z = sps.norm.ppf(0.975)
    sigma = math.sqrt(sum(x.size * y.size / 12 * ((x.size + y.size + 1) - (
        sum(c**3 - c for c in np.unique(x, return_counts=True)[1]) +
        sum(c**3 - c for c in np.unique(y, return_counts=True)[1])) / ((x.size + y.size) * (x.size + y.size - 1)))
        / (x.size + y.size + 1) ** 2 for x, y in zip(xs, ys, strict=True)))
    assert stat(r.ci_low - 1e-9) > z * sigma >= stat(r.ci_low + 1e-9)  # type: ignore[operator]
    assert stat(r.ci_high - 1e-9) >= -z * sigma > stat(r.ci_high + 1e-9)  # type: ignore[operator]


def test_van_elteren_resists_simpsons_paradox():
    # both sides the same system; the level follows the hour, the canary's share ramps from 5% to 50%
    rng = np.random.default_rng(4)
    x_parts, y_parts, sx, sy = [], [], [], []
    for hour in range(24):
        level = 0.15 if hour < 12 else 0.0
        share = 0.05 if hour < 12 else 0.5
        total = 400
        m = int(total * share)
        x_parts.append(rng.normal(0.6 + level, 0.05, total - m))
        y_parts.append(rng.normal(0.6 + level, 0.05, m))
        sx.append(np.full(total - m, hour))
        sy.append(np.full(m, hour))
    x, y = np.concatenate(x_parts), np.concatenate(y_parts)
    pooled = sps.mannwhitneyu(y, x)
    assert pooled.pvalue < 1e-50  # pooling the hours invents a drop
    r = van_elteren(x, y, np.concatenate(sx), np.concatenate(sy))
    assert r.p_value is not None and r.p_value > 0.01
    assert r.ci_low is not None and r.ci_high is not None and r.ci_low < 0 < r.ci_high
    # the baseline's median over the canary's hourly mix is the canary's own, not the baseline's pooled one
    assert r.baseline_value == pytest.approx(r.canary_value, abs=0.01)
    assert abs(float(np.median(x)) - float(np.median(y))) > 0.05


def test_van_elteren_null_calibration_and_interval_coverage():
    rng = np.random.default_rng(9)
    trials, rejects, covered = 300, 0, 0
    for _ in range(trials):
        k = 6
        levels = rng.normal(0, 2, k)
        n = rng.integers(10, 60, k)
        m = rng.integers(5, 40, k)
        x = np.concatenate([rng.exponential(1, a) + lv for a, lv in zip(n, levels, strict=True)])
        y0 = np.concatenate([rng.exponential(1, b) + lv for b, lv in zip(m, levels, strict=True)])
        sx = np.repeat(np.arange(k), n)
        sy = np.repeat(np.arange(k), m)
        r = van_elteren(x, y0, sx, sy)
        rejects += r.p_value is not None and r.p_value < 0.05
        s = van_elteren(x, y0 + 0.4, sx, sy)  # a common shift of 0.4 in every stratum
        covered += s.ci_low is not None and s.ci_high is not None and s.ci_low <= 0.4 <= s.ci_high
    assert rejects <= sps.binom.ppf(0.99, trials, 0.05)  # at most the nominal rate plus the binomial margin
    assert 0.92 <= covered / trials <= 0.98


def test_stratified_shift_accuracy_and_time_at_a_million_records():
    import time

    rng = np.random.default_rng(12)
    # accuracy against the exact order statistics (one stratum, 6M pairs: read by selection)
    x = rng.normal(0, 1, 3000)
    y = rng.normal(0.05, 1, 2000)
    r = van_elteren(x, y, np.zeros(3000), np.zeros(2000))
    exact = hodges_lehmann(x, y)
    assert exact is not None and r.effect is not None
    se = (r.ci_high - r.ci_low) / (2 * 1.96)  # type: ignore[operator]
    assert abs(r.effect - exact) <= SHIFT_XTOL * se * 2
    # a million records over 24 hours, scores rounded to 3 decimals (ties) and continuous
    n, m = 900_000, 100_000
    hx, hy = rng.integers(0, 24, n), rng.integers(0, 24, m)
    for x_big, y_big in ((np.round(rng.beta(4, 5, n), 3), np.round(rng.beta(4, 5, m), 3)),
                         (rng.normal(0, 1, n), rng.normal(0.01, 1, m))):
        start = time.process_time()
        big = van_elteren(x_big, y_big, hx, hy)
        took = time.process_time() - start
        print(f"van Elteren + shift at 1M records: {took:.2f} s CPU ({big.method})")
        assert took < 2.0  # ~0.3-0.6 s measured; the bound leaves room for a loaded machine
        assert big.ci_low is not None and big.ci_high is not None and big.effect is not None
        assert big.ci_low <= big.effect <= big.ci_high


def test_merge_strata_keeps_every_value():
    # hour 3 has 1 canary value, hour 9 none: both join a neighbour; the last hours join the group before them
    b = np.array([1] * 6 + [3] * 6 + [7] * 6 + [9] * 2)
    c = np.array([1] * 5 + [3] * 1 + [7] * 7)
    st = merge_strata(b, c, min_size=5)
    assert st.labels == 4 and st.small == 2 and st.strata == 2
    assert st.baseline.size == b.size and st.canary.size == c.size
    assert list(np.bincount(st.baseline)) == [6, 14] and list(np.bincount(st.canary)) == [5, 8]
    one = merge_strata([1, 2], [1], min_size=5)  # a side below the minimum in total: one stratum
    assert one.strata == 1
    # the canary's default: nothing merged; hour 9 (baseline only) is its own stratum, counted as one-sided
    unmerged = merge_strata(b, c, min_size=1)
    assert unmerged.strata == unmerged.labels == 4 and unmerged.small == 1
    assert list(np.bincount(unmerged.baseline)) == [6, 6, 6, 2] and list(np.bincount(unmerged.canary)) == [5, 1, 7]
    # a one-sided stratum adds nothing to the statistic: the same test as without its values
    x = np.arange(20, dtype=float)
    y = np.arange(13, dtype=float) + 0.5
    with_extra = van_elteren(x, y, b, c)
    without = van_elteren(x[b != 9], y, b[b != 9], c)
    assert with_extra.p_value == pytest.approx(without.p_value) and with_extra.effect == pytest.approx(without.effect)
    assert with_extra.n_baseline == 20 and with_extra.merged == 1


def test_weighted_median():
    rng = np.random.default_rng(2)
    for size in (1, 2, 7, 10):
        v = rng.normal(size=size)
        assert weighted_median(v, np.ones(size)) == pytest.approx(float(np.median(v)))
    v = np.array([3.0, 1.0, 2.0, 10.0])
    w = np.array([1, 2, 1, 3])
    assert weighted_median(v, w) == float(np.median(np.repeat(v, w)))
    assert weighted_median([], []) is None
    # the grouped form (one weight per sorted group) agrees, on both of its paths (few values; bisection)
    for size in (40, 20_000):
        groups = rng.integers(0, 5, size)
        vals = np.round(rng.normal(size=size), 2)
        per = rng.uniform(0.1, 3.0, 5)
        got = _weighted_median_sorted(_sorted_groups(vals, groups, 5), per)
        assert got == pytest.approx(weighted_median(vals, per[groups]))


def test_standardizing_weights_hand_computed():
    # baseline 100 + 100 values, canary 10 + 90: stratum shares 0.5/0.5 against 0.1/0.9
    w = standardizing_weights(np.repeat([0, 1], 100), np.repeat([0, 1], [10, 90]), 2)
    assert w[0] == pytest.approx(0.2) and w[150] == pytest.approx(1.8)


def test_cmh_published_example():
    # R's mantelhaen.test example (penicillin and rabbits; Mantel 1963): five 2x2 tables, delay "none" as the
    # first row, cured as the event. R: Mantel-Haenszel X-squared = 3.9286, p-value = 0.04747
    cured_none = [0, 3, 6, 5, 2]
    n_none = [6, 6, 6, 6, 2]
    cured_late = [0, 0, 2, 6, 5]
    n_late = [5, 6, 6, 6, 5]
    stat, p = cochran_mantel_haenszel(cured_late, n_late, cured_none, n_none)
    assert round(stat, 4) == 3.9286 and round(p, 5) == 0.04747
    # by hand: sum a = 16, sum E = 0 + 1.5 + 4 + 5.5 + 2 = 13, sum V = 27/44 + 8/11 + 1/4 = 35/22; without the
    # continuity correction 9 / (35/22) = 198/35
    stat_raw, p_raw = cochran_mantel_haenszel(cured_late, n_late, cured_none, n_none, correction=False)
    assert stat_raw == pytest.approx(198 / 35)
    assert p_raw == pytest.approx(sps.chi2.sf(198 / 35, 1))


def test_cmh_one_table_is_the_chi_square_with_the_hypergeometric_variance():
    table = np.array([[30, 70], [45, 55]])  # canary row first
    chi2 = sps.chi2_contingency(table, correction=False)[0]
    total = table.sum()
    stat, _ = cochran_mantel_haenszel([45], [100], [30], [100], correction=False)
    assert stat == pytest.approx(chi2 * (total - 1) / total)
    assert cochran_mantel_haenszel([0, 0], [10, 5], [0, 0], [7, 9]) == (0.0, 1.0)


def test_stratified_proportions():
    # one stratum: Newcombe's published interval for 56/70 against 48/80
    x = np.repeat([1.0, 0.0], [48, 32])
    y = np.repeat([1.0, 0.0], [56, 14])
    r = stratified_proportions(x, y, np.zeros(80), np.zeros(70))
    assert r.effect == pytest.approx(0.2)
    assert (round(r.ci_low, 4), round(r.ci_high, 4)) == (0.0524, 0.3339)  # type: ignore[arg-type]
    assert r.test == "cmh" and r.baseline_value == pytest.approx(0.6)
    # two strata: baseline 10/100 and 50/100, canary 1/10 and 45/90 (the same rates, another mix): the
    # standardised baseline rate is 0.1 x 0.1 + 0.9 x 0.5 = 0.46, the canary's 46/100; no difference
    xb = np.concatenate([np.repeat([1.0, 0.0], [10, 90]), np.repeat([1.0, 0.0], [50, 50])])
    yc = np.concatenate([np.repeat([1.0, 0.0], [1, 9]), np.repeat([1.0, 0.0], [45, 45])])
    s = stratified_proportions(xb, yc, np.repeat([0, 1], 100), np.repeat([0, 1], [10, 90]))
    assert s.baseline_value == pytest.approx(0.46) and s.canary_value == pytest.approx(0.46)
    assert s.effect == pytest.approx(0.0, abs=1e-12) and s.p_value == pytest.approx(1.0)
    pooled = two_proportions(60, 200, 46, 100)  # unstratified, the mix alone looks like +16 points
    assert pooled.p_value is not None and pooled.p_value < 0.01


def test_classify_absolute_tolerance():
    r = two_proportions(9000, 10000, 8700, 10000)  # -3 points, p tiny
    assert classify(r, alpha_adjusted_p=1e-9, baseline_value=0.9, tolerance=0, bad="decrease").label == "low"
    assert classify(r, alpha_adjusted_p=1e-9, baseline_value=0.9, tolerance=0, bad="decrease",
                    abs_tolerance=0.05).label == "pass"
    assert classify(r, alpha_adjusted_p=1e-9, baseline_value=0.9, tolerance=0, bad="decrease",
                    abs_tolerance=0.01).label == "low"
