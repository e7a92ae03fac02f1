"""The data model: typed, frozen, validated at the edges (DESIGN "Data model").

Strings from files and flags are parsed once, at the edge, into these types; unknown keys are
rejected. Everything downstream trusts them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def drop_none(value: Any) -> Any:
    """The value with None entries removed at every level (TOML has no null; Arrow fills absent keys with None)."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [drop_none(v) for v in value]
    return value


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Fact(Frozen):
    """A fact a good answer states: text with aliases, or a regex."""

    text: str | None = None
    aliases: tuple[str, ...] = ()
    regex: str | None = None


class InstructionSpec(Frozen):
    """A verifiable instruction (an IFEval id or a registered custom id) and its arguments."""

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class GoldenCase(Frozen):
    """One golden query. ``id`` is required and stable: diffs align cases by it."""

    id: str
    query: str
    relevance: dict[str, int] = Field(default_factory=dict)
    answers: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()
    contract: str | None = None
    instructions: tuple[InstructionSpec, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    def segments(self) -> list[str]:
        """Segment keys this case belongs to, as ``tag=value``."""
        return [f"{k}={v}" for k, v in sorted(self.tags.items())]


class CorpusDoc(Frozen):
    id: str
    title: str = ""
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class RankedDoc(Frozen):
    doc_id: str
    score: float


class CaseOutput(Frozen):
    """What the system produced for one case; an error is a value, never a dropped case."""

    case_id: str
    ranking: tuple[RankedDoc, ...] = ()
    answer: str | None = None
    messages: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    error_stage: str | None = None
    latency_s: dict[str, float] = Field(default_factory=dict)
    cache_hits: dict[str, bool] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


class Score(Frozen):
    """One metric's value for one case. ``value is None`` means unscored, and says why."""

    case_id: str
    metric: str
    value: float | None
    explanation: str | None = None
    details: dict[str, Any] | None = None


class MetricSummary(Frozen):
    """Aggregate of one metric over a set of cases: mean over scored cases, with the counts."""

    mean: float | None
    n: int
    n_unscored: int
    greater_is_better: bool = True


class Aggregates(Frozen):
    overall: dict[str, MetricSummary]
    segments: dict[str, dict[str, MetricSummary]] = Field(default_factory=dict)


class RunResult(Frozen):
    """One stored run: enough to diff, report and rebuild every scorer."""

    format_version: int = 1
    run_id: str
    created_at: str
    manifest_id: str
    manifest: dict[str, Any]
    manifest_path: str | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    scorers: tuple[dict[str, Any], ...] = ()
    cases: tuple[GoldenCase, ...] = ()
    outputs: tuple[CaseOutput, ...]
    scores: tuple[Score, ...]
    aggregates: Aggregates
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)

    def case_scores(self) -> dict[str, dict[str, float | None]]:
        """case id -> metric -> value (None = unscored)."""
        out: dict[str, dict[str, float | None]] = {}
        for s in self.scores:
            out.setdefault(s.case_id, {})[s.metric] = s.value
        return out

    def metric_values(self, metric: str) -> dict[str, float | None]:
        return {s.case_id: s.value for s in self.scores if s.metric == metric}
