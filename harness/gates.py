"""Release gates: evaluate the manifest's rules on a head run and its diff against the baseline.

Gates fail closed. A rule that cannot judge fails with the reason (no baseline for a drop rule, a
metric the head run did not produce or left unscored everywhere, no latency recorded); a rule that
names a metric, stage or segment tag that does not exist is a configuration error (exit 2, with a
did-you-mean and the manifest's file:line) caught by :func:`check_gate_config` before anything runs.
The only skips are data-driven (a segment smaller than ``min_segment_size``) or asked for
(``allow_no_baseline``); they are listed and counted, and ``max_skipped`` bounds them.

Drops count only when significant in the diff's one corrected family (:func:`harness.diff.compare`
sets ``p_adjusted``; the gate never corrects a second time), unless a rule says otherwise; failure
rates are judged on their Wilson upper bound, so 3 failures in 40 cases do not pass a 1% limit by luck
of a small sample. Errored cases fail the gate unless an ``error_rate`` rule says how many may error.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from harness.columns import RunColumns
from harness.diff import Diff, DiffSettings, MetricDelta, compare
from harness.diff.compute import as_columns
from harness.types import Frozen, GateRule, RunResult

if TYPE_CHECKING:
    from harness.manifest import LoadedManifest
    from harness.storage import Layout
    from harness.types import GoldenCase

Status = Literal["pass", "fail", "skip"]
STAGES = ("retrieve", "generate")
RUN_METRICS = ("error_rate", "unscored_rate", "latency")
IMPLICIT_ERROR_RULE = "no errored cases (implicit: no error_rate rule)"
SKIP_UNMEASURED = "no case was measured"


Unjudged = Literal["untestable", "unavailable"]
"""Why a result could not be judged (it fails): ``untestable``, a drop over the limit that too few changed
cases keep out of the corrected family, so no test could tell it from noise; ``unavailable``, anything else
(no cases, no baseline, a metric not scored, no latency recorded)."""


class GateResult(Frozen):
    rule: str
    metric: str
    segment: str | None = None
    status: Status
    observed: float | None = None
    limit: float | None = None
    message: str
    unjudged: Unjudged | None = None


class Verdict(Frozen):
    """The gate's judgement of a head run; ``diff`` is the comparison with the baseline it read (None: no
    baseline). The diff is published beside the verdict, never inside it, so it is left out of dumps."""

    passed: bool
    results: tuple[GateResult, ...]
    base_run: str | None
    head_run: str
    diff: Diff | None = Field(default=None, exclude=True, repr=False)

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def skipped(self) -> list[GateResult]:
        return [r for r in self.results if r.status == "skip"]


# --- configuration checks (before anything runs) --------------------------------------------------------


def metric_directions(loaded: LoadedManifest) -> dict[str, bool]:
    """Every per-case metric a run of this manifest can produce, with ``greater_is_better``: what its
    scorers declare and the validator metrics of its contracts (:func:`harness.scorers.answer.validator_metrics`)."""
    from harness.pipeline import load_inputs, planned_scorer_specs
    from harness.scorers import SCORERS

    m = loaded.manifest
    # supplied outputs decide which scorers run (answers, rankings): read them as the run will
    supplied = load_inputs(loaded)[2].supplied if "outputs" in m.artifacts else None
    specs = planned_scorer_specs(m, supplied)
    names: dict[str, bool] = {}
    for spec in specs:
        for info in SCORERS.build(spec.name, spec.args).metrics():
            names[info.name] = info.greater_is_better
    if any(spec.name == "format" for spec in specs):
        from harness.contracts import load_contracts
        from harness.scorers.answer import validator_metrics

        for info in validator_metrics(load_contracts(loaded.resolve("validators"))):
            names[info.name] = info.greater_is_better
    return names


def known_metrics(loaded: LoadedManifest) -> list[str]:
    """Every metric a run of this manifest can produce: :func:`metric_directions`' and the run-level
    ``error_rate``, ``unscored_rate`` and ``latency``."""
    return [*metric_directions(loaded), *RUN_METRICS]


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    options = sorted(set(known))
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(options)}"


def check_gate_config(loaded: LoadedManifest, cases: Sequence[GoldenCase] | None = None) -> None:
    """Reject gate rules that name a metric, latency stage or segment that does not exist.

    One :class:`~harness.errors.InputError` (exit 2) naming the manifest's file:line, the field and the
    closest known names. Segments are checked against the golden set's tags (loaded here unless given).
    """
    from harness.config import line_of
    from harness.errors import InputError

    rules = loaded.manifest.gates
    if not rules:
        return
    text = loaded.path.read_text("utf-8")

    def bad(i: int, key: str, message: str, hint: str) -> InputError:
        return InputError(loaded.path, message, line=line_of(text, ("gates", i, key)), field=f"gates.{i}.{key}",
                          hint=hint)

    directions = metric_directions(loaded)
    metrics = [*directions, *RUN_METRICS]
    for i, rule in enumerate(rules):
        if rule.metric not in metrics:
            raise bad(i, "metric", f"gate rule names metric {rule.metric!r}, which no scorer of this manifest produces",
                      _did_you_mean(rule.metric, metrics))
        if rule.max_rate is not None and directions.get(rule.metric) is True:
            raise bad(i, "max_rate", f"max_rate bounds a failure rate, but {rule.metric} is higher-is-better",
                      f"use min = ... for a floor on {rule.metric}")
        if rule.stage is not None and rule.stage not in STAGES:
            raise bad(i, "stage", f"unknown latency stage {rule.stage!r}", _did_you_mean(rule.stage, STAGES))
        if rule.stage == "generate" and not {"generator", "outputs"} & set(loaded.manifest.artifacts):
            raise bad(i, "stage", "latency stage 'generate' needs a generator artifact", "use stage = \"retrieve\"")
    if not any(r.segment for r in rules):
        return
    if cases is None:
        from harness.golden import load_golden

        cases = load_golden(loaded.resolve("golden"))
    tags: dict[str, set[str]] = {}
    for c in cases:
        for k, v in c.tags.items():
            tags.setdefault(k, set()).add(v)
    for i, rule in enumerate(rules):
        if rule.segment is None:
            continue
        key, eq, value = rule.segment.partition("=")
        if not eq or not key or not value:
            raise bad(i, "segment", f"segment {rule.segment!r} is not 'tag=value' or 'tag=*'",
                      f"tags: {', '.join(sorted(tags)) or 'none'}")
        if key not in tags:
            raise bad(i, "segment", f"no golden case has the tag {key!r}", _did_you_mean(key, tags))
        if value != "*" and value not in tags[key]:
            raise bad(i, "segment", f"no golden case is tagged {key}={value}", _did_you_mean(value, tags[key]))


# --- evaluation -----------------------------------------------------------------------------------------


def _segments(rule: GateRule, head: RunColumns, base: RunColumns | None = None) -> list[str | None]:
    """The segments a rule judges: for ``tag=*`` each value of the tag in the head run and in the base
    run (a segment whose cases all went from the head fails, it does not vanish)."""
    runs = (head,) if base is None else (head, base)
    return _rule_segments(rule, lambda tag: {v for r in runs for v in _case_tag_values(r, tag)})


def _rule_segments(rule: GateRule, tag_values: Callable[[str], set[str]]) -> list[str | None]:
    """The rule's segment (None: all cases), or for ``tag=*`` one per value ``tag_values(tag)`` gives, sorted
    (the pattern itself when there is none: it then fails as having no cases)."""
    if rule.segment is None:
        return [None]
    if rule.segment.endswith("=*"):
        tag = rule.segment[:-2]
        found: list[str | None] = [*sorted({f"{tag}={v}" for v in tag_values(tag)})]
        return found or [rule.segment]
    return [rule.segment]


def _case_tag_values(run: RunColumns, tag: str) -> set[str]:
    """The values of ``tag`` over the run's golden cases."""
    has = run.has_case()
    if has is None or tag not in run.tags:
        return run.tag_values(tag)
    return {v for v in run.tags[tag].filter(pa.array(has)).drop_null().unique().to_pylist() if v is not None}


def _segment_rows(head: RunColumns, segment: str | None) -> np.ndarray:
    """Bool per row of ``head``: the case is in ``segment`` (None: every case)."""
    if segment is None:
        return np.ones(len(head), dtype=bool)
    mask = head.segment_mask(segment)
    has = head.has_case()
    return mask if has is None else mask & has


def _values(head: RunColumns, metric: str, rows: np.ndarray) -> np.ndarray:
    """The metric's values of the rows (NaN: no value)."""
    col = head.values.get(metric)
    return np.full(int(rows.sum()), np.nan) if col is None else np.asarray(col, dtype=np.float64)[rows]


def _mean(values: np.ndarray) -> float | None:
    """:func:`harness.aggregate.scored_mean` of the scored values: ``math.fsum`` (exactly rounded) over
    the size; a 0/1 flag array's is its count over the size."""
    if not values.size:
        return None
    if values.dtype == np.bool_:
        return int(np.count_nonzero(values)) / values.size
    return math.fsum(values) / values.size


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


def _rule_results(rule: GateRule, head: RunColumns, diff: Diff | None, segment: str | None,
                  allow_no_baseline: bool, base: RunColumns | None = None) -> list[GateResult]:
    out: list[GateResult] = []
    res = _emitter(rule, segment, out)
    rows = _segment_rows(head, segment)
    size = int(rows.sum())
    in_base = None if size or base is None or segment is None else int(_segment_rows(base, segment).sum())
    if _size_results(rule, segment, size, in_base, res):
        return out

    if rule.metric == "latency":
        if rule.stage is None or rule.max_seconds is None:  # GateRule's validator rejects this at load
            res("fail", "cannot judge: a latency rule needs stage and max_seconds")
            return out
        lat_col = head.latency.get(rule.stage)
        recorded = np.zeros(len(head), dtype=bool) if lat_col is None else rows & ~np.isnan(lat_col)
        n_recorded = int(recorded.sum())
        if not n_recorded or lat_col is None:
            res("fail", f"cannot judge: no latency recorded for stage {rule.stage!r}")
            return out
        measured = recorded & ~stage_cache_hits(head, rule.stage, recorded)
        lat = np.asarray(lat_col, dtype=np.float64)[measured]
        if not lat.size:
            res("skip", f"{SKIP_UNMEASURED}: all {n_recorded} served from cache (stage {rule.stage}); "
                "run with a cold cache to measure latency")
            return out
        q = float(np.quantile(lat, rule.quantile))
        ok = q <= rule.max_seconds
        cached = n_recorded - int(lat.size)
        res("pass" if ok else "fail", f"p{round(rule.quantile * 100)} {rule.stage} latency {q:.3f}s over "
            f"{lat.size} measured cases (limit {rule.max_seconds}s; {cached} served from cache not counted)",
            q, rule.max_seconds)
        return out

    if rule.metric == "error_rate":
        scored = head.errored()[rows]
    elif rule.metric == "unscored_rate":
        # one flag per score row (every metric's): a row exists where the case has a value or is unscored
        unscored = [np.asarray(u, dtype=bool)[rows] for u in head.unscored.values()]
        present = sum(int((~np.isnan(np.asarray(v, dtype=np.float64)[rows])).sum()) for v in head.values.values())
        k_unscored = sum(int(u.sum()) for u in unscored)
        scored = np.concatenate([np.zeros(present, dtype=bool), np.ones(k_unscored, dtype=bool)])
    else:
        flags = _values(head, rule.metric, rows)
        if rule.metric not in head.aggregates.overall:
            res("fail", f"cannot judge: metric {rule.metric!r} is not in the head run")
            return out
        scored = flags[~np.isnan(flags)]
        if not scored.size:
            res("fail", f"cannot judge: {rule.metric} is unscored for every case here")
            return out
    _limit_results(rule, scored, _mean(scored), res)
    if rule.max_drop is not None or rule.max_abs_drop is not None:
        _drop_results(rule, diff, segment, allow_no_baseline, res)
    return out


def _emitter(rule: GateRule, segment: str | None, out: list[GateResult]) -> Callable[..., None]:
    """``res(status, msg, observed, limit, unjudged)``: append one result of ``rule`` in ``segment`` to ``out``
    (a failure that cannot judge is ``unavailable`` unless told otherwise)."""

    def res(status: Status, msg: str, observed: float | None = None, limit: float | None = None,
            unjudged: Unjudged | None = None) -> None:
        if unjudged is None and status == "fail" and msg.startswith("cannot judge"):
            unjudged = "unavailable"
        out.append(GateResult(rule=rule.label, metric=rule.metric, segment=segment, status=status,
                              observed=observed, limit=limit, message=msg, unjudged=unjudged))

    return res


def _size_results(rule: GateRule, segment: str | None, size: int, in_base: int | None,
                  res: Callable[..., None]) -> bool:
    """Fail a segment with no cases in the head (``in_base``: how many the base has there, if asked), skip one
    smaller than ``min_segment_size``; True when either was emitted (the rule judges nothing more here)."""
    if not size:
        base_txt = "" if in_base is None else f" ({in_base} in base)"
        where = "the head run has no cases here" if segment is None else f"segment {segment} has no cases in head"
        res("fail", f"cannot judge: {where}{base_txt}")
        return True
    if segment is not None and size < rule.min_segment_size:
        res("skip", f"segment has {size} cases, fewer than min_segment_size={rule.min_segment_size}")
        return True
    return False


def _limit_results(rule: GateRule, scored: np.ndarray, mean: float | None, res: Callable[..., None]) -> None:
    """The rule's ``max_rate`` (on the Wilson upper bound unless told otherwise; 0/1 values only) and
    ``min``/``max`` (on ``mean``) checks of the ``scored`` values."""
    from harness.stats import wilson_interval

    if rule.max_rate is not None:
        if not scored.size:
            res("fail", "cannot judge: no scored cases")
        elif not np.isin(scored, (0.0, 1.0)).all():
            res("fail", f"cannot judge: max_rate needs a 0/1 per-case metric; {rule.metric} is not")
        else:
            k, n = int(np.count_nonzero(scored)), int(scored.size)
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


def _implicit_error_rule(head: RunColumns) -> GateResult:
    """Errored cases fail the gate unless an ``error_rate`` rule says how many may error."""
    errored = head.errored()
    n = len(head)
    count = int(errored.sum())
    if not count:
        return GateResult(rule=IMPLICIT_ERROR_RULE, metric="error_rate", status="pass", observed=0.0, limit=0.0,
                          message=f"0/{n} cases errored")
    rows = np.flatnonzero(errored)
    ids = head.case_ids.take(pa.array(rows))
    kinds_col = head.error_kind.take(pa.array(rows))
    parts = []
    for kind in sorted(k for k in kinds_col.unique().to_pylist() if k is not None):
        of_kind = ids.filter(pc.equal(kinds_col, kind))
        first3 = of_kind.slice(0, 3).to_pylist()
        parts.append(f"{kind}: {len(of_kind)} ({', '.join(first3)}{', ...' if len(of_kind) > 3 else ''})")
    first_id = str(ids[0].as_py())
    first = _first_error(head, int(rows[0]))
    return GateResult(rule=IMPLICIT_ERROR_RULE, metric="error_rate", status="fail", observed=count / n,
                      limit=0.0, message=f"{count}/{n} cases errored; {'; '.join(parts)}; first: "
                      f"{first_id}: {first}; add an error_rate rule to allow some")


def _first_error(head: RunColumns, row: int) -> str:
    """The message of the error of ``row`` (its record is fetched)."""
    for _, _, outputs, _ in head.records(np.array([row]), chunk=1):
        for o in outputs:
            if o.error is not None:
                return o.error.message
    raise ValueError(f"run {head.run_id}: row {row} errored but its record has no error")


def stage_cache_hits(head: RunColumns, stage: str, rows: np.ndarray) -> np.ndarray:
    """Bool per row: the stage was served from cache (read from ``extra["cache_hits"]``, else from the
    records of ``rows``, streamed; the other rows False). ``rows``: the rows whose stage latency is recorded
    (the pipeline records a stage's cache hit beside its latency)."""
    known = head.extra.get("cache_hits", {})
    if stage in known:
        return np.asarray(known[stage], dtype=bool)
    hits = np.zeros(len(head), dtype=bool)
    for idx, _, outputs, _ in head.records(np.flatnonzero(rows)):
        hits[idx] = [bool(o.cache_hits.get(stage, False)) for o in outputs]
    return hits


def evaluate_gates(rules: Sequence[GateRule], head: RunResult | RunColumns, diff: Diff | None, *,
                   allow_no_baseline: bool = False, base: RunResult | RunColumns | None = None) -> Verdict:
    """Apply ``rules`` to ``head`` and its ``diff`` against the baseline (None: there is no baseline).

    Significance comes from the diff as computed (its one family); a drop rule without a baseline
    fails unless ``allow_no_baseline``. ``base`` (the baseline run) adds its segments to ``tag=*``
    rules, so a segment missing from the head fails. Each rule's skipped segments (too small, or a
    latency nothing measured) count against its ``max_skipped``."""
    cols = as_columns(head)
    base_cols = None if base is None else as_columns(base)
    return _judge(rules, diff, cols.run_id,
                  lambda rule: [r for seg in _segments(rule, cols, base_cols)
                                for r in _rule_results(rule, cols, diff, seg, allow_no_baseline, base_cols)],
                  lambda: _implicit_error_rule(cols))


def _judge(rules: Sequence[GateRule], diff: Diff | None, head_run: str,
           results_of: Callable[[GateRule], list[GateResult]], implicit: Callable[[], GateResult]) -> Verdict:
    """The verdict of ``rules``: each rule's results over its segments (``results_of``), a failure where a rule
    skipped more segments than its ``max_skipped``, and the implicit error rule (``implicit``) unless an overall
    ``error_rate`` rule is given."""
    results: list[GateResult] = []
    for rule in rules:
        rule_results = results_of(rule)
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
        results.append(implicit())
    return Verdict(passed=not any(r.status == "fail" for r in results), results=tuple(results),
                   base_run=None if diff is None else diff.base_run, head_run=head_run, diff=diff)


def gate(rules: Sequence[GateRule], head: RunResult | RunColumns, base: RunResult | RunColumns | None, *,
         settings: DiffSettings | None = None, layout: Layout | None = None, allow_no_baseline: bool = False,
         max_flips: int | None = None) -> Verdict:
    """The release gate every front end runs (``harness gate``, ``harness baseline promote``, the pytest
    plugin): compare ``head`` with ``base`` (:func:`harness.diff.compare`; no diff when ``base`` is None)
    and apply ``rules`` (:func:`evaluate_gates`). With no baseline a drop rule fails as unjudgeable
    unless ``allow_no_baseline``; the other rules judge the head run alone. The caller resolves the
    base (:func:`harness.baseline.resolve_base`) and checks the rules (:func:`check_gate_config`) before
    anything runs. ``verdict.diff`` is the comparison judged. Either run may be a
    :class:`~harness.columns.RunColumns` (a stored run's columns: nothing per case is materialized) or
    an in-memory :class:`~harness.types.RunResult`; ``max_flips`` is :func:`harness.diff.compare`'s."""
    head = as_columns(head)
    base = None if base is None else as_columns(base)
    diff = None if base is None else compare(base, head, settings, layout, max_flips=max_flips)
    return evaluate_gates(rules, head, diff, allow_no_baseline=allow_no_baseline, base=base)


def junit_xml(verdict: Verdict) -> str:
    """JUnit XML with one test case per rule (and segment)."""
    from xml.etree import ElementTree as ET

    suite = ET.Element("testsuite", name="harness.gate", tests=str(len(verdict.results)),
                       failures=str(len(verdict.failed)), skipped=str(len(verdict.skipped)))
    for r in verdict.results:
        name = r.rule + (f" [{r.segment}]" if r.segment else "")
        case = ET.SubElement(suite, "testcase", classname="harness.gate", name=name)
        if r.status == "fail":
            ET.SubElement(case, "failure", message=r.message).text = r.message
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.message)
        else:
            ET.SubElement(case, "system-out").text = r.message
    from harness.report.xmltext import sanitize_tree

    return ET.tostring(sanitize_tree(suite), encoding="unicode", xml_declaration=True) + "\n"
