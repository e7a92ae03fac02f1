"""Distribution shift between two samples (e.g. retrieval scores or per-case metric values of base vs head).

:func:`psi` summarises how much mass moved between bins fixed by the *expected* (base) sample;
:func:`ks_2samp` is the two-sample Kolmogorov-Smirnov test. Neither needs the samples to be aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

Binning = Literal["quantile", "uniform"]


@dataclass(frozen=True)
class PSIResult:
    """Population stability index with its per-bin breakdown.

    ``edges`` are the interior bin edges (the outer bins are open to -inf/+inf); bin ``k`` is
    ``(edges[k-1], edges[k]]``. ``expected_fractions``/``actual_fractions`` are the raw fractions,
    before the ``eps`` floor used inside the logarithm. ``psi`` is ``None`` when either sample is empty.
    """

    psi: float | None
    n_bins: int
    edges: tuple[float, ...]
    expected_fractions: tuple[float, ...]
    actual_fractions: tuple[float, ...]
    n_expected: int
    n_actual: int


@dataclass(frozen=True)
class KSResult:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (``None`` when a sample is empty)."""

    statistic: float | None
    p_value: float | None
    n_a: int
    n_b: int


def _sample(x: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    a = np.array(x, dtype=np.float64, copy=True).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; drop unscored (None/NaN) values first")
    return a


def psi(
    expected: npt.ArrayLike,
    actual: npt.ArrayLike,
    *,
    bins: int = 10,
    binning: Binning = "quantile",
    eps: float = 1e-6,
) -> PSIResult:
    """Population stability index of ``actual`` against ``expected`` (Yurdakul 2018; Siddiqi 2006).

    ::

        PSI = sum_k (a_k - e_k) * ln(a_k / e_k)

    where ``e_k``/``a_k`` are the fractions of each sample in bin ``k``, floored at ``eps`` so that an
    empty bin contributes a large but finite term. It is the symmetrised KL divergence
    ``KL(a||e) + KL(e||a)`` of the binned distributions: 0 for identical fractions, always >= 0.
    Usual reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.

    Bins are fixed by the expected sample only:

    * ``binning="quantile"``: interior edges at the ``1/bins, ..., (bins-1)/bins`` quantiles of
      ``expected``, taken as observed values (``method="inverted_cdf"``: the smallest ``x`` with
      ``F(x) >= q``), so each bin holds ~1/bins of the expected mass and no edge falls between two
      tied values of a discrete sample;
    * ``binning="uniform"``: ``bins - 1`` equally spaced interior edges between min and max of
      ``expected``.

    Bins are right-closed, ``(edge_{k-1}, edge_k]``, with the outer bins open to -inf/+inf, so values
    of ``actual`` outside the expected range still land in a bin. Duplicate edges (ties in
    ``expected``, e.g. many per-case scores of exactly 0 or 1) are merged, so a tied value is never
    split across bins and fewer than ``bins`` bins may result (``n_bins`` reports how many). A constant
    expected sample therefore gives two bins, ``(-inf, c]`` and ``(c, inf)``.
    """
    e = _sample(expected, "expected")
    a = _sample(actual, "actual")
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    if binning not in ("quantile", "uniform"):
        raise ValueError(f"binning must be 'quantile' or 'uniform', got {binning!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if e.size == 0 or a.size == 0:
        return PSIResult(None, 0, (), (), (), int(e.size), int(a.size))
    if binning == "quantile":
        raw = np.quantile(e, np.arange(1, bins) / bins, method="inverted_cdf")
    else:
        lo, hi = float(e.min()), float(e.max())
        raw = np.linspace(lo, hi, bins + 1)[1:-1] if hi > lo else np.array([lo])
    edges = np.unique(raw)
    k = edges.size + 1
    e_frac = np.bincount(np.searchsorted(edges, e, side="left"), minlength=k) / e.size
    a_frac = np.bincount(np.searchsorted(edges, a, side="left"), minlength=k) / a.size
    ef = np.maximum(e_frac, eps)
    af = np.maximum(a_frac, eps)
    value = float(np.sum((af - ef) * np.log(af / ef)))
    return PSIResult(
        psi=value,
        n_bins=k,
        edges=tuple(float(x) for x in edges),
        expected_fractions=tuple(float(x) for x in e_frac),
        actual_fractions=tuple(float(x) for x in a_frac),
        n_expected=int(e.size),
        n_actual=int(a.size),
    )


def ks_2samp(a: npt.ArrayLike, b: npt.ArrayLike, *, alternative: str = "two-sided") -> KSResult:
    """Two-sample Kolmogorov-Smirnov test: a wrapper over ``scipy.stats.ks_2samp`` (``method="auto"``).

    The statistic is ``sup_x |F_a(x) - F_b(x)|`` of the empirical CDFs; scipy computes the exact
    p-value for small samples and the asymptotic one otherwise. Empty samples give ``None``.
    """
    x = _sample(a, "a")
    y = _sample(b, "b")
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    if x.size == 0 or y.size == 0:
        return KSResult(None, None, int(x.size), int(y.size))
    res = sps.ks_2samp(x, y, alternative=alternative)
    return KSResult(float(res.statistic), float(min(max(res.pvalue, 0.0), 1.0)), int(x.size), int(y.size))
