"""The typed records of a comparison: :class:`Diff` and its parts, as every reader (CLI, gate, reports,
pytest plugin) sees them. Computed by :func:`harness.diff.compare`, never by a reader."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_serializer

from harness.stats.paired import Direction, PairedComparison
from harness.types import Frozen, MetricRole


class DiffSettings(Frozen):
    alpha: float = 0.05
    correction: Literal["holm", "bh", "none"] = "holm"
    test: Literal["permutation", "wilcoxon", "bootstrap"] = "permutation"
    n_resamples: int = 5000
    seed: int = 0
    k: int = 10  # depth for lost/gained relevant docs, score shift and calibration
    flip_threshold: float = 0.1  # a case flips when a metric moves at least this much


class ArtifactChange(Frozen):
    role: str
    change: Literal["added", "removed", "changed"]
    kind: str
    base_version: str | None = None
    head_version: str | None = None
    base_sha256: str | None = None
    head_sha256: str | None = None
    params_diff: dict[str, Any] | None = None
    text_diff: str | None = None


class MetricDelta(Frozen):
    """One metric (overall or in one ``tag=value`` segment) compared, as every reader sees it.

    ``comparison`` is the one set of paired statistics (:func:`harness.stats.compare_paired` over the
    aligned cases both runs scored; ``n = 0`` when there are none) and the read-only properties below
    are its values. Its ``p_value`` is the diff's: 1 when no value differs, and for a test in the family
    taken at the family's resolution (:func:`harness.diff.metrics.metric_deltas`). The diff adds what
    one comparison cannot know: each run's scored count, how many cases changed, and the family.
    Serialized flat, in the published ``harness diff --json`` layout.
    """

    metric: str
    segment: str = "all"
    n_base: int
    n_head: int
    comparison: PairedComparison
    p_adjusted: float | None = None
    significant: bool = False
    in_family: bool = False
    changed: int = 0
    role: MetricRole = "quality"  # as the runs' scorers declared it (head's declaration wins)

    @property
    def greater_is_better(self) -> bool:
        return self.comparison.greater_is_better

    @property
    def n(self) -> int:
        return self.comparison.n

    @property
    def base_mean(self) -> float | None:
        return self.comparison.base_mean

    @property
    def head_mean(self) -> float | None:
        return self.comparison.head_mean

    @property
    def delta(self) -> float | None:
        return self.comparison.delta

    @property
    def rel_delta(self) -> float | None:
        return self.comparison.rel_delta

    @property
    def ci_low(self) -> float | None:
        return self.comparison.ci_low

    @property
    def ci_high(self) -> float | None:
        return self.comparison.ci_high

    @property
    def p_value(self) -> float | None:
        return self.comparison.p_value

    @property
    def wins(self) -> int:
        return self.comparison.wins

    @property
    def ties(self) -> int:
        return self.comparison.ties

    @property
    def losses(self) -> int:
        return self.comparison.losses

    @property
    def cohens_dz(self) -> float | None:
        return self.comparison.cohens_dz

    @property
    def direction(self) -> Direction | None:
        return self.comparison.direction

    @model_serializer
    def _published(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "segment": self.segment,
            "greater_is_better": self.greater_is_better,
            "role": self.role,
            "n": self.n,
            "n_base": self.n_base,
            "n_head": self.n_head,
            "base_mean": self.base_mean,
            "head_mean": self.head_mean,
            "delta": self.delta,
            "rel_delta": self.rel_delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "significant": self.significant,
            "in_family": self.in_family,
            "changed": self.changed,
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
            "cohens_dz": self.cohens_dz,
            "direction": self.direction,
        }


class CaseFlip(Frozen):
    case_id: str
    direction: Literal["regressed", "improved", "mixed"]
    impact: float
    deltas: dict[str, tuple[float | None, float | None]]
    causes: tuple[str, ...]
    lost_relevant: tuple[str, ...] = ()
    gained_relevant: tuple[str, ...] = ()
    query: str | None = None


class ScoreShift(Frozen):
    which: str
    n_base: int
    n_head: int
    base_mean: float | None
    head_mean: float | None
    psi: float | None
    ks_statistic: float | None
    ks_p_value: float | None


class CalibrationShift(Frozen):
    """Top-k retrieval scores read as relevance probabilities, over real scores only.

    ``n_*`` count the scored (passage, relevant?) pairs of the top ``k`` of aligned cases with
    judgments; ECE/Brier (Platt map fitted on base; ``raw_*`` clipped to [0, 1]) are over these.
    ``relevant_*`` count the judged-relevant passages of those cases, ``relevant_in_top_k_*`` the ones
    retrieved in the top ``k`` and ``in_top_k_share_*`` their share; a relevant passage not retrieved
    has no score and is given none.
    ``threshold`` is the highest score keeping ``target_recall`` of base's relevant passages in its
    top ``k``; ``kept_*_at_threshold`` is the share of each run's relevant top-``k`` passages scoring
    at least that.
    """

    k: int
    n_base: int
    n_head: int
    relevant_base: int
    relevant_head: int
    relevant_in_top_k_base: int
    relevant_in_top_k_head: int
    in_top_k_share_base: float | None
    in_top_k_share_head: float | None
    ece_base: float | None
    ece_head: float | None
    brier_base: float | None
    brier_head: float | None
    raw_ece_base: float | None
    raw_ece_head: float | None
    threshold: float | None
    target_recall: float
    kept_base_at_threshold: float | None
    kept_head_at_threshold: float | None


class Diff(Frozen):
    base_run: str
    head_run: str
    base_manifest_id: str
    head_manifest_id: str
    settings: DiffSettings
    artifacts: tuple[ArtifactChange, ...]
    metrics: tuple[MetricDelta, ...]
    segments: tuple[MetricDelta, ...]
    segment_sizes: dict[str, int] = Field(default_factory=dict)
    family_size: int = 0
    flips: tuple[CaseFlip, ...]
    flips_total: int | None = Field(default=None, exclude=True, repr=False)
    """How many paired cases flipped (``flips`` may keep only the largest, ``compare(max_flips=...)``);
    None: ``len(flips)``. Left out of dumps, so the published layout is unchanged."""
    only_in_base: tuple[str, ...]
    only_in_head: tuple[str, ...]
    score_shift: tuple[ScoreShift, ...] = ()
    calibration: CalibrationShift | None = None
    errors: dict[str, int] = Field(default_factory=dict)

    def metric(self, name: str, segment: str = "all") -> MetricDelta | None:
        pool = self.metrics if segment == "all" else self.segments
        return next((m for m in pool if m.metric == name and m.segment == segment), None)


def diff_json(diff: Diff) -> str:
    return json.dumps(diff.model_dump(mode="json"), indent=2)
