"""Calibration of retrieval scores read as relevance probabilities, and score-threshold drift.

Retrievers return similarity scores (cosine, dot product, BM25), not probabilities: a cosine of 0.8
says nothing about the chance that the passage is relevant, and the scale moves whenever the
embedding model changes. Pipelines nevertheless threshold these scores ("keep passages above 0.75"),
so an embedding swap can silently change how much relevant context reaches the generator even when
rank metrics hardly move. This module measures that, with two explicit readings of a score:

* **raw**: the score clipped to ``[0, 1]``, as a naive threshold treats it
  (:func:`scores_to_probabilities` without a mapping). Its ECE/Brier say how far the raw scale is
  from a probability at all.
* **platt (fitted on base)**: a logistic map ``p = sigmoid(a * s + b)`` fitted by :func:`fit_platt`
  on the BASE run's (score, label) pairs and then applied unchanged to HEAD. If the head model
  shifts or stretches its score scale, the base-fitted map no longer fits and head's ECE/Brier
  rise. Refitting on head would hide exactly the drift we want to see.

:func:`calibration_drift` bundles both readings for base and head with the threshold check of
:func:`threshold_for_recall` / :func:`threshold_recall` ("the threshold that kept 90% of relevant
passages under base keeps 60% under head").

Labels are binary relevance (0/1 or bool); binarise graded judgments before calling.

**Real scores only.** Every input pair is a retrieved item with the score the retriever gave it. A
relevant item the retriever did not return has no score, and none may be invented for it: a
stand-in below every real score turns "the threshold that keeps 90%" into "a threshold below
everything retrieved" and reports it as keeping 100%. :func:`calibration_drift` takes such items as
a count (``base_unretrieved`` / ``head_unretrieved``) and reports the retrieved share of the
relevant items beside the threshold, which is read over the retrieved ones only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

BinStrategy = Literal["uniform", "quantile"]
MappingKind = Literal["linear", "platt"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ScoreMapping:
    """A fitted map from raw scores to probabilities.

    ``kind="linear"``: ``p = clip(slope * s + intercept, 0, 1)`` (identity clip, or min-max scaling).
    ``kind="platt"``: ``p = 1 / (1 + exp(-(slope * s + intercept)))`` (Platt 1999).
    """

    kind: MappingKind
    slope: float
    intercept: float

    def apply(self, scores: npt.ArrayLike) -> FloatArray:
        s = _scores(scores, "scores")
        z = self.slope * s + self.intercept
        if self.kind == "platt":
            return np.asarray(special.expit(z), dtype=np.float64)
        return np.clip(z, 0.0, 1.0)


CLIP = ScoreMapping("linear", 1.0, 0.0)
"""The identity mapping clipped to [0, 1]: raw scores read "as-is"."""


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin calibration of binary predictions; ``ece``/``mce`` are ``None`` when there are none.

    ``edges`` are the ``n_bins + 1`` bin edges (after merging duplicates for ``quantile``); bin ``k``
    is ``(edges[k], edges[k+1]]``, the first bin also holding ``edges[0]``. Empty bins have count 0
    and ``None`` confidence/frequency.
    """

    ece: float | None
    mce: float | None
    n: int
    strategy: BinStrategy
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    mean_probability: tuple[float | None, ...]
    positive_rate: tuple[float | None, ...]


@dataclass(frozen=True)
class CalibrationScores:
    """ECE and Brier score of one run under one score-to-probability reading."""

    ece: float | None
    brier: float | None


@dataclass(frozen=True)
class CalibrationDrift:
    """Calibration and threshold drift between a base and a head run's retrieval scores.

    Everything is computed over real (retrieved, scored) items only. ``raw_*`` read scores clipped
    to [0, 1]; ``platt_*`` apply ``platt`` (fitted on base) to both. ``threshold`` is the highest
    score that kept ``target_recall`` of base's retrieved relevant items
    (:func:`threshold_for_recall`); ``base_recall``/``head_recall`` are the fractions of each run's
    retrieved relevant items that the threshold keeps. ``base_relevant``/``head_relevant`` count all
    relevant items (retrieved or not) and ``*_retrieved_share`` the share of them that was retrieved
    at all: no threshold keeps an item that was never retrieved, so the share of all relevant items
    that reach past the threshold is ``retrieved_share * recall``. ``None`` where undefined (no
    items, no relevant items).
    """

    raw_base: CalibrationScores
    raw_head: CalibrationScores
    platt_base: CalibrationScores
    platt_head: CalibrationScores
    platt: ScoreMapping | None
    target_recall: float
    threshold: float | None
    base_recall: float | None
    head_recall: float | None
    base_relevant: int = 0
    head_relevant: int = 0
    base_retrieved_share: float | None = None
    head_retrieved_share: float | None = None


def _scores(x: npt.ArrayLike, name: str) -> FloatArray:
    a = np.array(x, dtype=np.float64, copy=True)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def _labels(y: npt.ArrayLike, size: int) -> FloatArray:
    lab = np.array(y, dtype=np.float64, copy=True)
    if lab.ndim != 1 or lab.size != size:
        raise ValueError(f"labels must be 1-D and aligned with the scores: got shape {lab.shape}, expected ({size},)")
    if not np.all((lab == 0) | (lab == 1)):
        raise ValueError("labels must be binary relevance (0/1 or bool); binarise graded judgments first")
    return lab


def _probs(p: npt.ArrayLike) -> FloatArray:
    a = _scores(p, "probs")
    if np.any((a < 0) | (a > 1)):
        raise ValueError("probs must lie in [0, 1]; map raw scores with scores_to_probabilities first")
    return a


def scores_to_probabilities(scores: npt.ArrayLike, mapping: ScoreMapping | None = None) -> FloatArray:
    """Read raw scores as probabilities through ``mapping`` (default :data:`CLIP`: clip to [0, 1]).

    Fitting and applying are separate on purpose: fit the mapping on the base run
    (:func:`fit_platt`, :func:`fit_minmax`) and apply the same mapping to head, so that a shift of
    head's score scale shows up as miscalibration instead of being fitted away.
    """
    return (mapping or CLIP).apply(scores)


def fit_minmax(scores: npt.ArrayLike) -> ScoreMapping:
    """Linear map sending ``min(scores)`` to 0 and ``max(scores)`` to 1 (clipped outside).

    Label-free, so it fixes the scale but not the calibration. Constant or empty scores map to 0.5.
    """
    s = _scores(scores, "scores")
    if s.size == 0 or s.max() == s.min():
        return ScoreMapping("linear", 0.0, 0.5)
    lo, hi = float(s.min()), float(s.max())
    return ScoreMapping("linear", 1.0 / (hi - lo), -lo / (hi - lo))


def fit_platt(scores: npt.ArrayLike, labels: npt.ArrayLike, *, max_iter: int = 100) -> ScoreMapping:
    """Platt (1999) scaling: fit ``p = sigmoid(a * s + b)`` by maximum likelihood.

    Uses Platt's regularised targets ``t+ = (N+ + 1) / (N+ + 2)`` and ``t- = 1 / (N- + 2)`` instead of
    1/0, which keeps the fit finite on separable data and with one class only, and Newton's method
    with backtracking (Lin, Lin & Weng 2007) from ``a = 0``, ``b = ln((N+ + 1) / (N- + 1))``.
    Deterministic. Raises ``ValueError`` on empty input.
    """
    s = _scores(scores, "scores")
    y = _labels(labels, s.size)
    if s.size == 0:
        raise ValueError("fit_platt needs at least one (score, label) pair")
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = np.column_stack([s, np.ones_like(s)])
    w = np.array([0.0, math.log((n_pos + 1) / (n_neg + 1))])

    def loss(v: FloatArray) -> float:
        z = x @ v
        # -sum t*log(sigmoid(z)) + (1-t)*log(1-sigmoid(z)), stably
        return float(np.sum(np.logaddexp(0.0, z) - t * z))

    f = loss(w)
    for _ in range(max_iter):
        p = special.expit(x @ w)
        grad = x.T @ (p - t)
        if float(np.max(np.abs(grad))) < 1e-10 * max(1.0, float(s.size)):
            break
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-10:
            cand = w - scale * step
            f_cand = loss(cand)
            if f_cand <= f - 1e-4 * scale * float(grad @ step):
                break
            scale /= 2
        else:
            break
        w, f = cand, f_cand
    return ScoreMapping("platt", float(w[0]), float(w[1]))


def brier_score(probs: npt.ArrayLike, labels: npt.ArrayLike) -> float | None:
    """Brier (1950) score ``mean((p - y)^2)`` for binary labels; 0 is perfect. ``None`` when empty."""
    p = _probs(probs)
    y = _labels(labels, p.size)
    if p.size == 0:
        return None
    return float(np.mean((p - y) ** 2))


def reliability_diagram(
    probs: npt.ArrayLike, labels: npt.ArrayLike, *, n_bins: int = 10, strategy: BinStrategy = "uniform"
) -> ReliabilityDiagram:
    """Bin predictions and compare mean predicted probability with the observed positive rate.

    ``strategy="uniform"``: ``n_bins`` equal-width bins on [0, 1] (Guo et al. 2017).
    ``strategy="quantile"``: equal-mass bins at the quantiles of ``probs`` (observed values,
    ``method="inverted_cdf"``; duplicate edges from ties are merged, so fewer bins may result).
    Bins are right-closed, ``(e_k, e_{k+1}]``, as in Guo et al.; the lowest edge belongs to the first
    bin. See :func:`expected_calibration_error` for the summary.
    """
    p = _probs(probs)
    y = _labels(labels, p.size)
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy not in ("uniform", "quantile"):
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif p.size == 0:
        edges = np.array([0.0, 1.0])
    else:
        inner = np.quantile(p, np.arange(1, n_bins) / n_bins, method="inverted_cdf")
        edges = np.unique(np.concatenate([[p.min()], inner, [p.max()]]))
        if edges.size == 1:
            edges = np.array([edges[0], edges[0]])
    k = edges.size - 1
    which = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, k - 1)
    counts = np.bincount(which, minlength=k)
    sum_p = np.bincount(which, weights=p, minlength=k)
    sum_y = np.bincount(which, weights=y, minlength=k)
    nonempty = counts > 0
    conf = np.divide(sum_p, counts, out=np.zeros(k), where=nonempty)
    freq = np.divide(sum_y, counts, out=np.zeros(k), where=nonempty)
    gaps = np.abs(freq - conf)
    ece = float(np.sum(counts * gaps) / p.size) if p.size else None
    mce = float(np.max(gaps[nonempty])) if p.size else None
    return ReliabilityDiagram(
        ece=ece,
        mce=mce,
        n=int(p.size),
        strategy=strategy,
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        mean_probability=tuple(float(c) if ne else None for c, ne in zip(conf, nonempty, strict=True)),
        positive_rate=tuple(float(f) if ne else None for f, ne in zip(freq, nonempty, strict=True)),
    )


def expected_calibration_error(
    probs: npt.ArrayLike, labels: npt.ArrayLike, *, n_bins: int = 10, strategy: BinStrategy = "uniform"
) -> float | None:
    """Expected calibration error (Naeini et al. 2015; Guo et al. 2017, eq. 3) of relevance probabilities.

    ::

        ECE = sum_k |B_k| / n * | mean(y in B_k) - mean(p in B_k) |

    Guo et al. bin the top-label confidence of a classifier; here the prediction *is* the probability
    of the positive class (relevant), so bins hold ``p`` itself and the observed frequency is the
    fraction of relevant items in the bin. Binning as in :func:`reliability_diagram`. ``None`` when empty.
    """
    return reliability_diagram(probs, labels, n_bins=n_bins, strategy=strategy).ece


def threshold_recall(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> float | None:
    """Fraction of relevant items (label 1) whose score is ``>= threshold``; ``None`` if none are relevant."""
    s = _scores(scores, "scores")
    y = _labels(labels, s.size)
    rel = s[y == 1]
    if rel.size == 0:
        return None
    return float(np.count_nonzero(rel >= threshold) / rel.size)


def threshold_for_recall(scores: npt.ArrayLike, labels: npt.ArrayLike, target_recall: float = 0.9) -> float | None:
    """The highest threshold ``t`` with ``threshold_recall(scores, labels, t) >= target_recall``.

    It is the ``ceil(target * R)``-th highest score among the ``R`` relevant items (ties at ``t`` are
    all kept, so the achieved recall can exceed the target). ``None`` if no item is relevant.
    """
    s = _scores(scores, "scores")
    y = _labels(labels, s.size)
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}")
    rel = np.sort(s[y == 1])[::-1]
    if rel.size == 0:
        return None
    k = min(rel.size, max(1, math.ceil(target_recall * rel.size - 1e-9)))
    return float(rel[k - 1])


def _calibration(probs: FloatArray, labels: FloatArray, n_bins: int, strategy: BinStrategy) -> CalibrationScores:
    return CalibrationScores(
        ece=expected_calibration_error(probs, labels, n_bins=n_bins, strategy=strategy),
        brier=brier_score(probs, labels),
    )


def calibration_drift(
    base_scores: npt.ArrayLike,
    base_labels: npt.ArrayLike,
    head_scores: npt.ArrayLike,
    head_labels: npt.ArrayLike,
    *,
    n_bins: int = 10,
    strategy: BinStrategy = "uniform",
    target_recall: float = 0.9,
    base_unretrieved: int = 0,
    head_unretrieved: int = 0,
) -> CalibrationDrift:
    """Calibration (raw and base-fitted Platt) and threshold recall of head against base.

    Inputs are flat (score, binary label) pairs of retrieved items with their real scores, e.g.
    every top-k (query, passage) pair with its judgment; ``*_unretrieved`` count the relevant items
    each run did not retrieve (they have no score, so they enter only the retrieved share). The
    Platt map and the recall threshold are both fitted on base only and applied to head unchanged
    (see the module docstring for why).
    """
    bs = _scores(base_scores, "base_scores")
    by = _labels(base_labels, bs.size)
    hs = _scores(head_scores, "head_scores")
    hy = _labels(head_labels, hs.size)
    base_relevant = int(by.sum()) + _count(base_unretrieved, "base_unretrieved")
    head_relevant = int(hy.sum()) + _count(head_unretrieved, "head_unretrieved")
    platt = fit_platt(bs, by) if bs.size else None
    empty = CalibrationScores(None, None)
    threshold = threshold_for_recall(bs, by, target_recall)
    return CalibrationDrift(
        raw_base=_calibration(CLIP.apply(bs), by, n_bins, strategy),
        raw_head=_calibration(CLIP.apply(hs), hy, n_bins, strategy),
        platt_base=_calibration(platt.apply(bs), by, n_bins, strategy) if platt else empty,
        platt_head=_calibration(platt.apply(hs), hy, n_bins, strategy) if platt else empty,
        platt=platt,
        target_recall=target_recall,
        threshold=threshold,
        base_recall=threshold_recall(bs, by, threshold) if threshold is not None else None,
        head_recall=threshold_recall(hs, hy, threshold) if threshold is not None else None,
        base_relevant=base_relevant,
        head_relevant=head_relevant,
        base_retrieved_share=float(by.sum()) / base_relevant if base_relevant else None,
        head_retrieved_share=float(hy.sum()) / head_relevant if head_relevant else None,
    )


def _count(n: int, name: str) -> int:
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"{name} must be a non-negative integer count, got {n!r}")
    return int(n)
