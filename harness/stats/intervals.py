"""Confidence intervals for proportions (pass rates of validators, instruction checks, gates)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import special


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson (1927) score interval for a binomial proportion, without continuity correction.

    With ``p = k / n`` and ``z = Phi^-1(1 - (1 - confidence) / 2)``::

        centre    = (p + z^2 / (2n)) / (1 + z^2 / n)
        halfwidth = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))

    Unlike the Wald interval it stays inside ``[0, 1]`` and is not degenerate at ``k = 0`` or
    ``k = n``. Equals ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")``.
    Returns ``None`` when ``n == 0`` (no trials, no interval).
    """
    if isinstance(successes, bool) or isinstance(n, bool):
        raise TypeError("successes and n must be integers, not booleans")
    if int(successes) != successes or int(n) != n:
        raise ValueError(f"successes and n must be integers, got {successes!r} and {n!r}")
    k, n = int(successes), int(n)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n == 0:
        return None
    z = float(special.ndtri(1 - (1 - confidence) / 2))
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def normal_interval(estimate: float, standard_error: float, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided normal (Wald) interval ``estimate +- z * standard_error``, ``z = Phi^-1(1 - alpha/2)``.

    The large-sample limit of a bootstrap percentile (or BCa) interval of a mean: used by
    :func:`harness.stats.paired_bootstrap_ci` above ``harness.stats.paired.LARGE_N`` pairs, with the
    bootstrap distribution's own standard error ``sd(d, ddof=0) / sqrt(n)``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not (math.isfinite(estimate) and math.isfinite(standard_error)) or standard_error < 0:
        raise ValueError(
            f"need a finite estimate and a finite standard error >= 0, got {estimate!r}, {standard_error!r}"
        )
    half = float(special.ndtri(1 - (1 - confidence) / 2)) * standard_error
    return estimate - half, estimate + half


def median_order_statistic_interval(
    sorted_values: Sequence[float] | npt.NDArray[np.float64], confidence: float = 0.95
) -> tuple[float, float]:
    """Large-sample distribution-free CI of a median from the order statistics of ``sorted_values``.

    The number of values below the population median is Binomial(n, 1/2); its normal limit gives the
    1-based ranks ``l = floor(n/2 - z sqrt(n)/2)`` and ``u = ceil(n/2 + z sqrt(n)/2)`` (clipped to
    ``1..n``), and the interval ``[x_(l), x_(u)]``. The bootstrap distribution of the sample median has
    the same limit, so this is its analogue above ``harness.stats.paired.LARGE_N`` pairs.
    ``sorted_values`` must be sorted ascending and non-empty.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    n = len(sorted_values)
    if n == 0:
        raise ValueError("median_order_statistic_interval needs at least one value")
    z = float(special.ndtri(1 - (1 - confidence) / 2))
    half = z * math.sqrt(n) / 2
    lo = min(max(math.floor(n / 2 - half), 1), n)
    hi = min(max(math.ceil(n / 2 + half), 1), n)
    return float(sorted_values[lo - 1]), float(sorted_values[hi - 1])
