"""The record-based gate evaluation as it was before the columnar diff (kept as the oracle of
tests/diff/test_diff_columns.py): every rule read from the RunResult's records, one case at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from harness.aggregate import scored_mean
from harness.diff import Diff, DiffSettings, MetricDelta
from harness.gates import IMPLICIT_ERROR_RULE, SKIP_UNMEASURED, GateResult, Status, Unjudged, Verdict
from harness.types import GateRule, RunResult
from tests.diff.record_oracle.oracle_compute import compare

if TYPE_CHECKING:
    from harness.storage import Layout


# --- evaluation -----------------------------------------------------------------------------------------


def _segments(rule: GateRule, head: RunResult, base: RunResult | None = None) -> list[str | None]:
    """The segments a rule judges: for ``tag=*`` each value of the tag in the head run and in the base
    run (a segment whose cases all went from the head fails, it does not vanish)."""
    if rule.segment is None:
        return [None]
    if rule.segment.endswith("=*"):
        tag = rule.segment[:-2]
        runs = (head,) if base is None else (head, base)
        found: list[str | None] = [*sorted({f"{tag}={c.tags[tag]}" for r in runs for c in r.cases if tag in c.tags})]
        return found or [rule.segment]
    return [rule.segment]


def _segment_ids(head: RunResult, segment: str | None) -> list[str]:
    if segment is None:
        return [o.case_id for o in head.outputs]
    return [c.id for c in head.cases if segment in c.segments()]


def _values(head: RunResult, metric: str, ids: Sequence[str]) -> list[float | None]:
    vals = head.metric_values(metric)
    return [vals.get(i) for i in ids]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _significance(md: MetricDelta, alpha: float) -> tuple[bool, str]:
    """(significant, text) read from the diff's one family: never corrected again here."""
    if not md.in_family:
        why = "no case changed" if md.changed == 0 else (
            f"only {md.changed} case{'s' if md.changed != 1 else ''} changed, too few for any result to be "
            "significant")
        return False, f"not in the corrected family ({why})"
    sig = md.significant
    return sig, f"p_adj={_fmt(md.p_adjusted)}" + ("" if sig else f" (not significant at alpha {alpha})")


def _rule_results(rule: GateRule, head: RunResult, diff: Diff | None, segment: str | None,
                  allow_no_baseline: bool, base: RunResult | None = None) -> list[GateResult]:
    from harness.stats import wilson_interval

    label = rule.label
    out: list[GateResult] = []

    def res(status: Status, msg: str, observed: float | None = None, limit: float | None = None,
            unjudged: Unjudged | None = None) -> None:
        if unjudged is None and status == "fail" and msg.startswith("cannot judge"):
            unjudged = "unavailable"
        out.append(GateResult(rule=label, metric=rule.metric, segment=segment, status=status, observed=observed,
                              limit=limit, message=msg, unjudged=unjudged))

    ids = _segment_ids(head, segment)
    if not ids:
        in_base = "" if base is None or segment is None else f" ({len(_segment_ids(base, segment))} in base)"
        where = "the head run has no cases here" if segment is None else f"segment {segment} has no cases in head"
        res("fail", f"cannot judge: {where}{in_base}")
        return out
    if segment is not None and len(ids) < rule.min_segment_size:
        res("skip", f"segment has {len(ids)} cases, fewer than min_segment_size={rule.min_segment_size}")
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
    mean = scored_mean(scored)

    if rule.max_rate is not None:
        if not scored:
            res("fail", "cannot judge: no scored cases")
        elif any(v not in (0.0, 1.0) for v in scored):
            res("fail", f"cannot judge: max_rate needs a 0/1 per-case metric; {rule.metric} is not")
        else:
            k, n = int(sum(scored)), len(scored)
            upper = wilson_interval(k, n, rule.confidence)[1] if rule.wilson else k / n  # type: ignore[index]
            ok = upper <= rule.max_rate
            how = f"Wilson {round(rule.confidence * 100)}% upper bound" if rule.wilson else "rate"
            res("pass" if ok else "fail", f"{k}/{n} = {k / n:.3%}; {how} {upper:.3%} vs limit {rule.max_rate:.3%}",
                upper, rule.max_rate)

    for limit_value, is_floor in ((rule.min, True), (rule.max, False)):
        if limit_value is None:
            continue
        if mean is None:
            res("fail", "cannot judge: no scored cases")
        else:
            ok = mean >= limit_value if is_floor else mean <= limit_value
            res("pass" if ok else "fail", f"mean {_fmt(mean)} vs {'floor' if is_floor else 'ceiling'} {limit_value}",
                mean, limit_value)

    if rule.max_drop is not None or rule.max_abs_drop is not None:
        _drop_results(rule, diff, segment, allow_no_baseline, res)
    return out


def _drop_results(rule: GateRule, diff: Diff | None, segment: str | None, allow_no_baseline: bool,
                  emit: Callable[..., None]) -> None:
    if diff is None:
        if allow_no_baseline:
            emit("skip", "no baseline run to compare with (allowed by --allow-no-baseline)")
        else:
            emit("fail", "cannot judge: no baseline run to compare with; record one with `harness baseline promote` "
                 "(or pass --allow-no-baseline to skip drop rules)")
        return
    md = diff.metric(rule.metric, segment or "all")
    if md is None or md.delta is None or md.base_mean is None:
        emit("fail", f"cannot judge: {rule.metric} is not comparable with the baseline (no aligned scored cases)")
        return
    worsening = -md.delta if md.greater_is_better else md.delta
    if md.base_mean:
        rel: float = worsening / abs(md.base_mean)
    else:
        rel = float("inf") if worsening > 0 else 0.0
    significant, p_txt = _significance(md, diff.settings.alpha)
    counts = significant or not rule.require_significant
    for limit, observed, what in ((rule.max_drop, rel, "relative"), (rule.max_abs_drop, worsening, "absolute")):
        if limit is None:
            continue
        over = observed > limit
        # a drop over the limit is noise only if a test could have told: when too few cases changed for any
        # result to be significant, calling it noise would be a pass by default, so it cannot be judged
        unjudgeable = over and not counts and not md.in_family and md.changed > 0
        status: Status = "fail" if over and (counts or unjudgeable) else "pass"
        msg = (f"{what} drop {observed:+.2%} vs limit {limit:.2%}; {_fmt(md.base_mean)} -> "
               f"{_fmt(md.head_mean)}, n={md.n}, {p_txt}") if what == "relative" else (
               f"{what} drop {observed:+.4f} vs limit {limit}; {p_txt}")
        if unjudgeable:
            msg = ("cannot judge: " + msg + "; no test could tell this drop from noise: add cases, or set "
                   "require_significant = false to judge the drop as observed")
        elif over and not counts:
            msg += "; not counted: within noise"
        emit(status, msg, observed, limit, "untestable" if unjudgeable else None)


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
    results: list[GateResult] = []
    for rule in rules:
        rule_results: list[GateResult] = []
        for seg in _segments(rule, head, base):
            rule_results.extend(_rule_results(rule, head, diff, seg, allow_no_baseline, base))
        results.extend(rule_results)
        small = [r for r in rule_results if r.status == "skip"
                 and r.message.startswith(("segment has", SKIP_UNMEASURED))]
        if rule.max_skipped is not None and len(small) > rule.max_skipped:
            results.append(GateResult(
                rule=rule.label, metric=rule.metric, segment=rule.segment, status="fail", observed=float(len(small)),
                limit=float(rule.max_skipped),
                message=f"{len(small)} segments skipped for having fewer than {rule.min_segment_size} cases "
                f"({', '.join(str(r.segment) for r in small)}); max_skipped={rule.max_skipped}"))
    if not any(r.metric == "error_rate" and r.segment is None for r in rules):
        results.append(_implicit_error_rule(head))
    return Verdict(passed=not any(r.status == "fail" for r in results), results=tuple(results),
                   base_run=None if diff is None else diff.base_run, head_run=head.run_id, diff=diff)


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
