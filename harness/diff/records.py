"""The typed records of a comparison: :class:`Diff` and its parts, as every reader (CLI, gate, reports,
pytest plugin) sees them. Computed by :func:`harness.diff.compute_diff`, never by a reader."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from harness.types import Frozen


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
    metric: str
    segment: str = "all"
    greater_is_better: bool = True
    n: int
    n_base: int
    n_head: int
    base_mean: float | None
    head_mean: float | None
    delta: float | None
    rel_delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None = None
    significant: bool = False
    in_family: bool = False
    changed: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    cohens_dz: float | None = None
    direction: str | None = None


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
