"""Service-level checks on one window (and segment) of stored production records.

The limits come from the manifest's ``[monitor.slo]`` table (:class:`harness.types.SLO`); the records are a
:data:`harness.monitor.schema.LOG_SCHEMA` table already cut to the window and segment being judged.

- **Latency** ``latency_s[stage][q]``: the observed quantile is numpy's default (``method="linear"``) over the
  window's records that logged ``stage`` in their ``latency`` map (``"total"`` is the map's ``"total"`` key):
  with the ``m`` values sorted, ``x_0 <= ... <= x_{m-1}``, and ``h = (m - 1) q``, the quantile is
  ``x_floor(h) + (h - floor(h)) (x_ceil(h) - x_floor(h))``. ``p50``/``p95``/``p99`` are ``q`` = 0.50, 0.95,
  0.99. Records without that stage (or with a non-finite value) are not counted. Pass when the quantile is at
  most the limit.
- **Error and timeout rates**: a record is an error when its ``error`` is not null, a timeout when
  ``timeout`` is true. The observed value is the *one-sided* Wilson score upper bound at ``confidence``
  (``z = Phi^-1(confidence)``; the upper end of the two-sided Wilson interval at level ``2 confidence - 1``),
  so a pass says "the rate is below the limit with that confidence"; the detail gives the point rate and the
  counts. Pass when the bound is at most the limit.
- **Fail closed**: fewer than ``min_records`` records (for latency: records that logged the stage) and the
  limit is ``not_judged`` with the reason, never a pass.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from harness.monitor.model import CheckStatus, SLOResult
from harness.stats.intervals import wilson_interval
from harness.types import SLO

QUANTILES: dict[str, float] = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
"""The latency quantiles an SLO may name, in report order."""


_ENTRY = pa.struct([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.float64())])


def stage_seconds(table: pa.Table) -> dict[str, npt.NDArray[np.float64]]:
    """Stage -> the finite latencies (seconds) of the records that logged it, in record order; "total"
    first, then the other stages sorted. One flattening of the ``latency`` maps for every stage."""
    if table.num_rows == 0:
        return {}
    lists = table.column("latency").combine_chunks().cast(pa.list_(_ENTRY))
    flat = pc.list_flatten(lists)
    enc = pc.dictionary_encode(pc.struct_field(flat, [0]))
    codes = np.asarray(enc.indices.to_numpy(), dtype=np.int64)
    values = np.asarray(pc.fill_null(pc.struct_field(flat, [1]), np.nan).to_numpy(), dtype=np.float64)
    keep = np.isfinite(values)
    codes, values = codes[keep], values[keep]
    names: list[str] = enc.dictionary.to_pylist()
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    by_code = {names[c]: values[order[bounds[c]:bounds[c + 1]]] for c in range(len(names))
               if bounds[c + 1] > bounds[c]}
    return {name: by_code[name] for name in sorted(by_code, key=lambda k: (k != "total", k))}


def latency_summary(table: pa.Table) -> dict[str, dict[str, float]]:
    """Stage -> {"p50", "p95", "p99"} (seconds, numpy's linear quantile over the records that logged the
    stage) for every stage logged in the window; stages no record logged are left out."""
    out: dict[str, dict[str, float]] = {}
    for stage, values in stage_seconds(table).items():
        qs = np.quantile(values, list(QUANTILES.values()))
        out[stage] = {name: float(v) for name, v in zip(QUANTILES, qs, strict=True)}
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _rate(limit: str, threshold: float, k: int, n: int, slo: SLO, window: str, segment: str,
          what: str) -> SLOResult:
    if n < slo.min_records:
        return SLOResult(window, segment, limit, threshold, None, n, "not_judged",
                         f"{n} records in the window, fewer than min_records={slo.min_records}")
    if slo.confidence <= 0.5:
        return SLOResult(window, segment, limit, threshold, None, n, "not_judged",
                         f"confidence {slo.confidence} gives no upper bound above the point rate (needs > 0.5)")
    interval = wilson_interval(k, n, 2 * slo.confidence - 1)
    assert interval is not None, "n >= min_records >= 1"
    upper = interval[1]
    status: CheckStatus = "pass" if upper <= threshold else "fail"
    detail = (f"{k} of {n} records {what} ({_pct(k / n)}); one-sided Wilson upper bound at "
              f"{slo.confidence:g}: {_pct(upper)}, limit {_pct(threshold)}")
    return SLOResult(window, segment, limit, threshold, upper, n, status, detail)


def evaluate_slo(table: pa.Table, slo: SLO, *, window: str, segment: str) -> list[SLOResult]:
    """Every limit of ``slo`` judged on ``table`` (one window's records in one segment): the latency
    quantiles per stage (in the SLO's stage order, quantiles p50, p95, p99), then the error rate and the
    timeout rate. Definitions in the module docstring; ``not_judged`` below ``slo.min_records``."""
    results: list[SLOResult] = []
    logged = stage_seconds(table) if slo.latency_s else {}
    for stage, limits in slo.latency_s.items():
        values = logged.get(stage, np.empty(0, dtype=np.float64))
        for q in sorted(limits, key=list(QUANTILES).index):
            label, threshold = f"latency {stage} {q}", float(limits[q])
            if values.size < slo.min_records:
                results.append(SLOResult(
                    window, segment, label, threshold, None, int(values.size), "not_judged",
                    f"{values.size} of {table.num_rows} records logged stage {stage!r}, "
                    f"fewer than min_records={slo.min_records}"))
                continue
            observed = float(np.quantile(values, QUANTILES[q]))
            status: CheckStatus = "pass" if observed <= threshold else "fail"
            results.append(SLOResult(
                window, segment, label, threshold, observed, int(values.size), status,
                f"{q} of {values.size} records that logged {stage!r}: {observed:.4g}s, limit {threshold:g}s"))
    n = table.num_rows
    if slo.error_rate is not None:
        k = n - table.column("error").null_count if n else 0
        results.append(_rate("error_rate", slo.error_rate, k, n, slo, window, segment, "logged an error"))
    if slo.timeout_rate is not None:
        k = int(pc.sum(pc.cast(table.column("timeout"), pa.int64())).as_py() or 0) if n else 0
        results.append(_rate("timeout_rate", slo.timeout_rate, k, n, slo, window, segment, "timed out"))
    return results
