"""The record-based gate evaluation as it was before the columnar diff (kept as the oracle of
tests/diff/test_diff_columns.py): every rule's inputs read from the RunResult's records, one case at a time
(segments, the values a rule judges, latencies, the errored cases). What the columnar rewrite left unchanged is
harness's own: the result records, the segment-size, max_rate/min/max and drop checks on those inputs, and the
verdict over the rules (:mod:`harness.gates`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from harness.aggregate import scored_mean
from harness.diff import Diff, DiffSettings
from harness.gates import (
    IMPLICIT_ERROR_RULE,
    SKIP_UNMEASURED,
    GateResult,
    Verdict,
    _drop_results,
    _emitter,
    _judge,
    _limit_results,
    _rule_segments,
    _size_results,
)
from harness.types import GateRule, RunResult
from tests.diff.record_oracle.oracle_compute import compare

if TYPE_CHECKING:
    from harness.storage import Layout


# --- evaluation -----------------------------------------------------------------------------------------


def _segments(rule: GateRule, head: RunResult, base: RunResult | None = None) -> list[str | None]:
    """The segments a rule judges: for ``tag=*`` each value of the tag in the head run and in the base
    run (a segment whose cases all went from the head fails, it does not vanish)."""
    runs = (head,) if base is None else (head, base)
    return _rule_segments(rule, lambda tag: {c.tags[tag] for r in runs for c in r.cases if tag in c.tags})


def _segment_ids(head: RunResult, segment: str | None) -> list[str]:
    if segment is None:
        return [o.case_id for o in head.outputs]
    return [c.id for c in head.cases if segment in c.segments()]


def _values(head: RunResult, metric: str, ids: Sequence[str]) -> list[float | None]:
    vals = head.metric_values(metric)
    return [vals.get(i) for i in ids]


def _rule_results(rule: GateRule, head: RunResult, diff: Diff | None, segment: str | None,
                  allow_no_baseline: bool, base: RunResult | None = None) -> list[GateResult]:
    out: list[GateResult] = []
    res = _emitter(rule, segment, out)
    ids = _segment_ids(head, segment)
    in_base = None if ids or base is None or segment is None else len(_segment_ids(base, segment))
    if _size_results(rule, segment, len(ids), in_base, res):
        return out

    if rule.metric == "latency":
        if rule.stage is None or rule.max_seconds is None:  # GateRule's validator rejects this at load
            res("fail", "cannot judge: a latency rule needs stage and max_seconds")
            return out
        idset = set(ids)
        recorded = [o for o in head.outputs if o.case_id in idset and rule.stage in o.latency_s]
        if not recorded:
            res("fail", f"cannot judge: no latency recorded for stage {rule.stage!r}")
            return out
        lat = [o.latency_s[rule.stage] for o in recorded if not o.cache_hits.get(rule.stage, False)]
        if not lat:
            res("skip", f"{SKIP_UNMEASURED}: all {len(recorded)} served from cache (stage {rule.stage}); "
                "run with a cold cache to measure latency")
            return out
        q = float(np.quantile(lat, rule.quantile))
        ok = q <= rule.max_seconds
        cached = len(recorded) - len(lat)
        res("pass" if ok else "fail", f"p{round(rule.quantile * 100)} {rule.stage} latency {q:.3f}s over "
            f"{len(lat)} measured cases (limit {rule.max_seconds}s; {cached} served from cache not counted)",
            q, rule.max_seconds)
        return out

    if rule.metric == "error_rate":
        idset = set(ids)
        flags: list[float | None] = [float(bool(o.error)) for o in head.outputs if o.case_id in idset]
    elif rule.metric == "unscored_rate":
        idset = set(ids)
        flags = [float(s.value is None) for s in head.scores if s.case_id in idset]
    else:
        flags = _values(head, rule.metric, ids)
        if rule.metric not in head.aggregates.overall:
            res("fail", f"cannot judge: metric {rule.metric!r} is not in the head run")
            return out
        if all(v is None for v in flags):
            res("fail", f"cannot judge: {rule.metric} is unscored for every case here")
            return out
    scored = [v for v in flags if v is not None]
    _limit_results(rule, np.array(scored, dtype=float), scored_mean(scored), res)
    if rule.max_drop is not None or rule.max_abs_drop is not None:
        _drop_results(rule, diff, segment, allow_no_baseline, res)
    return out


def _implicit_error_rule(head: RunResult) -> GateResult:
    """Errored cases fail the gate unless an ``error_rate`` rule says how many may error."""
    errored = [(o.case_id, o.error) for o in head.outputs if o.error is not None]
    n = len(head.outputs)
    if not errored:
        return GateResult(rule=IMPLICIT_ERROR_RULE, metric="error_rate", status="pass", observed=0.0, limit=0.0,
                          message=f"0/{n} cases errored")
    kinds: dict[str, list[str]] = {}
    for case_id, error in errored:
        kinds.setdefault(error.kind, []).append(case_id)
    parts = [f"{k}: {len(v)} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})" for k, v in sorted(kinds.items())]
    first_id, first = errored[0]
    return GateResult(rule=IMPLICIT_ERROR_RULE, metric="error_rate", status="fail", observed=len(errored) / n,
                      limit=0.0, message=f"{len(errored)}/{n} cases errored; {'; '.join(parts)}; first: "
                      f"{first_id}: {first.message}; add an error_rate rule to allow some")


def evaluate_gates(rules: Sequence[GateRule], head: RunResult, diff: Diff | None, *,
                   allow_no_baseline: bool = False, base: RunResult | None = None) -> Verdict:
    """Apply ``rules`` to ``head`` and its ``diff`` against the baseline (None: there is no baseline).

    Significance comes from the diff as computed (its one family); a drop rule without a baseline
    fails unless ``allow_no_baseline``. ``base`` (the baseline run) adds its segments to ``tag=*``
    rules, so a segment missing from the head fails. Each rule's skipped segments (too small, or a
    latency nothing measured) count against its ``max_skipped``."""
    return _judge(rules, diff, head.run_id,
                  lambda rule: [r for seg in _segments(rule, head, base)
                                for r in _rule_results(rule, head, diff, seg, allow_no_baseline, base)],
                  lambda: _implicit_error_rule(head))


def gate(rules: Sequence[GateRule], head: RunResult, base: RunResult | None, *, settings: DiffSettings | None = None,
         layout: Layout | None = None, allow_no_baseline: bool = False) -> Verdict:
    """The release gate every front end runs (``harness gate``, ``harness baseline promote``, the pytest
    plugin): compare ``head`` with ``base`` (:func:`harness.diff.compare`; no diff when ``base`` is None)
    and apply ``rules`` (:func:`evaluate_gates`). With no baseline a drop rule fails as unjudgeable
    unless ``allow_no_baseline``; the other rules judge the head run alone. The caller resolves the
    base (:func:`harness.baseline.resolve_base`) and checks the rules (:func:`check_gate_config`) before
    anything runs. ``verdict.diff`` is the comparison judged."""
    diff = None if base is None else compare(base, head, settings, layout)
    return evaluate_gates(rules, head, diff, allow_no_baseline=allow_no_baseline, base=base)
