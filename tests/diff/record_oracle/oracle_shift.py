"""Oracle of tests/diff/test_diff_columns.py: the record-based diff as it was before the columnar one.

Distribution shift: how the retrieval score distributions moved (PSI, KS over the top-1 and top-k
scores of paired cases) and the calibration of top-k scores as relevance probabilities (ECE, Brier;
Platt map fitted on base). Which scores and labels enter is read here from the records of the paired cases;
the statistics of them are harness's (:func:`harness.diff.shift._score_shift`,
:func:`harness.diff.shift.calibration_of`), unchanged by the columnar rewrite."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.diff.align import relevant
from harness.diff.records import CalibrationShift, DiffSettings, ScoreShift
from harness.diff.shift import _score_shift as score_shift
from harness.diff.shift import calibration_of
from harness.types import RunResult
from tests.diff.record_oracle.oracle_align import Alignment


def _score_shift(which: str, b: list[float], h: list[float]) -> ScoreShift:
    return score_shift(which, np.array(b, dtype=float), np.array(h, dtype=float))


def _pairs(run: RunResult, ids: Sequence[str], k: int, level: int) -> tuple[list[float], list[float], int]:
    """(score, relevant?) for every top-k passage of the judged cases, with its real score, and the
    number of judged-relevant passages the run did not retrieve in its top k. Those have no score and
    get none: a stand-in score would make any threshold below it look like it kept them."""
    cases = {c.id: c for c in run.cases}
    outs = {o.case_id: o for o in run.outputs}
    scores: list[float] = []
    labels: list[float] = []
    missing = 0
    for cid in ids:
        case = cases.get(cid)
        if case is None or not case.relevance:
            continue
        if not outs[cid].ranking_scored:  # ranks standing in for scores have no calibration
            continue
        rel = relevant(case, level)
        top = outs[cid].ranking[:k]
        for d in top:
            scores.append(d.score)
            labels.append(float(d.doc_id in rel))
        missing += len(rel - {d.doc_id for d in top})
    return scores, labels, missing


def score_shifts(base: RunResult, head: RunResult, alignment: Alignment, settings: DiffSettings) -> list[ScoreShift]:
    """The shift of the top-1 and the top-k retrieval scores of the paired cases (those ranked with real
    scores: ranks standing in for supplied outputs' missing scores are no distribution)."""
    bo = {o.case_id: o for o in base.outputs}
    ho = {o.case_id: o for o in head.outputs}
    common = [c for c in alignment.common if bo[c].ranking_scored and ho[c].ranking_scored]
    return [
        _score_shift(
            "top1",
            [bo[c].ranking[0].score for c in common if bo[c].ranking],
            [ho[c].ranking[0].score for c in common if ho[c].ranking],
        ),
        _score_shift(
            f"top{settings.k}",
            [d.score for c in common for d in bo[c].ranking[: settings.k]],
            [d.score for c in common for d in ho[c].ranking[: settings.k]],
        ),
    ]


def calibration_shift(
    base: RunResult, head: RunResult, alignment: Alignment, settings: DiffSettings, level: int
) -> CalibrationShift | None:
    """Calibration of the paired judged cases' top-k scores in both runs; None when base's top k holds
    no scored passage, no relevant one or only relevant ones (nothing to fit a Platt map on)."""
    bs, bl, bmiss = _pairs(base, alignment.common, settings.k, level)
    hs, hl, hmiss = _pairs(head, alignment.common, settings.k, level)
    return calibration_of(np.array(bs, dtype=float), np.array(bl, dtype=float), bmiss,
                          np.array(hs, dtype=float), np.array(hl, dtype=float), hmiss, settings.k)
