"""How well a score separates supported from unsupported answers: AUROC, balanced accuracy, the
balanced-accuracy-optimal threshold, and a paired bootstrap interval of an AUROC difference."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _row_aurocs(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row (the last axis): the Mann-Whitney U of the positives, from scipy's average
    ranks (ties share a rank), over n_pos * n_neg; NaN for a row with only one class."""
    y = np.asarray(labels, dtype=bool)
    ranks = rankdata(np.asarray(scores, dtype=np.float64), axis=-1)
    n_pos = y.sum(axis=-1)
    n_neg = y.shape[-1] - n_pos
    u = np.where(y, ranks, 0.0).sum(axis=-1) - n_pos * (n_pos + 1) / 2
    both = (n_pos > 0) & (n_neg > 0)
    return np.where(both, u / np.where(both, n_pos * n_neg, 1), np.nan)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic with average ranks for ties; NaN when only one class
    is present."""
    return float(_row_aurocs(labels, scores))


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Mean of the true-positive and true-negative rates when ``scores >= threshold`` means supported."""
    y = np.asarray(labels, dtype=bool)
    pred = np.asarray(scores) >= threshold
    return float(((pred & y).sum() / max(y.sum(), 1) + (~pred & ~y).sum() / max((~y).sum(), 1)) / 2)


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold maximising balanced accuracy (midpoint between adjacent distinct scores)."""
    values = np.unique(scores)
    cands = np.concatenate([[values[0] - 1e-9], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-9]])
    accs = [balanced_accuracy(labels, scores, t) for t in cands]
    return float(cands[int(np.argmax(accs))])


def auroc_diff_ci(
    labels: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% paired percentile-bootstrap interval of AUROC(a) - AUROC(b) over resampled examples."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels, dtype=bool)
    idx = rng.integers(0, len(y), (n_boot, len(y)))  # one resample per row
    ys = y[idx]
    keep = ys.any(axis=1) & ~ys.all(axis=1)  # a resample with one class has no AUROC: skipped
    diffs = _row_aurocs(ys[keep], np.asarray(a)[idx[keep]]) - _row_aurocs(ys[keep], np.asarray(b)[idx[keep]])
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))
