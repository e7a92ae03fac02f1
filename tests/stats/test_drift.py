"""Drift statistics (harness/stats/drift.py) against scipy and their definitions, and thresholds that are
calibrated at the windows' sizes where a fixed rule is not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats.drift import (
    PSI_FIXED_RULE,
    chi_squared,
    jensen_shannon,
    mmd2_unbiased,
    mmd_test,
    null_distribution,
    numeric_drift,
    wasserstein,
)


def test_wasserstein_and_ks_are_scipys_on_fixed_inputs() -> None:
    a, b = [0.0, 1.0, 3.0], [5.0, 6.0, 8.0]
    assert wasserstein(a, b) == pytest.approx(5.0)  # every point moves by 5
    assert wasserstein([1, 2, 3], [1, 2, 3]) == 0.0 and wasserstein([], [1.0]) is None
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=60), rng.normal(0.5, 1, size=80)
    d = numeric_drift(x, y, n_resamples=50)
    ks = sps.ks_2samp(x, y)
    assert d.ks_statistic == pytest.approx(ks.statistic) and d.ks_p_value == pytest.approx(ks.pvalue)
    assert d.wasserstein == pytest.approx(sps.wasserstein_distance(x, y))


def test_chi_squared_is_scipys_and_undefined_without_two_categories() -> None:
    ref, cur = {"mobile": 60, "desktop": 30, "tablet": 10}, {"mobile": 40, "desktop": 45, "tablet": 15, "tv": 0}
    res = chi_squared(ref, cur)
    table = sps.chi2_contingency([[30, 60, 10], [45, 40, 15]], correction=False)  # desktop, mobile, tablet
    assert res.statistic == pytest.approx(table.statistic) and res.p_value == pytest.approx(table.pvalue)
    assert res.dof == 2  # the empty category 'tv' is dropped
    assert chi_squared({"a": 5}, {"a": 9}).statistic is None
    assert chi_squared({"a": 5, "b": 1}, {}).p_value is None


def test_jensen_shannon_divergence_in_bits() -> None:
    assert jensen_shannon({"a": 10}, {"b": 10}) == pytest.approx(1.0)  # disjoint: 1 bit
    assert jensen_shannon({"a": 3, "b": 1}, {"a": 30, "b": 10}) == pytest.approx(0.0, abs=1e-12)
    # by its definition: H(m) - (H(p) + H(q)) / 2 with m the mixture
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (p + q) / 2

    def h(v: np.ndarray) -> float:
        return float(-(v * np.log2(v)).sum())

    assert jensen_shannon({"a": 5, "b": 5}, {"a": 9, "b": 1}) == pytest.approx(h(m) - (h(p) + h(q)) / 2)
    assert jensen_shannon({}, {"a": 1}) is None


def test_mmd_is_its_definition_and_its_permutation_test_tells_shift_from_none() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(9, 3))
    bw = 1.7

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-((a - b) ** 2).sum() / (2 * bw * bw)))

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(len(x)), 2)) / (12 * 11)
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(len(y)), 2)) / (9 * 8)
    xy = sum(k(a, b) for a in x for b in y) / (12 * 9)
    assert mmd2_unbiased(x, y, bw) == pytest.approx(xx + yy - 2 * xy)
    same = mmd_test(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), n_permutations=100, seed=1)
    moved = mmd_test(rng.normal(size=(40, 8)), rng.normal(0.8, 1, size=(40, 8)), n_permutations=100, seed=1)
    assert same.p_value is not None and same.p_value > 0.05
    assert moved.p_value is not None and moved.p_value <= 0.02 and moved.statistic > same.statistic  # type: ignore[operator]
    assert mmd_test([[1.0]], [[2.0], [3.0]]).statistic is None
    with pytest.raises(ValueError, match="dimension"):
        mmd_test(np.zeros((3, 2)), np.zeros((3, 4)))


def test_a_fixed_psi_rule_fires_on_no_drift_at_small_windows_and_the_calibrated_one_does_not() -> None:
    # A/A: both windows from one distribution, 50 records each. "PSI > 0.2" fires on most such pairs
    # (measured: 82% at 50 records, 40% at 100, 0% at 1,000); the null at these sizes fires at about alpha.
    rng = np.random.default_rng(7)
    trials, fixed, calibrated = 60, 0, 0
    reference = rng.lognormal(size=2000)  # a past window that stands for the reference distribution
    for t in range(trials):
        a, b = rng.choice(reference, 50), rng.choice(reference, 50)
        d = numeric_drift(a, b, alpha=0.05, n_resamples=100, seed=t)
        fixed += bool(d.psi_fixed_rule)
        calibrated += bool(d.psi_p_value is not None and d.psi_p_value <= 0.05)
    assert fixed / trials >= 0.5, fixed
    assert calibrated / trials <= 0.12, calibrated
    # and a real shift is caught by the calibrated reading, with what moved named
    d = numeric_drift(rng.choice(reference, 200), rng.choice(reference, 200) * 2.5, n_resamples=100)
    assert d.psi_p_value is not None and d.psi_p_value <= 0.01 and d.psi is not None and d.psi > d.psi_threshold
    assert d.quantiles["p50"][1] > d.quantiles["p50"][0] and d.moved_bin is not None and d.moved_bin[2] > d.moved_bin[1]
    assert PSI_FIXED_RULE == 0.2


def test_the_null_distribution_shrinks_as_windows_grow() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=5000)
    small = null_distribution(lambda a, b: float(sps.wasserstein_distance(a, b)), reference, 100, 100, n_resamples=80)
    large = null_distribution(lambda a, b: float(sps.wasserstein_distance(a, b)), reference, 2000, 2000,
                              n_resamples=80)
    assert large.threshold(0.05) < small.threshold(0.05) / 2  # a threshold quoted once fits no size
    assert small.p_value(-1.0) == 1.0
    inside = sorted(small.values)[60]
    assert small.p_value(inside) == (1 + sum(v >= inside for v in small.values)) / 81  # the resampling count
    # beyond every resample the tail is extrapolated (Pearson III), so a drift far out can still survive a large
    # Benjamini-Hochberg family; it never claims more than the resamples show
    beyond = max(small.values) * 3
    assert small.p_value(beyond) < 1e-6 < small.p_value(max(small.values) * 1.01) <= 1 / 81
    with pytest.raises(ValueError):
        null_distribution(lambda a, b: 0.0, [], 1, 1)


def _latency(rng: np.random.Generator, hour: int, n: int, scale: float = 1.0) -> np.ndarray:
    """Seconds per request with a daily cycle: busy hours (9-17) are slower."""
    base = 0.8 if 9 <= hour <= 17 else 0.3
    return rng.lognormal(np.log(base * scale), 0.3, size=n)


def _tests(rng: np.random.Generator, *, shift: float, mismatched_hours: bool) -> list:
    from harness.stats.drift import DriftTest

    today = _latency(rng, 10, 300, shift)
    yesterday = _latency(rng, 3 if mismatched_hours else 10, 300)
    last_week = _latency(rng, 10, 300)  # same weekday, same hour
    out = []
    for comparison, ref, label in (("day_over_day", yesterday, "yesterday"), ("week_over_week", last_week, "-7d")):
        ks = sps.ks_2samp(ref, today)
        out.append(DriftTest("latency", "all", comparison, label, "today", "ks", float(ks.pvalue),
                             float(ks.statistic)))
    # and 40 signals x segments that did not move, in the same family
    for k in range(40):
        a, b = rng.normal(size=200), rng.normal(size=200)
        out.append(DriftTest(f"signal-{k}", "geo=eu", "week_over_week", "-7d", "today", "ks",
                             float(sps.ks_2samp(a, b).pvalue)))
    return out


def test_a_day_over_day_move_at_mismatched_hours_is_seasonality_not_drift() -> None:
    from harness.stats.drift import drift_alarms

    report = drift_alarms(_tests(np.random.default_rng(11), shift=1.0, mismatched_hours=True))
    assert [a.test.comparison for a in report.seasonal] == ["day_over_day"]  # 10h vs 3h moved: the daily cycle
    assert report.alarms == () and report.n_tests == 42 and "week-over-week" in report.rule


def test_real_drift_moves_both_comparisons_and_alarms_with_its_evidence() -> None:
    from harness.stats.drift import DriftTest, drift_alarms

    tests = _tests(np.random.default_rng(12), shift=1.6, mismatched_hours=False)
    tests.append(DriftTest("latency", "geo=apac", "week_over_week", "-7d", "today", "ks", None))  # empty window
    report = drift_alarms(tests)
    by = {(a.test.signal, a.test.comparison): a for a in report.alarms}
    assert set(by) == {("latency", "day_over_day"), ("latency", "week_over_week")}
    dod = by[("latency", "day_over_day")]
    assert dod.confirmed_by is not None and dod.confirmed_by.comparison == "week_over_week"
    assert dod.p_adjusted >= dod.test.p_value  # type: ignore[operator]  # adjusted over the whole family
    assert report.seasonal == () and report.untestable == 1
