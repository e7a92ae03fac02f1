"""The data model: typed, frozen, validated at the edges (DESIGN "Data model").

Strings from files and flags are parsed once, at the edge, into these types; unknown keys are
rejected. Everything downstream trusts them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from harness.errors import ManifestError
from harness.hashing import sha256_json


def drop_none(value: Any) -> Any:
    """The value with None entries removed at every level (TOML has no null; Arrow fills absent keys with None)."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [drop_none(v) for v in value]
    return value


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- the manifest (parsed and checked against the files by harness.manifest) ----------------------------

SCHEMA_VERSION: Literal[1] = 1
ArtifactKind = Literal[
    "golden", "corpus", "embedding_model", "index_recipe", "retriever", "prompt", "validators", "generator", "outputs",
    "other",
]
DEFAULT_RETRIEVAL_METRICS = (
    "ndcg@10",
    "recall@10",
    "recall@100",
    "map@10",
    "mrr@10",
    "precision@10",
    "map",
    "mrr",
    "rprec",
    "success@1",
)


class Artifact(Frozen):
    """One pinned artifact. Exactly what determines its content is hashed into ``sha256``."""

    kind: ArtifactKind
    version: str = ""
    path: str | None = None
    uri: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    description: str = ""
    allow_outside: bool = Field(
        default=False,
        description="Let this artifact's path (or a symlink in its folder) lead outside the project: the git "
        "work tree holding the manifest, else the folder of the project's harness manifest. Off by default.",
    )

    @model_serializer(mode="wrap")
    def _omit_default_opt_in(self, handler: Any) -> Any:
        # Left out unless set, so the opt-in does not change the id of manifests that do not use it.
        data = handler(self)
        if isinstance(data, dict) and not self.allow_outside:
            data.pop("allow_outside", None)
        return data

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(pypi|hf):\S+$", v):
            raise ValueError("uri must be 'pypi:<distribution>' or 'hf:<org/name>'")
        return v


class MetricsConfig(Frozen):
    retrieval: tuple[str, ...] = DEFAULT_RETRIEVAL_METRICS
    relevance_level: int = 1

    @field_validator("retrieval")
    @classmethod
    def _known_metrics(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from harness.errors import UnknownMetricError
        from harness.metrics import metric_info

        for name in v:
            try:
                metric_info(name)
            except UnknownMetricError as exc:
                raise ValueError(str(exc)) from None
        return v


class ScorerSpec(Frozen):
    """A registered scorer and its arguments; rebuilt from this spec in every run."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class GateRule(Frozen):
    """One release rule. Which fields are set decides what is checked (several may be combined):

    - ``max_drop`` / ``max_abs_drop``: relative / absolute worsening against the baseline, in the
      metric's own direction; counted only when significant after correction unless
      ``require_significant = false``;
    - ``min`` / ``max``: absolute floor / ceiling on the head mean;
    - ``max_rate``: for 0/1 per-case metrics (failure rates), the Wilson upper bound of the rate at
      ``confidence`` must not exceed it (point estimate if ``wilson = false``);
    - ``metric = "latency"`` with ``stage`` and ``max_seconds``: the ``quantile`` of per-case latency;
    - ``metric = "error_rate"`` / ``"unscored_rate"``: share of cases with an error / of unscored values.

    ``segment`` applies the rule to one segment (``"topic=storage"``) or to each value of a tag
    (``"topic=*"``), skipping segments smaller than ``min_segment_size``. Those skips are listed and
    counted; ``max_skipped`` (unset: no limit) is how many of the rule's segments may be skipped so
    before the rule fails, e.g. ``max_skipped = 0`` to insist every segment is judged.

    Gates fail closed: a rule that sets no limit, or a latency rule without ``stage`` and
    ``max_seconds``, is rejected when the manifest loads; a metric, stage or segment tag that does
    not exist is rejected before a gate runs (:func:`harness.gates.check_gate_config`); a metric the
    head run did not score, or a drop rule with no baseline (unless ``--allow-no-baseline``), fails.
    """

    name: str | None = None
    metric: str
    segment: str | None = None
    min_segment_size: int = Field(default=1, ge=1)
    max_drop: float | None = Field(default=None, ge=0)
    max_abs_drop: float | None = Field(default=None, ge=0)
    require_significant: bool = True
    min: float | None = None
    max: float | None = None
    max_rate: float | None = Field(default=None, ge=0, le=1)
    wilson: bool = True
    confidence: float = Field(default=0.95, gt=0, lt=1)
    stage: str | None = None
    quantile: float = Field(default=0.95, gt=0, le=1)
    max_seconds: float | None = Field(default=None, gt=0)
    max_skipped: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _sets_a_limit(self) -> GateRule:
        if self.metric == "latency":
            if self.stage is None or self.max_seconds is None:
                raise ValueError("a latency rule needs stage (retrieve or generate) and max_seconds")
        elif self.stage is not None or self.max_seconds is not None:
            raise ValueError("stage and max_seconds apply only to metric = \"latency\"")
        elif all(getattr(self, k) is None for k in ("max_drop", "max_abs_drop", "min", "max", "max_rate")):
            raise ValueError("the rule sets no limit (max_drop, max_abs_drop, min, max or max_rate)")
        if self.max_skipped is not None and self.segment is None:
            raise ValueError("max_skipped applies only to a rule with a segment")
        if self.metric in ("error_rate", "unscored_rate", "latency") and (
                self.max_drop is not None or self.max_abs_drop is not None):
            raise ValueError(f"a drop rule needs a per-case metric; {self.metric} is run-level (use max_rate, "
                             "min or max, or max_seconds for latency)")
        if self.metric != "latency" and "quantile" in self.model_fields_set:
            raise ValueError("quantile applies only to metric = \"latency\"")
        return self

    @model_serializer(mode="wrap")
    def _omit_unset_quantile(self, handler: Any) -> Any:
        # Left out unless set, so a stored rule (a run's manifest) loads again: quantile is a latency setting.
        data = handler(self)
        if isinstance(data, dict) and "quantile" not in self.model_fields_set:
            data.pop("quantile", None)
        return data

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        parts = [self.metric + (f"[{self.segment}]" if self.segment else "")]
        for key in ("max_drop", "max_abs_drop", "min", "max", "max_rate", "max_seconds"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}={value}")
        return " ".join(parts)


# --- monitoring production (harness ingest / harness monitor) -------------------------------------------


class LogFieldMap(Frozen):
    """Where each field of a production log record is in the user's records: a field name, or a dotted path
    into nested objects (``"meta.request_id"``). Every field but ``timestamp`` and ``query`` may be absent
    from a record; a record's other scalar fields are kept as attributes (segment keys)."""

    record_id: str = "id"
    timestamp: str = "timestamp"
    query: str = "query"
    answer: str = "answer"
    retrieved: str = Field(default="retrieved", description="doc ids, or {doc_id, score} objects, best first")
    contexts: str = Field(default="contexts", description="passage texts, or {text, doc_id, score} objects")
    latency: str = Field(default="latency_s", description="seconds: a number (the total) or {stage: seconds}")
    error: str = Field(default="error", description="the app's error: a kind string or {kind, message}")
    timeout: str = "timeout"
    manifest_id: str = "manifest_id"
    instructions: str = Field(default="instructions", description="IFEval-style [{id, kwargs}] given to the LLM")
    contract: str = Field(default="contract", description="the output contract the answer must meet")


LatencyQuantile = Literal["p50", "p95", "p99"]


class SLO(Frozen):
    """Service-level limits, judged per window and segment: latency quantiles per stage (``total`` is the
    record's total), error and timeout rates (Wilson upper bound at ``confidence``), each only where a
    window holds at least ``min_records`` records (fewer: the limit is reported as not judged)."""

    latency_s: dict[str, dict[LatencyQuantile, float]] = Field(default_factory=dict)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    timeout_rate: float | None = Field(default=None, ge=0, le=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    min_records: int = Field(default=20, ge=1)


class LogContract(Frozen):
    """Limits on the log itself: the null rate per field (``"*"`` for every field), the share of duplicate
    records, and freshness (seconds from event to ingestion, as a quantile)."""

    max_null_rate: dict[str, float] = Field(default_factory=dict)
    max_duplicate_rate: float | None = Field(default=None, ge=0, le=1)
    max_freshness_s: float | None = Field(default=None, gt=0)
    freshness_quantile: float = Field(default=0.95, gt=0, le=1)


class MonitorConfig(Frozen):
    """The ``[monitor]`` table: how production logs map onto records, which attributes are segments, the
    SLO and log-contract limits, and the drift family's settings."""

    mapping: LogFieldMap = LogFieldMap()
    segments: tuple[str, ...] = Field(default=(), description="record attributes to segment by (geo, device, ...)")
    slo: SLO = SLO()
    log_contract: LogContract = LogContract()
    alpha: float = Field(default=0.05, gt=0, lt=1, description="false-discovery rate of the alarm family")
    min_window: int = Field(default=30, ge=2, description="fewer records in a window: its tests are untestable")
    embedding_sample: int = Field(default=400, ge=10, description="records per window given embedding signals")
    groundedness_sample: int = Field(default=100, ge=0, description="records per window checked for groundedness")
    timezone: str = Field(default="UTC", description="the zone whose days and hours windows follow (IANA name)")
    seed: int = 0


# --- where the heavy stages run (issue 15) ----------------------------------------------------------------


class ComputeEngine(Frozen):
    """The ``[engine]`` table: where the heavy stages (corpus embedding, index building, retrieving and
    scoring large golden sets) run. ``local`` is this process; ``ray`` is a Ray cluster through Ray Data
    (``RAY_ADDRESS`` or ``address``; none: a local cluster with this machine's cores). The content identity
    does not depend on it: a flat recipe gives the same doc ids and scores on either, and both share the
    cache and the index store, so it is kept out of the manifest id. ``harness run --engine`` overrides
    ``kind``."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = Field(default=None, description="a Ray cluster's address (default: RAY_ADDRESS, "
                                "else a local cluster)")
    workers: int | None = Field(default=None, ge=1, le=1024,
                                description="embedding actors (each loads the model once; default: the cluster's CPUs)")
    batch_size: int = Field(default=256, ge=1, le=65_536, description="texts per embedding batch")


# --- shipping changes (harness replay / canary) --------------------------------------------------------


class ReplayConfig(Frozen):
    """The ``[replay]`` table: how ``harness replay`` runs logged queries through a baseline and a candidate
    manifest, and the rules it judges them by (``[[replay.gates]]``: the syntax of ``[[gates]]``, over the
    replay's label-free metrics). Flags override the first four."""

    sample: int | None = Field(default=None, ge=1, description="replay a seeded sample of this many records")
    seed: int = 0
    concurrency: int | None = Field(default=None, ge=1, le=256,
                                    description="calls in flight (default: the generator's own concurrency)")
    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["holm", "bh"] = Field(default="bh", description="across signals x segments")
    min_segment_size: int = Field(default=30, ge=1, description="the default rules skip smaller segments")
    gates: tuple[GateRule, ...] = Field(default=(), description="none: the default rules (every directional "
                                        "signal, overall and per segment, must not be significantly worse)")


CanaryDirection = Literal["increase", "decrease", "either"]


class CanarySignal(Frozen):
    """How the canary classifies one signal (Kayenta's per-metric configuration): which move fails it
    (``bad``), how large a significant relative move may be and still pass (``tolerance``: 0.1 = 10% of the
    baseline's value), its weight in the score, and whether failing it fails the canary outright."""

    name: str
    bad: CanaryDirection | None = Field(default=None, description="default: the signal's worse direction")
    tolerance: float = Field(default=0.0, ge=0)
    weight: float = Field(default=1.0, gt=0)
    critical: bool = False


class CanaryConfig(Frozen):
    """The ``[canary]`` table: which signals ``harness canary`` classifies (none: every directional signal,
    with its worse direction), the score thresholds (a score below ``marginal_score`` fails, below
    ``pass_score`` is marginal: not a pass), the smallest side judged, and ``[[canary.gates]]`` (the syntax
    of ``[[gates]]``, over the canary's signals)."""

    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["holm", "bh"] = "bh"
    signals: tuple[CanarySignal, ...] = ()
    pass_score: float = Field(default=95.0, ge=0, le=100)
    marginal_score: float = Field(default=75.0, ge=0, le=100)
    min_records: int = Field(default=50, ge=2, description="fewer records on either side: not judged")
    gates: tuple[GateRule, ...] = ()

    @model_validator(mode="after")
    def _ordered(self) -> CanaryConfig:
        if self.marginal_score > self.pass_score:
            raise ValueError(f"marginal_score ({self.marginal_score}) is above pass_score ({self.pass_score})")
        names = [s.name for s in self.signals]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"signal(s) listed twice: {', '.join(dup)}")
        return self


class Manifest(Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    description: str = ""
    artifacts: dict[str, Artifact]
    metrics: MetricsConfig = MetricsConfig()
    scorers: tuple[ScorerSpec, ...] | None = Field(
        default=None,
        description="Scorers to run besides the defaults (retrieval metrics always; correctness, facts, "
        "instructions, format and groundedness when the manifest has a generator); an entry named like a "
        "default replaces it.",
    )
    gates: tuple[GateRule, ...] = ()
    baseline: str | None = None
    monitor: MonitorConfig | None = None
    replay: ReplayConfig | None = None
    canary: CanaryConfig | None = None
    engine: ComputeEngine | None = None

    def canonical(self) -> dict[str, Any]:
        """What determines the system's outputs (the id's input): not its gates, baseline, monitoring, replay,
        canary or engine settings."""
        return self.model_dump(mode="json", exclude={"baseline", "gates", "monitor", "replay", "canary", "engine"})

    @property
    def id(self) -> str:
        return sha256_json(self.canonical())

    def artifact(self, role: str) -> Artifact:
        try:
            return self.artifacts[role]
        except KeyError:
            raise ManifestError(f"manifest has no artifact with role '{role}'") from None


# --- golden cases and what a run records -----------------------------------------------------------------


class Fact(Frozen):
    """A fact a good answer states: text with aliases, or a regex."""

    text: str | None = None
    aliases: tuple[str, ...] = ()
    regex: str | None = None


class InstructionSpec(Frozen):
    """A verifiable instruction (an IFEval id or a registered custom id) and its arguments."""

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class RankedDoc(Frozen):
    doc_id: str
    score: float


class SuppliedPassage(Frozen):
    """A passage another system retrieved or showed, as it gave it: its text, and its corpus id if it has one."""

    text: str
    doc_id: str | None = None
    title: str = ""
    score: float | None = None


class SuppliedError(Frozen):
    """The other system's own failure on a case, as its outputs record it."""

    stage: Literal["retrieve", "generate"] = "generate"
    kind: str = "app_error"
    message: str = ""


class SuppliedOutput(Frozen):
    """What another system produced for one case (an outputs file's record, or a golden case's ``output``):
    its answer, the passages it used (``contexts``, texts) and/or its ranking of the pinned corpus
    (``retrieved``, doc ids in rank order, with or without scores). Scored like a run's own outputs."""

    answer: str | None = None
    contexts: tuple[SuppliedPassage, ...] = ()
    retrieved: tuple[RankedDoc, ...] = ()
    scored: bool = Field(default=True, description="retrieved carried the system's scores; False: ranks stand in")
    ranked: bool = Field(default=True, description="the record ranks the corpus (retrieved, or contexts' doc ids)")
    answered: bool = Field(default=True, description="the record gives an answer (null included) or the app's "
                           "generation error")
    error: SuppliedError | None = None
    latency_s: dict[str, float] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class GoldenCase(Frozen):
    """One golden query. ``id`` is required and stable: diffs align cases by it. ``output`` is another
    system's output for it, when the golden set carries one (used only by an outputs artifact with
    ``from = "golden"``)."""

    id: str
    query: str
    relevance: dict[str, int] = Field(default_factory=dict)
    answers: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()
    contract: str | None = None
    instructions: tuple[InstructionSpec, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    output: SuppliedOutput | None = None

    def segments(self) -> list[str]:
        """Segment keys this case belongs to, as ``tag=value``."""
        return [f"{k}={v}" for k, v in sorted(self.tags.items())]


class CorpusDoc(Frozen):
    id: str
    title: str = ""
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


ErrorStage = Literal["retrieve", "generate", "outputs"]


class CaseError(Frozen):
    """Why a case has no output from a stage: the stage that failed, a typed kind (``server_error``,
    ``auth``, ``content_filter``... for generation; the exception's type for retrieval; ``missing`` for
    stage ``outputs``: the supplied outputs have no record for the case) and the (redacted) message. An error
    is a value per case, counted in the run, never a dropped case."""

    stage: ErrorStage
    kind: str
    message: str


class GenerationRecord(Frozen):
    """What the generation stage recorded for one case besides the answer."""

    attempts: int
    passages_shown: tuple[str, ...] = Field(description="ids of the passages the prompt showed, in order")
    finish_reason: str | None = Field(
        default=None, description="what the endpoint said; None when it said nothing or the call failed")

    @property
    def truncated(self) -> bool:
        """The answer was cut off at the token limit (``finish_reason = "length"``)."""
        return self.finish_reason == "length"


class CaseOutput(Frozen):
    """What the system produced for one case; an error is a value, never a dropped case.

    ``generation`` is None when the run has no generator (or the case never reached it). ``contexts`` are
    the passages supplied outputs gave as texts (not looked up in the corpus); scorers read them through
    :meth:`harness.scorers.ScoringContext.passages`."""

    case_id: str
    ranking: tuple[RankedDoc, ...] = ()
    ranking_scored: bool = Field(
        default=True, description="the ranking's scores are the retriever's; False: supplied outputs ranked doc "
        "ids without scores, and the scores stand for ranks (n, n-1, ...), so score distributions skip them")
    answer: str | None = None
    messages: tuple[dict[str, Any], ...] = ()
    contexts: tuple[CorpusDoc, ...] = ()
    error: CaseError | None = None
    generation: GenerationRecord | None = None
    latency_s: dict[str, float] = Field(default_factory=dict)
    cache_hits: dict[str, bool] = Field(default_factory=dict)


class Score(Frozen):
    """One metric's value for one case. ``value is None`` means unscored, and says why."""

    case_id: str
    metric: str
    value: float | None
    explanation: str | None = None
    details: dict[str, Any] | None = None


MetricRole = Literal["quality", "diagnostic"]
"""What a metric is for, declared by its scorer. ``quality``: a measure of the system, shown in the
headline tables, compared, flipped and attributed. ``diagnostic``: a breakdown that explains a quality
metric (the per-validator failure indicators ``format_fail:<contract>.<check>`` behind ``format_pass``):
shown apart in reports, never flips a case or takes a share of attribution; the diff still tests it (in the
one corrected family) and a gate rule may name it."""


class MetricSummary(Frozen):
    """Aggregate of one metric over a set of cases: mean over scored cases, with the counts."""

    mean: float | None
    n: int
    n_unscored: int
    greater_is_better: bool = True
    role: MetricRole = "quality"
    label: str | None = Field(default=None, description="how reports name it, when not by its name")


class Aggregates(Frozen):
    overall: dict[str, MetricSummary]
    segments: dict[str, dict[str, MetricSummary]] = Field(default_factory=dict)

    def metrics(self, role: MetricRole) -> list[str]:
        """The metrics of this role, in the run's order."""
        return [m for m, s in self.overall.items() if s.role == role]


RUN_FORMAT_VERSION: Literal[3] = 3
"""Version of the stored run file (:mod:`harness.runs` migrates versions 1 and 2 on load). Version 3 added
supplied outputs: ``CaseOutput.contexts``, ``GoldenCase.output`` and the error stage ``outputs``."""


class RunResult(Frozen):
    """One stored run: enough to diff, report and rebuild every scorer."""

    format_version: Literal[3] = RUN_FORMAT_VERSION
    run_id: str
    created_at: str
    manifest_id: str
    manifest: Manifest
    manifest_path: str | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    scorers: tuple[ScorerSpec, ...] = ()
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
