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

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from pydantic import Field

from harness.errors import HarnessError
from harness.types import Aggregates, CaseOutput, Frozen, Manifest, RunResult, Score

if TYPE_CHECKING:
    import numpy as np

    from harness.columns import RunColumns

DEFAULT_RETRIEVAL_THRESHOLD = 0.5


class RunFacts(Protocol):
    """What the failing policy reads of a run: a :class:`~harness.types.RunResult` or a stored run's header
    (:class:`harness.runs.RunTableHeader`)."""

    @property
    def run_id(self) -> str: ...
    @property
    def aggregates(self) -> Aggregates: ...
    @property
    def manifest(self) -> Manifest: ...


class FailurePolicy(Frozen):
    """What makes a case failing (see the module docstring)."""

    thresholds: dict[str, float] = Field(default_factory=dict)
    at_zero: tuple[str, ...] = ("answer_contains", "fact_recall", "instructions_strict")
    at_one: tuple[str, ...] = ("format_critical_fail",)
    default_threshold: float = DEFAULT_RETRIEVAL_THRESHOLD

    def resolved_thresholds(self, run: RunFacts) -> dict[str, float]:
        """Explicit thresholds, or the run's primary retrieval metric at ``default_threshold``."""
        if self.thresholds:
            return dict(self.thresholds)
        primary = primary_retrieval_metric(run)
        return {} if primary is None else {primary: self.default_threshold}

    def describe(self, run: RunFacts) -> str:
        """One sentence for the reports: what failing means for this run."""
        parts = ["an error"]
        present = set(run.aggregates.overall)
        parts += [f"{m} = 1" for m in self.at_one if m in present]
        parts += [f"{m} = 0" for m in self.at_zero if m in present]
        for m, t in self.resolved_thresholds(run).items():
            gib = run.aggregates.overall[m].greater_is_better if m in run.aggregates.overall else True
            parts.append(f"{m} {'<' if gib else '>'} {t:g}")
        return "a case fails on " + ", ".join(parts) + " (unscored values never fail)"


def primary_retrieval_metric(run: RunFacts) -> str | None:
    """The first retrieval metric the manifest lists that the run has (the headline metric)."""
    return next((m for m in run.manifest.metrics.retrieval if m in run.aggregates.overall), None)


def parse_thresholds(specs: Sequence[str], run: RunFacts) -> dict[str, float]:
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
    judge = FailureJudge(run, policy)
    scores: dict[str, list[Score]] = {}
    for s in run.scores:
        scores.setdefault(s.case_id, []).append(s)
    out: dict[str, CaseFailure] = {}
    for o in run.outputs:
        f = judge.case(o, scores.get(o.case_id, ()))
        if f is not None:
            out[o.case_id] = f
    return out


class FailureJudge:
    """:func:`find_failures` one case at a time (its output and its scores, in the run's order), and, for a run
    read as columns, which rows can fail (:meth:`mask`) and which metrics make them (:meth:`metric_masks`), so
    only those rows' records are read."""

    def __init__(self, run: RunFacts, policy: FailurePolicy | None = None) -> None:
        self.policy = policy or FailurePolicy()
        self.thresholds = self.policy.resolved_thresholds(run)
        self.gib = {m: s.greater_is_better for m, s in run.aggregates.overall.items()}
        self.at_zero, self.at_one = set(self.policy.at_zero), set(self.policy.at_one)

    def _reason(self, s: Score) -> str | None:
        v = s.value
        if v is None:
            return None
        why = f": {s.explanation}" if s.explanation else ""
        thresholds, gib = self.thresholds, self.gib
        if s.metric in self.at_one and v >= 1.0:
            return f"{s.metric}{why}"
        if s.metric in self.at_zero and v <= 0.0:
            return f"{s.metric} = 0{why}"
        if s.metric in thresholds and gib.get(s.metric, True) and v < thresholds[s.metric]:
            return f"{s.metric} {_fmt(v)} < {thresholds[s.metric]:g}"
        if s.metric in thresholds and not gib.get(s.metric, True) and v > thresholds[s.metric]:
            return f"{s.metric} {_fmt(v)} > {thresholds[s.metric]:g}"
        return None

    def case(self, output: CaseOutput, scores: Iterable[Score]) -> CaseFailure | None:
        """This case's failure (None: it passes); ``scores``: the case's scores in the run's order."""
        reasons: list[str] = []
        metrics: set[str] = set()
        if output.error:
            reasons.append(f"{output.error.stage} error: {output.error.message}")
        for s in scores:
            text = self._reason(s)
            if text is not None:
                reasons.append(text)
                metrics.add(s.metric)
        if not reasons:
            return None
        return CaseFailure(case_id=output.case_id, reasons=tuple(dict.fromkeys(reasons)),
                           metrics=frozenset(metrics), error=output.error is not None)

    def metric_masks(self, cols: RunColumns) -> dict[str, np.ndarray]:
        """metric -> bool per row: the case's value of it makes the case fail (NaN, unscored, never does)."""
        import numpy as np

        out: dict[str, np.ndarray] = {}
        for m, v in cols.values.items():
            with np.errstate(invalid="ignore"):
                hit = np.zeros(len(v), dtype=bool)
                if m in self.at_one:
                    hit |= v >= 1.0
                if m in self.at_zero:
                    hit |= v <= 0.0
                if m in self.thresholds:
                    t = self.thresholds[m]
                    hit |= (v < t) if self.gib.get(m, True) else (v > t)
            if hit.any():
                out[m] = hit
        return out

    def mask(self, cols: RunColumns, metric_masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Bool per row: the case fails (an error, or a value on the wrong side); ``cols`` must hold every
        metric the policy names that the run has."""
        import numpy as np

        fails = np.asarray(cols.errored(), dtype=bool).copy()
        for hit in (self.metric_masks(cols) if metric_masks is None else metric_masks).values():
            fails |= hit
        return fails
