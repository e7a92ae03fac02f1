"""Confidence intervals for proportions (pass rates of validators, instruction checks, gates)."""

from __future__ import annotations

import math

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
