"""harness.stats against its oracles: scipy.stats on fixed inputs, and hand-computed examples."""

from __future__ import annotations

import math
import types
from itertools import product

import numpy as np
import pytest
from scipy import optimize, special
from scipy import stats as sps

from harness.stats import (
    CLIP,
    ScoreMapping,
    benjamini_hochberg,
    bootstrap_distribution,
    brier_score,
    calibration_drift,
    cohens_dz,
    compare_paired,
    effect_sizes,
    expected_calibration_error,
    fit_minmax,
    fit_platt,
    holm,
    ks_2samp,
    paired_bootstrap_ci,
    paired_bootstrap_test,
    paired_permutation_test,
    psi,
    rank_biserial,
    relative_delta,
    reliability_diagram,
    scores_to_probabilities,
    threshold_for_recall,
    threshold_recall,
    wilcoxon_signed_rank,
    wilson_interval,
    win_tie_loss,
)

# Edge cases must give well-defined values without any warning.
pytestmark = pytest.mark.filterwarnings("error")


def _pair(n: int, seed: int = 1, shift: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, n)
    head = np.clip(base + rng.normal(shift, 0.2, n), 0, 1)
    return base, head


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """scipy statistic: mean(head - base) for data=(base, head)."""
    return np.mean(y - x, axis=axis)


def _median_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(y - x, axis=axis)


# --------------------------------------------------------------------------------------------------
# bootstrap


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("stat", ["mean", "median"])
def test_bootstrap_ci_equals_scipy_given_the_same_replicates(method: str, stat: str) -> None:
    base, head = _pair(40)
    dist = bootstrap_distribution(base, head, stat=stat, n_resamples=4000, seed=3)  # type: ignore[arg-type]
    ours = paired_bootstrap_ci(base, head, stat=stat, n_resamples=4000, seed=3, method=method)  # type: ignore[arg-type]
    ref = sps.bootstrap(
        (base, head), _mean_diff if stat == "mean" else _median_diff, paired=True, vectorized=True,
        n_resamples=0, bootstrap_result=types.SimpleNamespace(bootstrap_distribution=dist),
        method="BCa" if method == "bca" else "percentile", confidence_level=0.95,
    )
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=1e-12)
    assert ours.estimate == pytest.approx(float(np.mean(head - base) if stat == "mean" else np.median(head - base)))


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_bootstrap_ci_agrees_with_scipy_independent_draws(method: str, confidence: float) -> None:
    base, head = _pair(60, seed=5)
    ours = paired_bootstrap_ci(base, head, n_resamples=20_000, seed=11, method=method,  # type: ignore[arg-type]
                               confidence=confidence)
    ref = sps.bootstrap((base, head), _mean_diff, paired=True, vectorized=True, n_resamples=20_000,
                        method="BCa" if method == "bca" else "percentile", confidence_level=confidence,
                        rng=np.random.default_rng(999)).confidence_interval
    width = ref.high - ref.low
    assert ours.low is not None and ours.high is not None
    assert abs(ours.low - ref.low) < 0.05 * width
    assert abs(ours.high - ref.high) < 0.05 * width


def test_bootstrap_is_seeded_and_chunking_does_not_change_the_draws() -> None:
    base, head = _pair(5000, seed=2)  # 5000 columns: several chunks of rows
    a = bootstrap_distribution(base, head, n_resamples=700, seed=7)
    b = bootstrap_distribution(base, head, n_resamples=700, seed=7)
    c = bootstrap_distribution(base, head, n_resamples=700, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    idx = np.random.default_rng(7).integers(0, 5000, size=(700, 5000))
    np.testing.assert_array_equal(a, (head - base)[idx].mean(axis=1))


def test_bootstrap_degenerate_inputs() -> None:
    empty = paired_bootstrap_ci([], [])
    assert (empty.estimate, empty.low, empty.high, empty.n) == (None, None, None, 0)
    one = paired_bootstrap_ci([0.2], [0.5], method="bca")
    assert one.low == one.high == pytest.approx(0.3)
    for method in ("percentile", "bca"):
        const = paired_bootstrap_ci([0.0, 0.25, 0.5], [0.25, 0.5, 0.75], method=method)
        assert (const.low, const.high, const.n_resamples) == (0.25, 0.25, 0)
        tied = paired_bootstrap_ci([0.5] * 10, [0.5] * 10, method=method)
        assert (tied.low, tied.high) == (0.0, 0.0)
    # BCa with a median whose jackknife values are all equal (acceleration 0/0): still finite.
    odd = paired_bootstrap_ci(np.zeros(6), [0, 0, 0, 0, 0, 1.0], stat="median", method="bca")
    assert odd.low is not None and odd.high is not None and odd.low <= odd.high


def test_bootstrap_test_pvalue() -> None:
    base, head = _pair(200, seed=4, shift=0.2)
    res = paired_bootstrap_test(base, head, n_resamples=2000, seed=0)
    assert res.p_value == pytest.approx(1 / 2001)
    null = paired_bootstrap_test(base, base, n_resamples=2000)
    assert null.p_value == 1.0
    assert paired_bootstrap_test([], []).p_value is None
    assert paired_bootstrap_test([0.0], [1.0]).p_value is None
    assert paired_bootstrap_test(np.zeros(30), np.full(30, 0.1), n_resamples=999).p_value == pytest.approx(1 / 1000)
    b, h = _pair(50, seed=9, shift=0.0)
    two = paired_bootstrap_test(b, h, seed=1).p_value
    greater = paired_bootstrap_test(b, h, seed=1, alternative="greater").p_value
    less = paired_bootstrap_test(b, h, seed=1, alternative="less").p_value
    assert two is not None and greater is not None and less is not None
    assert 0 < min(greater, less) <= 0.5 + 0.05 and two <= 1.0


# --------------------------------------------------------------------------------------------------
# permutation test


@pytest.mark.parametrize("n", [2, 5, 8, 12, 13])
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_permutation_exact_equals_scipy(n: int, alternative: str) -> None:
    base, head = _pair(n, seed=n)
    ours = paired_permutation_test(base, head, n_resamples=9999, alternative=alternative)  # type: ignore[arg-type]
    ref = sps.permutation_test((head, base), lambda x, y, axis: np.mean(x - y, axis=axis),
                               permutation_type="samples", vectorized=True, n_resamples=9999,
                               alternative=alternative)
    assert ours.method == "permutation-exact"
    assert ours.n_resamples == 2**n
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert ours.statistic == pytest.approx(ref.statistic)


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_permutation_random_agrees_with_scipy(alternative: str) -> None:
    base, head = _pair(40, seed=3, shift=0.03)
    ours = paired_permutation_test(base, head, n_resamples=20_000, seed=5, alternative=alternative)  # type: ignore[arg-type]
    ref = sps.permutation_test((head, base), lambda x, y, axis: np.mean(x - y, axis=axis),
                               permutation_type="samples", vectorized=True, n_resamples=20_000,
                               alternative=alternative, rng=np.random.default_rng(0))
    assert ours.method == "permutation-random"
    assert ours.p_value == pytest.approx(ref.pvalue, abs=0.02)  # two Monte Carlo estimates, SE ~0.004 each


def test_permutation_hand_examples_and_add_one() -> None:
    # d = [1, 2, 3]: only the all-positive sign vector reaches mean 2, so p_greater = 1/8 exactly.
    res = paired_permutation_test([0, 0, 0], [1, 2, 3], alternative="greater")
    assert res.p_value == pytest.approx(1 / 8)
    assert paired_permutation_test([0, 0, 0], [1, 2, 3]).p_value == pytest.approx(2 / 8)
    # One pair (scipy refuses n=1): two sign vectors, the observed one and its mirror.
    assert paired_permutation_test([0.0], [0.4], alternative="greater").p_value == 0.5
    assert paired_permutation_test([0.0], [0.4]).p_value == 1.0
    # Random: no random sign vector of 30 positive differences matches, so p = (0 + 1) / (999 + 1).
    res = paired_permutation_test(np.zeros(30), np.arange(1.0, 31), n_resamples=999, alternative="greater")
    assert res.method == "permutation-random"
    assert res.p_value == pytest.approx(1 / 1000)
    # Ties everywhere: no change, p = 1.
    assert paired_permutation_test(np.full(50, 0.4), np.full(50, 0.4)).p_value == 1.0
    assert paired_permutation_test(np.full(5, 0.4), np.full(5, 0.4)).p_value == 1.0
    empty = paired_permutation_test([], [])
    assert empty.p_value is None and empty.statistic is None


def test_permutation_is_seeded() -> None:
    base, head = _pair(100, seed=8, shift=0.02)
    a = paired_permutation_test(base, head, n_resamples=3000, seed=1)
    assert a == paired_permutation_test(base, head, n_resamples=3000, seed=1)
    assert a.p_value != paired_permutation_test(base, head, n_resamples=3000, seed=2).p_value


def test_permutation_null_pvalues_are_uniform_enough() -> None:
    rng = np.random.default_rng(0)
    ps = []
    for i in range(300):
        base = rng.uniform(size=60)
        head = rng.uniform(size=60)
        p = paired_permutation_test(base, head, n_resamples=500, seed=i).p_value
        assert p is not None
        ps.append(p)
    rejections = np.mean(np.asarray(ps) <= 0.05)
    assert 0.01 <= rejections <= 0.10


# --------------------------------------------------------------------------------------------------
# Wilcoxon


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize("case", ["small_exact", "small_ties", "large", "large_ties"])
def test_wilcoxon_equals_scipy(zero_method: str, alternative: str, case: str) -> None:
    rng = np.random.default_rng(42)
    if case == "small_exact":
        base, head = _pair(12, seed=3)
    elif case == "small_ties":
        base = np.array([0.5, 0.2, 0.3, 0.9, 0.1, 0.4, 0.6, 0.7])
        head = np.array([0.5, 0.4, 0.1, 0.9, 0.3, 0.2, 0.9, 0.7])
    elif case == "large":
        base, head = _pair(120, seed=4)
    else:
        base = rng.integers(0, 4, 200) / 3
        head = np.clip(base + rng.integers(-1, 2, 200) / 3, 0, 1)
    ours = wilcoxon_signed_rank(base, head, alternative=alternative, zero_method=zero_method)  # type: ignore[arg-type]
    ref = sps.wilcoxon(head - base, zero_method=zero_method, alternative=alternative)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert ours.statistic == pytest.approx(ref.statistic)


def test_wilcoxon_edge_cases_and_rank_biserial() -> None:
    all_zero = wilcoxon_signed_rank(np.full(20, 0.3), np.full(20, 0.3))
    assert (all_zero.p_value, all_zero.statistic, all_zero.rank_biserial) == (1.0, 0.0, None)
    assert wilcoxon_signed_rank([], []).p_value is None
    one = wilcoxon_signed_rank([0.0], [1.0])
    assert one.p_value == 1.0
    # d = [1, 2, -3, 4]: ranks 1..4, R+ = 7, R- = 3, r = (7 - 3) / 10.
    res = wilcoxon_signed_rank(np.zeros(4), [1.0, 2.0, -3.0, 4.0])
    assert (res.r_plus, res.r_minus) == (7.0, 3.0)
    assert res.rank_biserial == pytest.approx(0.4)
    assert rank_biserial(np.zeros(4), [1.0, 2.0, -3.0, 4.0]) == pytest.approx(0.4)
    # zeros: wilcox drops them; pratt ranks them (ranks 1, 2) and then drops their ranks.
    d = np.array([0.0, 0.0, 1.0, -2.0, 3.0])
    assert rank_biserial(np.zeros(5), d) == pytest.approx((4 - 2) / 6)
    assert rank_biserial(np.zeros(5), d, zero_method="pratt") == pytest.approx((3 + 5 - 4) / 12)
    assert rank_biserial(np.zeros(5), d, zero_method="zsplit") == pytest.approx((3 + 5 + 1.5 - 4 - 1.5) / 15)


# --------------------------------------------------------------------------------------------------
# counts, effect sizes, compare_paired


def test_win_tie_loss_respects_direction_and_tolerance() -> None:
    base = [0.5, 0.5, 0.5, 0.5]
    head = [0.6, 0.5, 0.4, 0.5 + 1e-15]
    up = win_tie_loss(base, head, greater_is_better=True)
    assert (up.wins, up.ties, up.losses) == (1, 2, 1)
    down = win_tie_loss([1.0, 2.0, 3.0], [0.5, 2.0, 3.5], greater_is_better=False)
    assert (down.wins, down.ties, down.losses) == (1, 1, 1)
    assert win_tie_loss([1.0], [1.05], greater_is_better=True, tol=0.1).ties == 1
    assert win_tie_loss([], [], greater_is_better=True).ties == 0


def test_effect_sizes_hand_examples() -> None:
    assert cohens_dz([0, 0, 0], [1, 2, 3]) == pytest.approx(2.0)  # mean 2, sd (ddof=1) 1
    assert cohens_dz([0.0], [1.0]) is None
    assert cohens_dz([0, 0], [1, 1]) is None
    assert relative_delta(0.5, 0.45) == pytest.approx(-0.1)
    assert relative_delta(0.0, 0.1) is None
    assert relative_delta(-2.0, -1.0) == pytest.approx(0.5)  # signed like the difference
    es = effect_sizes([0.5, 0.4, 0.6], [0.6, 0.5, 0.5])
    assert es.mean_diff == pytest.approx(1 / 30)
    assert es.rel_delta == pytest.approx((1 / 30) / 0.5)
    assert es.rank_biserial == pytest.approx((2 + 2 - 2) / 6)  # |d| all 0.1 -> average ranks 2, 2, 2
    assert effect_sizes([], []) == effect_sizes([], [])
    assert effect_sizes([], []).mean_diff is None


def test_compare_paired_bundles_the_standalone_results() -> None:
    base, head = _pair(80, seed=6, shift=-0.08)
    cmp = compare_paired(base, head, greater_is_better=True, seed=3, n_resamples=3000)
    ci = paired_bootstrap_ci(base, head, seed=3, n_resamples=3000)
    perm = paired_permutation_test(base, head, seed=3, n_resamples=3000)
    wtl = win_tie_loss(base, head, greater_is_better=True)
    assert (cmp.ci_low, cmp.ci_high) == (ci.low, ci.high)
    assert cmp.p_value == perm.p_value
    assert (cmp.wins, cmp.ties, cmp.losses) == (wtl.wins, wtl.ties, wtl.losses)
    assert cmp.n == 80
    assert cmp.delta is not None
    assert cmp.delta == pytest.approx(float(np.mean(head) - np.mean(base)))
    assert cmp.rel_delta == pytest.approx(cmp.delta / float(np.mean(base)))
    assert cmp.cohens_dz == cohens_dz(base, head)
    assert cmp.direction == "regressed"
    assert cmp.ci_low < cmp.delta < cmp.ci_high  # type: ignore[operator]
    wil = compare_paired(base, head, greater_is_better=True, test="wilcoxon")
    assert wil.p_value == wilcoxon_signed_rank(base, head).p_value
    boot = compare_paired(base, head, greater_is_better=True, test="bootstrap", seed=3, n_resamples=3000)
    assert boot.p_value == paired_bootstrap_test(base, head, seed=3, n_resamples=3000).p_value


def test_compare_paired_direction_is_not_significance() -> None:
    base = np.array([0.5, 0.6, 0.7, 0.4])
    head = np.array([0.52, 0.6, 0.69, 0.43])  # tiny, insignificant rise
    up = compare_paired(base, head, greater_is_better=True)
    assert up.direction == "improved" and up.p_value is not None and up.p_value > 0.05
    assert compare_paired(base, head, greater_is_better=False).direction == "regressed"
    assert compare_paired(base, base, greater_is_better=True).direction == "unchanged"


def test_compare_paired_edge_cases() -> None:
    empty = compare_paired([], [], greater_is_better=True)
    assert (empty.n, empty.delta, empty.p_value, empty.ci_low, empty.direction) == (0, None, None, None, None)
    single = compare_paired([0.0], [0.0], greater_is_better=True)
    assert (single.delta, single.rel_delta, single.p_value, single.direction) == (0.0, None, 1.0, "unchanged")
    tied = compare_paired(np.full(30, 0.7), np.full(30, 0.7), greater_is_better=True, test="wilcoxon")
    assert (tied.p_value, tied.ci_low, tied.ci_high, tied.cohens_dz, tied.ties) == (1.0, 0.0, 0.0, None, 30)
    with pytest.raises(TypeError):
        compare_paired([1.0], [1.0])  # type: ignore[call-arg]  # the direction is never assumed


def test_inputs_are_validated_and_not_mutated() -> None:
    base = np.array([0.1, 0.2, 0.3])
    head = np.array([0.2, 0.2, 0.2])
    before = (base.copy(), head.copy())
    compare_paired(base, head, greater_is_better=True)
    np.testing.assert_array_equal(base, before[0])
    np.testing.assert_array_equal(head, before[1])
    with pytest.raises(ValueError, match="aligned"):
        paired_bootstrap_ci([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="unscored"):
        paired_permutation_test([0.1, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="alternative"):
        paired_permutation_test([0.1], [0.2], alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap_ci([0.1], [0.2], n_resamples=0)


# --------------------------------------------------------------------------------------------------
# multiple comparisons


def _holm_naive(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def _bh_naive(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = min(min(1.0, m / (j + 1) * p[order[j]]) for j in range(rank, m))
    return out


def test_holm_and_bh_hand_examples() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005, 0.01, 0.03, 0.04 -> Holm x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max.
    assert holm(p) == pytest.approx((0.03, 0.06, 0.06, 0.02))
    # BH: x4/1, x4/2, x4/3, x4/4 = 0.02, 0.02, 0.04, 0.04 -> running min from the top.
    assert benjamini_hochberg(p) == pytest.approx((0.02, 0.04, 0.04, 0.02))
    assert holm([0.5, 0.6]) == (1.0, 1.0)
    assert benjamini_hochberg([0.5, 0.6]) == (0.6, 0.6)
    assert holm([0.01, 0.01]) == (0.02, 0.02)
    assert holm([]) == () and benjamini_hochberg([]) == ()
    assert holm([0.3]) == (0.3,)


def test_bh_paper_example() -> None:
    # Benjamini & Hochberg (1995), section 4: 15 p-values; BH at q = 0.05 rejects the four smallest,
    # Holm (like Bonferroni) only the three smallest.
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262,
         0.5719, 0.6528, 0.7590, 1.000]
    bh = benjamini_hochberg(p)
    assert [q is not None and q <= 0.05 for q in bh] == [True] * 4 + [False] * 11
    assert bh[4] == pytest.approx(0.0201 * 15 / 5)
    hm = holm(p)
    assert [q is not None and q <= 0.05 for q in hm] == [True] * 3 + [False] * 12


def test_corrections_skip_none_and_match_naive_definitions() -> None:
    assert holm([None, 0.01, None, 0.04]) == pytest.approx((None, 0.02, None, 0.04))
    assert benjamini_hochberg([0.04, None, 0.01]) == pytest.approx((0.04, None, 0.02))
    assert holm([None, None]) == (None, None)
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = list(rng.uniform(0, 0.2, rng.integers(1, 12)))
        p[0] = p[-1]  # a tie
        h = holm(p)
        b = benjamini_hochberg(p)
        assert h == pytest.approx(tuple(_holm_naive(p)))
        assert b == pytest.approx(tuple(_bh_naive(p)))
        order = np.argsort(p)
        assert np.all(np.diff(np.asarray(h)[order]) >= 0) and np.all(np.diff(np.asarray(b)[order]) >= 0)
        assert all(x is not None and pv <= x <= 1 for pv, x in zip(p, h, strict=True))
    with pytest.raises(ValueError):
        holm([0.1, 1.5])
    with pytest.raises(ValueError):
        benjamini_hochberg([float("nan")])


# --------------------------------------------------------------------------------------------------
# intervals


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_equals_scipy(confidence: float) -> None:
    for n, k in product([1, 2, 7, 30, 300], range(0, 301, 1)):
        if k > n:
            continue
        ci = wilson_interval(k, n, confidence)
        ref = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
        assert ci is not None
        assert ci[0] == pytest.approx(ref.low, abs=1e-12)
        assert ci[1] == pytest.approx(ref.high, abs=1e-12)
        assert 0.0 <= ci[0] <= k / n <= ci[1] <= 1.0


def test_wilson_edge_cases() -> None:
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


# --------------------------------------------------------------------------------------------------
# distribution shift


def test_psi_known_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    assert psi(x, x).psi == 0.0
    same = psi(x, rng.normal(size=5000)).psi
    assert same is not None and same < 0.02
    shifted = psi(x, rng.normal(1.0, 1.0, size=5000)).psi  # continuous symmetrised KL of a 1-sd shift is 1
    assert shifted is not None and shifted > 0.25
    # Hand example: expected [1, 2, 3, 4], 2 bins -> edge at the median 2: (-inf, 2], (2, inf) = 0.5, 0.5;
    # actual [1, 3, 4, 4] -> 0.25, 0.75: PSI = -0.25 ln 0.5 + 0.25 ln 1.5 = 0.25 ln 3.
    res = psi([1, 2, 3, 4], [1, 3, 4, 4], bins=2)
    assert res.edges == (2.0,)
    assert res.psi == pytest.approx(0.25 * math.log(3))
    uniform = psi([0, 1, 2, 3, 4], [0, 0, 4, 4, 4], bins=2, binning="uniform")
    assert uniform.edges == (2.0,)
    assert uniform.psi == pytest.approx((0.4 - 0.6) * math.log(0.4 / 0.6) + (0.6 - 0.4) * math.log(0.6 / 0.4))


def test_psi_ties_and_edges() -> None:
    # Tied per-case scores (0 and 1): duplicate quantile edges merge; a tie is never split.
    res = psi([0] * 6 + [1] * 4, [0] * 4 + [1] * 6, bins=10)
    assert res.edges == (0.0, 1.0)
    assert res.n_bins == 3
    assert res.expected_fractions == pytest.approx((0.6, 0.4, 0.0))
    assert res.actual_fractions == pytest.approx((0.4, 0.6, 0.0))
    assert res.psi == pytest.approx(0.4 * math.log(1.5))
    # Right-closed bins: a value equal to an edge belongs to the lower bin.
    assert psi([1, 2, 3, 4], [2, 2, 2, 2], bins=2).actual_fractions == (1.0, 0.0)
    # Constant expected: bins (-inf, c] and (c, inf); mass above c is a (large) shift.
    const = psi([1.0] * 10, [1.0] * 5 + [2.0] * 5)
    assert const.edges == (1.0,) and const.psi is not None and const.psi > 1
    assert psi([], [1.0]).psi is None
    assert psi([1.0, 2.0], []).psi is None


def test_ks_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=40)
    b = rng.normal(0.5, 1, size=55)
    for alternative in ("two-sided", "less", "greater"):
        ours = ks_2samp(a, b, alternative=alternative)
        ref = sps.ks_2samp(a, b, alternative=alternative)
        assert ours.statistic == pytest.approx(ref.statistic)
        assert ours.p_value == pytest.approx(ref.pvalue)
    assert ks_2samp([], [1.0]).p_value is None
    assert ks_2samp([1.0, 1.0], [1.0, 1.0]).p_value == 1.0


# --------------------------------------------------------------------------------------------------
# calibration


def test_ece_and_brier_hand_examples() -> None:
    probs = [0.1, 0.4, 0.8, 0.9]
    labels = [0, 1, 1, 0]
    # bins (0, .5], (.5, 1]: |0.5 - 0.25| and |0.5 - 0.85|, each with weight 1/2.
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.5 * 0.25 + 0.5 * 0.35)
    assert brier_score(probs, labels) == pytest.approx((0.01 + 0.36 + 0.04 + 0.81) / 4)
    assert expected_calibration_error([0.5] * 4, [0, 1, 0, 1]) == 0.0
    assert brier_score([0.5] * 4, [0, 1, 0, 1]) == 0.25
    assert brier_score([1.0, 0.0], [True, False]) == 0.0
    # Quantile bins: edges 0.1, 0.2, 0.4 -> {0.1, 0.2} (conf .15, freq 0), {0.3, 0.4} (conf .35, freq 1).
    q = reliability_diagram([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], n_bins=2, strategy="quantile")
    assert q.edges == (0.1, 0.2, 0.4)
    assert q.counts == (2, 2)
    assert q.ece == pytest.approx(0.5 * 0.15 + 0.5 * 0.65)
    assert q.mce == pytest.approx(0.65)


def test_reliability_diagram_bins() -> None:
    rd = reliability_diagram([0.0, 0.5, 0.51, 1.0], [0, 1, 1, 1], n_bins=2)
    assert rd.counts == (2, 2)  # right-closed: 0.5 is in the first bin, 0.0 too
    assert rd.mean_probability == pytest.approx((0.25, 0.755))
    sparse = reliability_diagram([0.05, 0.95], [0, 1], n_bins=10)
    assert sparse.counts[1:9] == (0,) * 8
    assert sparse.mean_probability[1] is None and sparse.positive_rate[1] is None
    const = reliability_diagram([0.3, 0.3], [0, 1], strategy="quantile")
    assert const.counts == (2,) and const.ece == pytest.approx(0.2)
    empty = reliability_diagram([], [])
    assert (empty.ece, empty.mce, empty.n) == (None, None, 0)
    assert brier_score([], []) is None
    with pytest.raises(ValueError, match="binary"):
        brier_score([0.5], [2])
    with pytest.raises(ValueError, match="scores_to_probabilities"):
        expected_calibration_error([1.3], [1])


def test_platt_recovers_a_known_logistic_and_matches_scipy_optimum() -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, 20_000)
    y = (rng.uniform(size=s.size) < special.expit(3.0 * s - 0.5)).astype(float)
    m = fit_platt(s, y)
    assert m.kind == "platt"
    assert m.slope == pytest.approx(3.0, abs=0.15)
    assert m.intercept == pytest.approx(-0.5, abs=0.1)
    n_pos = y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (y.size - n_pos + 2))

    def nll(w: np.ndarray) -> float:
        z = w[0] * s + w[1]
        return float(np.sum(np.logaddexp(0, z) - t * z))

    ref = optimize.minimize(nll, np.zeros(2), method="BFGS")
    assert (m.slope, m.intercept) == pytest.approx(tuple(ref.x), abs=1e-3)
    # Separable data and a single class stay finite thanks to Platt's target smoothing.
    sep = fit_platt([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert math.isfinite(sep.slope) and sep.slope > 0
    one_class = fit_platt([0.1, 0.5, 0.9], [1, 1, 1])
    assert np.all(one_class.apply([0.1, 0.9]) > 0.5)
    with pytest.raises(ValueError):
        fit_platt([], [])


def test_score_mappings() -> None:
    np.testing.assert_array_equal(scores_to_probabilities([-0.2, 0.3, 1.4]), [0.0, 0.3, 1.0])
    np.testing.assert_array_equal(CLIP.apply([0.5]), [0.5])
    mm = fit_minmax([0.2, 0.4, 0.6])
    np.testing.assert_allclose(scores_to_probabilities([0.2, 0.4, 0.6, 0.8], mm), [0.0, 0.5, 1.0, 1.0])
    assert fit_minmax([0.3, 0.3]) == ScoreMapping("linear", 0.0, 0.5)
    platt = ScoreMapping("platt", 2.0, -1.0)
    np.testing.assert_allclose(platt.apply([0.5, 1.0]), [0.5, special.expit(1.0)])


def test_threshold_recall_hand_examples() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.95, 0.85])
    labels = np.array([1] * 10 + [0, 0])
    t = threshold_for_recall(scores, labels, 0.9)
    assert t == pytest.approx(0.1)  # the 9th highest of the 10 relevant scores
    assert threshold_recall(scores, labels, t) == pytest.approx(0.9)  # type: ignore[arg-type]
    assert threshold_recall(scores, labels, 0.65) == pytest.approx(0.3)
    assert threshold_for_recall([0.5, 0.5, 0.5], [1, 1, 1], 0.5) == 0.5
    assert threshold_recall([0.5, 0.5, 0.5], [1, 1, 1], 0.5) == 1.0
    assert threshold_for_recall([0.3], [0], 0.9) is None
    assert threshold_recall([0.3], [0], 0.2) is None


def test_calibration_drift_flags_a_shifted_score_scale() -> None:
    rng = np.random.default_rng(1)

    def run(shift: float, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
        labels = (rng.uniform(size=n) < 0.3).astype(float)
        scores = np.where(labels == 1, rng.normal(0.72, 0.06, n), rng.normal(0.5, 0.08, n)) + shift
        return scores, labels

    bs, by = run(0.0)
    same_s, same_y = run(0.0)
    hs, hy = run(-0.08)  # a new embedding model with a lower score scale, equally good at ranking
    stable = calibration_drift(bs, by, same_s, same_y)
    drift = calibration_drift(bs, by, hs, hy)
    assert stable.platt is not None and drift.platt == stable.platt
    assert stable.platt_head.ece is not None and stable.platt_head.ece < 0.03
    assert drift.platt_head.ece is not None and drift.platt_head.ece > 0.1
    assert drift.platt_head.brier is not None and drift.platt_base.brier is not None
    assert drift.platt_head.brier > drift.platt_base.brier
    assert drift.raw_base.ece is not None and drift.raw_base.ece > 0.2  # raw cosine scores are not probabilities
    assert drift.base_recall is not None and drift.base_recall >= 0.9
    assert drift.head_recall is not None and drift.head_recall < 0.6
    assert stable.head_recall is not None and abs(stable.head_recall - 0.9) < 0.03
    empty = calibration_drift([], [], [0.5], [1])
    assert (empty.platt, empty.threshold, empty.raw_base.ece, empty.platt_head.brier) == (None, None, None, None)
