"""Oracle of tests/diff/test_diff_columns.py: the record-based diff as it was before the columnar one.

`harness diff`: what changed between two runs, by how much, whether it is noise, and why.

Cases are aligned by id (:mod:`harness.diff.align`); the diff holds the artifact changes
(:mod:`~harness.diff.artifacts`), one paired comparison per metric x segment corrected over one family
(:mod:`~harness.diff.metrics`), the cases that flipped with their likely cause (:mod:`~harness.diff.flips`),
and the shift of retrieval score distributions and calibration (:mod:`~harness.diff.shift`). Cases
present in one run only are listed, never averaged away.
"""

from __future__ import annotations

from harness.diff.artifacts import artifact_changes
from harness.diff.records import Diff, DiffSettings
from harness.storage import Layout
from harness.types import RunResult
from tests.diff.record_oracle.oracle_align import align
from tests.diff.record_oracle.oracle_flips import case_flips
from tests.diff.record_oracle.oracle_metrics import directions, metric_deltas
from tests.diff.record_oracle.oracle_shift import calibration_shift, score_shifts


def compare(
    base: RunResult, head: RunResult, settings: DiffSettings | None = None, layout: Layout | None = None
) -> Diff:
    """Compare ``head`` with ``base`` case by case (see the module docstring and
    :func:`harness.diff.metrics.metric_deltas` for the one family of corrected tests)."""
    settings = settings or DiffSettings()
    alignment = align(base, head)
    dirs = directions(base, head)
    overall, segments, family = metric_deltas(base, head, alignment, dirs, settings)
    level = head.manifest.metrics.relevance_level
    return Diff(
        base_run=base.run_id,
        head_run=head.run_id,
        base_manifest_id=base.manifest_id,
        head_manifest_id=head.manifest_id,
        settings=settings,
        artifacts=tuple(artifact_changes(base, head, layout)),
        metrics=tuple(overall),
        segments=tuple(segments),
        segment_sizes={seg: len(ids) for seg, ids in alignment.segments.items()},
        family_size=family,
        flips=tuple(case_flips(base, head, alignment, dirs, settings, level)),
        only_in_base=alignment.only_in_base,
        only_in_head=alignment.only_in_head,
        score_shift=tuple(score_shifts(base, head, alignment, settings)),
        calibration=calibration_shift(base, head, alignment, settings, level),
        errors={"base": sum(1 for o in base.outputs if o.error), "head": sum(1 for o in head.outputs if o.error)},
    )
