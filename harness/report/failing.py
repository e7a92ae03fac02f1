"""Which cases a report calls failing, and why: one definition for the HTML, markdown, JSON and JUnit reports.

A case fails when any of these holds (unscored values, ``None``, never make a case fail; they are
counted apart):

- its output carries an error (retrieval or generation failed);
- a critical output-contract check failed (``format_critical_fail`` = 1);
- a pass/fail answer metric is 0: ``answer_contains`` (no reference answer occurs in the answer),
  ``fact_recall`` (not one golden fact stated), ``instructions_strict`` (an instruction was not
  followed, IFEval prompt-level strict);
- a threshold metric is on the wrong side of its threshold: by default the manifest's first retrieval
  metric (e.g. ``ndcg@10``) below 0.5. ``--fail-below METRIC=VALUE`` (repeatable) replaces the
  default; for a lower-is-better metric the threshold is a ceiling (the case fails above it).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from harness.errors import HarnessError
from harness.types import Frozen, RunResult

DEFAULT_RETRIEVAL_THRESHOLD = 0.5


class FailurePolicy(Frozen):
    """What makes a case failing (see the module docstring)."""

    thresholds: dict[str, float] = Field(default_factory=dict)
    at_zero: tuple[str, ...] = ("answer_contains", "fact_recall", "instructions_strict")
    at_one: tuple[str, ...] = ("format_critical_fail",)
    default_threshold: float = DEFAULT_RETRIEVAL_THRESHOLD

    def resolved_thresholds(self, run: RunResult) -> dict[str, float]:
        """Explicit thresholds, or the run's primary retrieval metric at ``default_threshold``."""
        if self.thresholds:
            return dict(self.thresholds)
        primary = primary_retrieval_metric(run)
        return {} if primary is None else {primary: self.default_threshold}

    def describe(self, run: RunResult) -> str:
        """One sentence for the reports: what failing means for this run."""
        parts = ["an error"]
        present = set(run.aggregates.overall)
        parts += [f"{m} = 1" for m in self.at_one if m in present]
        parts += [f"{m} = 0" for m in self.at_zero if m in present]
        for m, t in self.resolved_thresholds(run).items():
            gib = run.aggregates.overall[m].greater_is_better if m in run.aggregates.overall else True
            parts.append(f"{m} {'<' if gib else '>'} {t:g}")
        return "a case fails on " + ", ".join(parts) + " (unscored values never fail)"


def primary_retrieval_metric(run: RunResult) -> str | None:
    """The first retrieval metric the manifest lists that the run has (the headline metric)."""
    return next((m for m in run.manifest.metrics.retrieval if m in run.aggregates.overall), None)


def parse_thresholds(specs: Sequence[str], run: RunResult) -> dict[str, float]:
    """``METRIC=VALUE`` flags -> {metric: value}, checked against the run's metrics."""
    out: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not name or number != number:
            raise HarnessError(f"--fail-below {spec!r}: expected METRIC=VALUE", hint="e.g. --fail-below ndcg@10=0.5")
        if name not in run.aggregates.overall:
            known = ", ".join(run.aggregates.metrics("quality"))
            raise HarnessError(f"--fail-below names metric {name!r}, which run {run.run_id} does not have",
                               hint=f"one of: {known}")
        out[name] = number
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class CaseFailure(Frozen):
    """Why one case fails: reasons (for people) and the metrics behind them (to highlight values)."""

    case_id: str
    reasons: tuple[str, ...]
    metrics: frozenset[str] = frozenset()
    error: bool = False


def find_failures(run: RunResult, policy: FailurePolicy | None = None) -> dict[str, CaseFailure]:
    """case id -> its failure, in the run's case order; passing cases are absent."""
    policy = policy or FailurePolicy()
    thresholds = policy.resolved_thresholds(run)
    gib = {m: s.greater_is_better for m, s in run.aggregates.overall.items()}
    at_zero, at_one = set(policy.at_zero), set(policy.at_one)
    reasons: dict[str, list[str]] = {}
    metrics: dict[str, set[str]] = {}
    errored = {o.case_id for o in run.outputs if o.error}
    for o in run.outputs:
        if o.error:
            reasons.setdefault(o.case_id, []).append(f"{o.error.stage} error: {o.error.message}")
    for s in run.scores:
        v = s.value
        if v is None:
            continue
        why = f": {s.explanation}" if s.explanation else ""
        if s.metric in at_one and v >= 1.0:
            text = f"{s.metric}{why}"
        elif s.metric in at_zero and v <= 0.0:
            text = f"{s.metric} = 0{why}"
        elif s.metric in thresholds and gib.get(s.metric, True) and v < thresholds[s.metric]:
            text = f"{s.metric} {_fmt(v)} < {thresholds[s.metric]:g}"
        elif s.metric in thresholds and not gib.get(s.metric, True) and v > thresholds[s.metric]:
            text = f"{s.metric} {_fmt(v)} > {thresholds[s.metric]:g}"
        else:
            continue
        reasons.setdefault(s.case_id, []).append(text)
        metrics.setdefault(s.case_id, set()).add(s.metric)
    return {
        o.case_id: CaseFailure(case_id=o.case_id, reasons=tuple(dict.fromkeys(reasons[o.case_id])),
                               metrics=frozenset(metrics.get(o.case_id, ())), error=o.case_id in errored)
        for o in run.outputs
        if o.case_id in reasons
    }
