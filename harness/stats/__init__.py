"""Statistics behind ``harness diff`` and ``harness gate`` (DESIGN principles 2, 5, 6).

Pure functions: numpy arrays in, frozen dataclasses (or plain floats/tuples) out; undefined results
are ``None``, never NaN; every random procedure takes ``seed`` and uses
``numpy.random.default_rng(seed)``. Oracles: scipy.stats (bootstrap, permutation_test, wilcoxon,
binomtest, ks_2samp) and hand-checked examples (Holm, Benjamini-Hochberg, PSI, ECE, Brier).

* :mod:`~harness.stats.paired` — paired bootstrap CI, permutation/Wilcoxon/bootstrap tests,
  win/tie/loss, effect sizes, and :func:`compare_paired` bundling them per metric.
* :mod:`~harness.stats.multiple` — Holm and Benjamini-Hochberg adjusted p-values.
* :mod:`~harness.stats.intervals` — Wilson score interval for pass rates.
* :mod:`~harness.stats.distribution` — population stability index and two-sample KS.
* :mod:`~harness.stats.calibration` — ECE, Brier, Platt scaling fitted on base, threshold recall.
* :mod:`~harness.stats.drift` — window drift: KS, Wasserstein, PSI, chi-squared, Jensen-Shannon, kernel MMD,
  and thresholds from the null distribution at the windows' actual sizes.
"""

from __future__ import annotations

from harness.stats.calibration import (
    CLIP,
    CalibrationDrift,
    CalibrationScores,
    ReliabilityDiagram,
    ScoreMapping,
    brier_score,
    calibration_drift,
    expected_calibration_error,
    fit_minmax,
    fit_platt,
    reliability_diagram,
    scores_to_probabilities,
    threshold_for_recall,
    threshold_recall,
)
from harness.stats.distribution import KSResult, PSIResult, ks_2samp, psi
from harness.stats.intervals import wilson_interval
from harness.stats.multiple import benjamini_hochberg, holm
from harness.stats.paired import (
    BootstrapCI,
    EffectSizes,
    PairedComparison,
    PairedTestResult,
    WilcoxonResult,
    WinTieLoss,
    as_paired,
    bootstrap_distribution,
    cohens_dz,
    compare_paired,
    effect_sizes,
    paired_bootstrap_ci,
    paired_bootstrap_test,
    paired_permutation_test,
    rank_biserial,
    relative_delta,
    wilcoxon_signed_rank,
    win_tie_loss,
)

__all__ = [
    "CLIP",
    "BootstrapCI",
    "CalibrationDrift",
    "CalibrationScores",
    "EffectSizes",
    "KSResult",
    "PSIResult",
    "PairedComparison",
    "PairedTestResult",
    "ReliabilityDiagram",
    "ScoreMapping",
    "WilcoxonResult",
    "WinTieLoss",
    "as_paired",
    "benjamini_hochberg",
    "bootstrap_distribution",
    "brier_score",
    "calibration_drift",
    "cohens_dz",
    "compare_paired",
    "effect_sizes",
    "expected_calibration_error",
    "fit_minmax",
    "fit_platt",
    "holm",
    "ks_2samp",
    "paired_bootstrap_ci",
    "paired_bootstrap_test",
    "paired_permutation_test",
    "psi",
    "rank_biserial",
    "relative_delta",
    "reliability_diagram",
    "scores_to_probabilities",
    "threshold_for_recall",
    "threshold_recall",
    "wilcoxon_signed_rank",
    "wilson_interval",
    "win_tie_loss",
]
