"""Release gates: evaluate the manifest's rules on a head run and its diff against the baseline.

Each rule yields pass, fail or skip (with the reason: no baseline, segment too small, metric
absent). The verdict fails if any rule fails. Drops count only when significant after the diff's
correction (unless a rule says otherwise); failure rates are judged on their Wilson upper bound, so
3 failures in 40 cases do not pass a 1% limit by luck of a small sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from harness.aggregate import scored_mean
from harness.diff import Diff, MetricDelta
from harness.manifest import GateRule
from harness.types import Frozen, RunResult

Status = Literal["pass", "fail", "skip"]


class GateResult(Frozen):
    rule: str
    metric: str
    segment: str | None = None
    status: Status
    observed: float | None = None
    limit: float | None = None
    message: str


class Verdict(Frozen):
    passed: bool
    results: tuple[GateResult, ...]
    base_run: str | None
    head_run: str

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if r.status == "fail"]


def _segments(rule: GateRule, head: RunResult) -> list[str | None]:
    if rule.segment is None:
        return [None]
    if rule.segment.endswith("=*"):
        tag = rule.segment[:-2]
        found: list[str | None] = [*sorted({f"{tag}={c.tags[tag]}" for c in head.cases if tag in c.tags})]
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


def gate_family(rules: Sequence[GateRule], head: RunResult, diff: Diff | None) -> dict[tuple[str, str], float | None]:
    """Adjusted p-values over exactly the tests the drop rules act on.

    The diff corrects across every metric x segment it reports; a gate's false-alarm rate is about the
    decisions it makes, so its family is the (metric, segment) pairs its drop rules read, corrected with
    the diff's method. Fewer, pre-declared hypotheses keep the family-wise error rate at alpha while
    leaving small segments a chance to reach significance.
    """
    from harness.stats import benjamini_hochberg, holm

    if diff is None:
        return {}
    keys: list[tuple[str, str]] = []
    for rule in rules:
        if rule.max_drop is None and rule.max_abs_drop is None:
            continue
        for seg in _segments(rule, head):
            key = (rule.metric, seg or "all")
            md = diff.metric(*key)
            if md is not None and md.p_value is not None and key not in keys:
                if seg is not None and len(_segment_ids(head, seg)) < rule.min_segment_size:
                    continue
                keys.append(key)
    raw: list[float | None] = []
    for k in keys:
        md = diff.metric(*k)
        raw.append(None if md is None else md.p_value)
    method = diff.settings.correction
    adjusted = holm(raw) if method == "holm" else benjamini_hochberg(raw) if method == "bh" else tuple(raw)
    return dict(zip(keys, adjusted, strict=True))


def _rule_results(rule: GateRule, head: RunResult, diff: Diff | None, segment: str | None,
                  family: dict[tuple[str, str], float | None]) -> list[GateResult]:
    from harness.stats import wilson_interval

    label = rule.label
    out: list[GateResult] = []

    def res(status: Status, msg: str, observed: float | None = None, limit: float | None = None) -> None:
        out.append(GateResult(rule=label, metric=rule.metric, segment=segment, status=status, observed=observed,
                              limit=limit, message=msg))

    ids = _segment_ids(head, segment)
    if segment is not None and len(ids) < rule.min_segment_size:
        res("skip", f"segment has {len(ids)} cases, fewer than min_segment_size={rule.min_segment_size}")
        return out

    if rule.metric == "latency":
        if rule.stage is None or rule.max_seconds is None:
            res("skip", "a latency rule needs stage and max_seconds")
            return out
        idset = set(ids)
        lat = [o.latency_s[rule.stage] for o in head.outputs if o.case_id in idset and rule.stage in o.latency_s]
        if not lat:
            res("skip", f"no latency recorded for stage {rule.stage!r}")
            return out
        q = float(np.quantile(lat, rule.quantile))
        ok = q <= rule.max_seconds
        res("pass" if ok else "fail", f"p{round(rule.quantile * 100)} {rule.stage} latency {q:.3f}s "
            f"(limit {rule.max_seconds}s; cached cases count 0s)", q, rule.max_seconds)
        return out

    if rule.metric == "error_rate":
        idset = set(ids)
        flags: list[float | None] = [float(bool(o.error)) for o in head.outputs if o.case_id in idset]
    elif rule.metric == "unscored_rate":
        idset = set(ids)
        flags = [float(s.value is None) for s in head.scores if s.case_id in idset]
    else:
        flags = _values(head, rule.metric, ids)
        if all(v is None for v in flags) and rule.metric not in head.aggregates.overall:
            res("skip", f"metric {rule.metric!r} is not in the head run")
            return out
    scored = [v for v in flags if v is not None]
    mean = scored_mean(scored)

    if rule.max_rate is not None:
        if not scored:
            res("skip", "no scored cases")
        elif any(v not in (0.0, 1.0) for v in scored):
            res("skip", f"max_rate needs a 0/1 per-case metric; {rule.metric} is not")
        else:
            k, n = int(sum(scored)), len(scored)
            upper = wilson_interval(k, n, rule.confidence)[1] if rule.wilson else k / n  # type: ignore[index]
            ok = upper <= rule.max_rate
            how = f"Wilson {round(rule.confidence * 100)}% upper bound" if rule.wilson else "rate"
            res("pass" if ok else "fail", f"{k}/{n} = {k / n:.3%}; {how} {upper:.3%} vs limit {rule.max_rate:.3%}",
                upper, rule.max_rate)

    if rule.min is not None:
        if mean is None:
            res("skip", "no scored cases")
        else:
            res("pass" if mean >= rule.min else "fail", f"mean {_fmt(mean)} vs floor {rule.min}", mean, rule.min)
    if rule.max is not None:
        if mean is None:
            res("skip", "no scored cases")
        else:
            res("pass" if mean <= rule.max else "fail", f"mean {_fmt(mean)} vs ceiling {rule.max}", mean, rule.max)

    if rule.max_drop is not None or rule.max_abs_drop is not None:
        md: MetricDelta | None = None if diff is None else diff.metric(rule.metric, segment or "all")
        if diff is None:
            res("skip", "no baseline run to compare with")
        elif md is None or md.delta is None or md.base_mean is None:
            res("skip", f"{rule.metric} not comparable with the baseline (no aligned scored cases)")
        else:
            worsening = -md.delta if md.greater_is_better else md.delta
            rel = worsening / abs(md.base_mean) if md.base_mean else None
            p_adj = family.get((rule.metric, segment or "all"))
            significant = p_adj is not None and p_adj < diff.settings.alpha
            sig = significant or not rule.require_significant
            p_txt = f"p_adj={_fmt(p_adj)}" + ("" if significant else " (not significant)")
            for limit, observed, what in ((rule.max_drop, rel, "relative"), (rule.max_abs_drop, worsening, "absolute")):
                if limit is None:
                    continue
                if observed is None:
                    res("skip", f"{what} drop undefined (baseline mean is 0)")
                    continue
                over = observed > limit
                status: Status = "fail" if over and sig else "pass"
                msg = (f"{what} drop {observed:+.2%} vs limit {limit:.2%}; {_fmt(md.base_mean)} -> "
                       f"{_fmt(md.head_mean)}, n={md.n}, {p_txt}") if what == "relative" else (
                       f"{what} drop {observed:+.4f} vs limit {limit}; {p_txt}")
                if over and not sig:
                    msg += "; not counted: within noise"
                res(status, msg, observed, limit)
    if not out:
        res("skip", "rule sets no limit")
    return out


def evaluate_gates(rules: Sequence[GateRule], head: RunResult, diff: Diff | None) -> Verdict:
    results: list[GateResult] = []
    family = gate_family(rules, head, diff)
    for rule in rules:
        for seg in _segments(rule, head):
            results.extend(_rule_results(rule, head, diff, seg, family))
    return Verdict(passed=not any(r.status == "fail" for r in results), results=tuple(results),
                   base_run=None if diff is None else diff.base_run, head_run=head.run_id)


def junit_xml(verdict: Verdict) -> str:
    """JUnit XML with one test case per rule (and segment)."""
    from xml.etree import ElementTree as ET

    suite = ET.Element("testsuite", name="harness.gate", tests=str(len(verdict.results)),
                       failures=str(len(verdict.failed)),
                       skipped=str(sum(1 for r in verdict.results if r.status == "skip")))
    for r in verdict.results:
        name = r.rule + (f" [{r.segment}]" if r.segment else "")
        case = ET.SubElement(suite, "testcase", classname="harness.gate", name=name)
        if r.status == "fail":
            ET.SubElement(case, "failure", message=r.message).text = r.message
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.message)
        else:
            ET.SubElement(case, "system-out").text = r.message
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
