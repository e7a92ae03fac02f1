"""The sign-flip test on 0/1 metrics: exact (binomial) at any size."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("n", [20, 150, 2000])
def test_sign_flip_on_0_1_metrics_is_the_exact_mcnemar_test_at_any_size(n: int) -> None:
    """Every nonzero difference of a 0/1 metric is +-1: the exact sign-flip null is binomial over the discordant
    pairs, so the p-value is scipy's exact binomial (McNemar) test, not a resampled estimate of it."""
    import scipy.stats as st

    from harness.stats.paired import paired_permutation_test

    rng = np.random.default_rng(n)
    base = rng.integers(0, 2, n)
    head = np.where(rng.random(n) < 0.1, 1, base)  # the head fixes a tenth of the cases
    d = head - base
    res = paired_permutation_test(base, head, n_resamples=1000)
    assert res.method == "permutation-exact"
    assert res.p_value == pytest.approx(st.binomtest(int((d > 0).sum()), int((d != 0).sum())).pvalue, rel=1e-12)
    scaled = paired_permutation_test(base * 0.5, head * 0.5, n_resamples=1000)  # any equal magnitude, same law
    assert scaled.p_value == pytest.approx(res.p_value, rel=1e-12)
