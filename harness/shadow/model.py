"""The records the release checks produce and every face renders (text, md, JSON, HTML).

``ReplayReport`` (``harness replay``): logged queries run through a baseline and a candidate manifest; the
two runs are ordinary :class:`~harness.types.RunResult` s over the same cases, compared by the diff
(:func:`harness.diff.compare`: paired tests, one corrected family over metrics x segments) and judged by the
gate (:func:`harness.gates.evaluate_gates`) under the ``[[replay.gates]]`` rules or the default ones.

``CanaryReport`` (``harness canary``): canary records (served by the candidate's manifest id) against
baseline records in the same windows and segments; unpaired tests per signal and segment, a Kayenta-style
classification (pass / high / low) and score, and the ``[[canary.gates]]`` rules.

Statuses fail closed: ``pass`` only when everything was judged and nothing failed; ``cannot_judge`` (a
side with too few records, a signal nobody measured, a rule that could not be evaluated) is not a pass
and exits 1 like ``fail``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.diff.records import ArtifactChange, Diff
from harness.gates import GateResult
from harness.types import Frozen

CheckStatus = Literal["pass", "fail", "marginal", "cannot_judge"]


class Quantiles(Frozen):
    """p50 / p95 / p99 of a sample (seconds for latency); None when ``n`` is 0."""

    n: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


# --- shadow replay -------------------------------------------------------------------------------------


class ReplaySelection(Frozen):
    """Which logged records were replayed: the source, the filters, how many matched and how many ran."""

    source: str  # "store" (the project's ingested logs) or the --log file's path
    window: str  # LogQuery.describe()
    sample: int | None = None
    seed: int = 0
    matched: int  # records that passed the filters
    replayed: int  # records replayed (matched, or the seeded sample of them)
    skipped: dict[str, int] = Field(default_factory=dict)  # reason -> records not replayed (e.g. no query)


class ReplaySide(Frozen):
    """One manifest's replay: its identity, its stored run, what it cost and how long it took."""

    label: Literal["baseline", "candidate"]
    manifest_path: str
    manifest_id: str
    run_id: str
    run_path: str
    cases: int
    errors: int
    errors_by_kind: dict[str, int] = Field(default_factory=dict)
    generated: int = 0  # calls made to the generator in this replay (cache misses)
    cache_hits: int = 0  # answers served from the cache (a resumed replay repeats no paid call)
    seconds: float = 0.0  # wall time of this side's run
    latency: dict[str, Quantiles] = Field(default_factory=dict)  # stage -> per-case seconds, fresh calls only


class Agreement(Frozen):
    """How alike the two sides' outputs are on the same queries, overall (``segment = "all"``) or in one
    ``tag=value`` segment: identical answers (whitespace-normalized), mean token F1 between the answers,
    mean Jaccard overlap of the retrieved ids, and the share with the same top document."""

    segment: str
    n: int
    answer_exact: float | None = None
    answer_token_f1: float | None = None
    ranking_jaccard: float | None = None
    top1_same: float | None = None


class SignalMove(Frozen):
    """A label-free signal without a better side (answer length, documents returned), described on both
    sides: the replay reports how it moved, no rule judges it."""

    signal: str
    segment: str
    n: int
    baseline_median: float | None = None
    candidate_median: float | None = None
    baseline_mean: float | None = None
    candidate_mean: float | None = None


class ReplayReport(Frozen):
    replay_id: str | None = None  # the folder <home>/replays/<replay id>/ holding both runs and report.json
    status: CheckStatus
    reasons: tuple[str, ...] = ()  # why not "pass", one line each
    selection: ReplaySelection
    baseline: ReplaySide
    candidate: ReplaySide
    rules: Literal["manifest", "default"]  # [[replay.gates]] or the default rules
    results: tuple[GateResult, ...]  # the gate's results over the replay's metrics
    diff: Diff  # baseline run vs candidate run, paired on the replayed records
    agreement: tuple[Agreement, ...] = ()
    moves: tuple[SignalMove, ...] = ()
    artifacts: tuple[ArtifactChange, ...] = ()  # what differs between the two manifests
    notes: tuple[str, ...] = ()


# --- canary ----------------------------------------------------------------------------------------------

Classification = Literal["pass", "high", "low", "nodata"]


class CanaryTest(Frozen):
    """One signal in one segment: baseline records against canary records in the same windows, stratified by
    the hour they were served in (a canary's share that changes by hour over a daily cycle is no difference).

    ``kind`` picks the test: ``numeric`` signals get van Elteren's stratified rank-sum test (``effect`` is the
    stratified Hodges-Lehmann shift canary - baseline, ``ci_*`` the shifts the test does not reject); ``rate``
    signals (booleans, errors, timeouts) the Cochran-Mantel-Haenszel test (``effect`` is the canary's rate
    minus the baseline's standardised to the canary's hourly mix). ``baseline_value`` is re-weighted to the
    canary's hourly mix too. ``relative`` is the effect over the baseline's value. The classification is
    ``high`` / ``low`` when the adjusted p-value is below alpha and the move exceeds the signal's tolerance
    (relative; for the default rate signals an absolute one), else ``pass``; ``nodata`` when either side has
    fewer than ``min_records``. ``failed`` when the classification is the signal's bad direction (or nodata:
    a signal that cannot be judged is not a pass)."""

    signal: str
    segment: str
    kind: Literal["numeric", "rate"]
    test: str
    bad: Literal["increase", "decrease", "either"]
    critical: bool = False
    weight: float = 1.0
    tolerance: float = 0.0
    baseline_n: int
    canary_n: int
    baseline_value: float | None = None  # median (numeric) or rate
    canary_value: float | None = None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    relative: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    classification: Classification
    failed: bool
    message: str = ""


class CanaryScore(Frozen):
    """Kayenta's score for one segment: 100 x the weight of passing signals over the weight of all judged
    ones; ``status`` by the thresholds (a failed critical signal fails the segment whatever the score)."""

    segment: str
    score: float | None
    passed: int
    judged: int
    nodata: int
    critical_failed: tuple[str, ...] = ()
    status: CheckStatus


class CanarySide(Frozen):
    label: Literal["baseline", "canary"]
    manifest_id: str
    manifest_path: str | None = None
    records: int
    first: str | None = None  # ISO time of the first record in the compared windows
    last: str | None = None


class RolledBack(Frozen):
    """One artifact put back to the baseline's pin: its pin before and after, and the file restored."""

    role: str
    kind: str
    before_version: str | None = None
    after_version: str | None = None
    before_sha256: str | None = None
    after_sha256: str | None = None
    restored_file: str | None = None  # the project file rewritten from the snapshot store; None: pin only
    removed: bool = False  # the baseline had no such artifact: it was removed from the manifest


class CanaryReport(Frozen):
    status: CheckStatus
    reasons: tuple[str, ...] = ()
    baseline: CanarySide
    canary: CanarySide
    windows: tuple[str, ...]  # the time windows compared (ISO start/end), in which both sides served
    alpha: float
    correction: str
    family_size: int
    tests: tuple[CanaryTest, ...]
    scores: tuple[CanaryScore, ...]  # "all" first, then each segment
    pass_score: float
    marginal_score: float
    results: tuple[GateResult, ...] = ()  # [[canary.gates]] rules
    rolled_back: tuple[RolledBack, ...] | None = None  # set when --rollback ran
    notes: tuple[str, ...] = ()
