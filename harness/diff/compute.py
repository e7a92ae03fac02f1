"""`harness diff`: what changed between two runs, by how much, whether it is noise, and why.

Cases are aligned by id (:mod:`harness.diff.align`); the diff holds the artifact changes
(:mod:`~harness.diff.artifacts`), one paired comparison per metric x segment corrected over one family
(:mod:`~harness.diff.metrics`), the cases that flipped with their likely cause (:mod:`~harness.diff.flips`),
and the shift of retrieval score distributions and calibration (:mod:`~harness.diff.shift`). Cases
present in one run only are listed, never averaged away.

Every statistic is computed on the runs' columns (:class:`~harness.columns.RunColumns`: per-case numpy
arrays); a :class:`~harness.types.RunResult` is turned into columns first. Full records are read only for
the flipped cases and, streamed in chunks, for the rankings behind the score shift and the calibration.
"""

from __future__ import annotations

from harness.columns import RunColumns
from harness.diff.align import align
from harness.diff.artifacts import manifest_changes
from harness.diff.flips import case_flips
from harness.diff.metrics import directions, metric_deltas
from harness.diff.records import Diff, DiffSettings
from harness.diff.shift import calibration_shift, rankings, score_shifts
from harness.storage import Layout
from harness.types import RunResult


def as_columns(run: RunResult | RunColumns) -> RunColumns:
    """``run`` as columns (:meth:`RunColumns.from_result` for an in-memory run)."""
    return run if isinstance(run, RunColumns) else RunColumns.from_result(run)


def compare(
    base: RunResult | RunColumns, head: RunResult | RunColumns, settings: DiffSettings | None = None,
    layout: Layout | None = None, *, max_flips: int | None = None,
) -> Diff:
    """Compare ``head`` with ``base`` case by case (see the module docstring and
    :func:`harness.diff.metrics.metric_deltas` for the one family of corrected tests).

    ``max_flips`` keeps the largest-impact flips only (None: every flip, as published by ``harness diff
    --json``); only the kept cases' records are read. ``Diff.flips_total`` counts them all."""
    settings = settings or DiffSettings()
    b, h = as_columns(base), as_columns(head)
    alignment = align(b, h)
    dirs = directions(b, h)
    overall, segments, family = metric_deltas(b, h, alignment, dirs, settings)
    level = h.manifest.metrics.relevance_level
    flips, total = case_flips(b, h, alignment, dirs, settings, level, limit=max_flips)
    br = rankings(b, alignment.base_rows, settings.k, level)
    hr = rankings(h, alignment.head_rows, settings.k, level)
    return Diff(
        base_run=b.run_id,
        head_run=h.run_id,
        base_manifest_id=b.manifest_id,
        head_manifest_id=h.manifest_id,
        settings=settings,
        artifacts=tuple(manifest_changes(b.manifest, h.manifest, layout)),
        metrics=tuple(overall),
        segments=tuple(segments),
        segment_sizes={seg: alignment.segment_size(seg) for seg in alignment.segments},
        family_size=family,
        flips=tuple(flips),
        flips_total=total,
        only_in_base=alignment.only_in_base,
        only_in_head=alignment.only_in_head,
        score_shift=tuple(score_shifts(br, hr, settings)),
        calibration=calibration_shift(br, hr, settings),
        errors={"base": int(b.errored().sum()), "head": int(h.errored().sum())},
    )
