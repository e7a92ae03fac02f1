"""Unpaired statistics of the canary verdict, against hand-computed values, brute force, scipy and Newcombe's
(1998) published intervals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats.unpaired import (
    Classified,
    classify,
    hodges_lehmann,
    mann_whitney,
    newcombe_interval,
    pairwise_order_statistics,
    score,
    score_status,
    two_proportions,
    u_null_cdf,
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
