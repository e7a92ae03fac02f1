"""Monte Carlo check of the gate rule built on harness.stats.

Gate rule (per metric, all metrics greater-is-better here): fire when

    the relative drop (base_mean - head_mean) / base_mean > 5%
    AND the two-sided paired permutation p-value, Holm-adjusted across the M metrics, is <= 0.05.

Simulated setting (meant to look like per-query retrieval metrics of two similar systems):

* 300 aligned golden cases, M = 3 metrics ("nDCG@10", "Recall@10", "MRR"), 200 simulated diffs per
  scenario, permutation tests with 2000 sign-flip resamples.
* Each case has a latent quality q ~ Beta(2, 1.5) (mean ~0.57) shared by both runs and all metrics;
  metric m's true per-case value is q ** gamma_m (gamma = 1.0, 0.7, 1.5), so the metrics are
  correlated and bounded in [0, 1].
* Each run scores a case as clip(true + N(0, 0.1), 0, 1); for 30% of the cases head equals base
  exactly (unchanged rankings). Across cases, corr(base, head) ~ 0.89 and sd(head - base) ~ 0.115.
* Injected regression: metric 0's head values are scaled by (1 - drop): a per-case downward shift
  proportional to the value (so values stay in [0, 1]), i.e. an exact relative drop of the mean.

Measured with the seeds below (and asserted with slack):

* same distribution: the gate fires in 0/200 diffs; the significance part alone (Holm, any metric,
  either direction) fires in 5.0% — the nominal family-wise 5%.
* injected 5% drop: Holm-significant in 99% of diffs, but the full rule fires in only ~57%: with the
  true drop exactly at the 5% threshold, "observed drop > 5%" is a coin flip whatever the test. A
  threshold equal to the drop you must catch cannot catch it reliably; set it below that drop.
* injected 8% drop: the full rule fires in 98.5% of diffs.

With noisier cases (NOISE_SD = 0.15, corr ~0.80) the test part's power at a 5% drop falls to ~0.7:
300 cases are about the least that resolve a 5% relative change of a ~0.57 mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.stats import holm, paired_permutation_test, relative_delta

N_CASES = 300
N_RUNS = 200
N_RESAMPLES = 2000
METRICS = ("nDCG@10", "Recall@10", "MRR")
GAMMA = (1.0, 0.7, 1.5)
NOISE_SD = 0.1
TIE_FRACTION = 0.3
ALPHA = 0.05
MAX_REL_DROP = 0.05


@dataclass(frozen=True)
class Rates:
    gate: float  # the full rule fired for any metric
    significant_any: float  # Holm-significant for any metric, either direction (family-wise error under H0)
    significant_target: float  # Holm-significant for metric 0 (power of the test part)


def gate_fires(rel_delta: float | None, p_adjusted: float | None, greater_is_better: bool) -> bool:
    """The rule under test; the metric's direction is explicit, never assumed."""
    if rel_delta is None or p_adjusted is None:
        return False
    rel_drop = -rel_delta if greater_is_better else rel_delta
    return rel_drop > MAX_REL_DROP and p_adjusted <= ALPHA


def simulate(drop: float, seed: int) -> Rates:
    rng = np.random.default_rng(seed)
    gate = significant_any = significant_target = 0
    for run in range(N_RUNS):
        quality = rng.beta(2.0, 1.5, N_CASES)
        pvalues: list[float | None] = []
        rel_deltas: list[float | None] = []
        for m, gamma in enumerate(GAMMA):
            truth = quality**gamma
            base = np.clip(truth + rng.normal(0.0, NOISE_SD, N_CASES), 0.0, 1.0)
            head = np.clip(truth + rng.normal(0.0, NOISE_SD, N_CASES), 0.0, 1.0)
            unchanged = rng.uniform(size=N_CASES) < TIE_FRACTION
            head[unchanged] = base[unchanged]
            if m == 0:
                head = head * (1.0 - drop)
            test = paired_permutation_test(base, head, n_resamples=N_RESAMPLES, seed=seed * 100_000 + run * 10 + m)
            pvalues.append(test.p_value)
            rel_deltas.append(relative_delta(float(base.mean()), float(head.mean())))
        adjusted = holm(pvalues)
        gate += any(gate_fires(r, p, True) for r, p in zip(rel_deltas, adjusted, strict=True))
        significant_any += any(p is not None and p <= ALPHA for p in adjusted)
        significant_target += adjusted[0] is not None and adjusted[0] <= ALPHA
    return Rates(gate / N_RUNS, significant_any / N_RUNS, significant_target / N_RUNS)


def test_gate_false_alarm_rate_under_the_null() -> None:
    rates = simulate(drop=0.0, seed=1)
    print(f"\nnull: gate fires {rates.gate:.3f}, Holm-significant (any metric) {rates.significant_any:.3f}")
    assert rates.gate <= 0.08
    assert rates.significant_any <= 0.08  # family-wise error of the test part alone: near nominal 0.05


def test_gate_power_for_injected_drops() -> None:
    at_threshold = simulate(drop=0.05, seed=2)
    above = simulate(drop=0.08, seed=3)
    print(f"\n5% drop: Holm-significant {at_threshold.significant_target:.3f}, gate fires {at_threshold.gate:.3f}"
          f"\n8% drop: Holm-significant {above.significant_target:.3f}, gate fires {above.gate:.3f}")
    assert at_threshold.significant_target >= 0.8  # the paired test detects a 5% drop
    assert 0.3 <= at_threshold.gate <= 0.7  # ...but "drop > 5%" is a coin flip when the true drop is 5%
    assert above.gate >= 0.8
