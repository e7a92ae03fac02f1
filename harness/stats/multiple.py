"""Multiple-comparison corrections for the many metric x segment tests of one diff.

A diff tests every metric in every segment; at ``alpha=0.05`` twenty independent null comparisons
flag one "regression" on average. Gates therefore decide on adjusted p-values:

* :func:`holm` controls the family-wise error rate (the chance of any false alarm) — use it for
  gates that fail a build.
* :func:`benjamini_hochberg` controls the false discovery rate — use it to rank what to look at in
  a long report.

Both accept ``None`` entries (comparisons with no p-value, e.g. no scored pairs): they are left out
of the family (``m`` counts only real p-values) and returned as ``None`` in place. Results equal
``statsmodels.stats.multitest.multipletests(method="holm" / "fdr_bh")[1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _collect(pvalues: Sequence[float | None]) -> tuple[list[int], np.ndarray]:
    idx: list[int] = []
    vals: list[float] = []
    for i, p in enumerate(pvalues):
        if p is None:
            continue
        v = float(p)
        if math.isnan(v) or not 0.0 <= v <= 1.0:
            raise ValueError(f"p-value #{i} is {p!r}; p-values must be in [0, 1] (use None for 'no p-value')")
        idx.append(i)
        vals.append(v)
    return idx, np.asarray(vals, dtype=np.float64)


def _place(n: int, idx: list[int], adjusted: np.ndarray) -> tuple[float | None, ...]:
    out: list[float | None] = [None] * n
    for i, v in zip(idx, adjusted, strict=True):
        out[i] = float(v)
    return tuple(out)


def holm(pvalues: Sequence[float | None]) -> tuple[float | None, ...]:
    """Holm (1979) step-down adjusted p-values.

    With the ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``::

        adj_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j))

    Rejecting every hypothesis with ``adj <= alpha`` controls the family-wise error rate at ``alpha``
    under any dependence between the tests. Ties keep their input order (a stable sort), which does not
    change the adjusted values.
    """
    idx, p = _collect(pvalues)
    m = p.size
    if m == 0:
        return _place(len(pvalues), idx, p)
    order = np.argsort(p, kind="stable")
    factors = m - np.arange(m)
    adj_sorted = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    adj = np.empty(m, dtype=np.float64)
    adj[order] = adj_sorted
    return _place(len(pvalues), idx, adj)


def benjamini_hochberg(pvalues: Sequence[float | None]) -> tuple[float | None, ...]:
    """Benjamini & Hochberg (1995) step-up adjusted p-values (q-values).

    With the ``m`` p-values sorted ascending::

        adj_(i) = min_{j >= i} min(1, m / j * p_(j))

    Rejecting every hypothesis with ``adj <= q`` controls the false discovery rate at ``q`` for
    independent or positively dependent tests.
    """
    idx, p = _collect(pvalues)
    m = p.size
    if m == 0:
        return _place(len(pvalues), idx, p)
    order = np.argsort(p, kind="stable")
    ranks = np.arange(1, m + 1)
    scaled = p[order] * m / ranks
    adj_sorted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    adj = np.empty(m, dtype=np.float64)
    adj[order] = adj_sorted
    return _place(len(pvalues), idx, adj)


def sign_flip_min_p(n_changed: int) -> float:
    """Smallest two-sided p-value a paired sign-flip (or exact signed-rank) test can reach with
    ``n_changed`` non-zero differences: every difference the same sign, ``2 / 2**n`` (1 when n = 0)."""
    return 1.0 if n_changed <= 0 else min(1.0, 2.0 ** (1 - n_changed))


def tarone_family(min_pvalues: Sequence[float], alpha: float) -> tuple[bool, ...]:
    """Which tests belong to the corrected family (Tarone 1990, "A modified Bonferroni method for
    discrete data", Biometrics 46:1079).

    A discrete test whose smallest attainable p-value exceeds the per-test threshold can never be
    rejected, so counting it in ``m`` only takes power from the tests that can. Tarone's ``K`` is the
    smallest integer with ``#{i : min_p_i <= alpha / K} <= K``; the family is those tests. A test that
    cannot vary at all (min p = 1) never belongs. Because the attainable minimum depends only on the
    absolute differences, which sign-flip permutations leave unchanged, the family is fixed under the
    null, and Holm or Benjamini-Hochberg inside it keep their guarantees.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    mins = [float(p) for p in min_pvalues]
    for k in range(1, len(mins) + 1):
        chosen = tuple(p <= alpha / k for p in mins)
        if sum(chosen) <= k:
            return chosen
    return tuple(False for _ in mins)
