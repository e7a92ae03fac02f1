"""Oracle of tests/diff/test_diff_columns.py: the record-based diff as it was before the columnar one.

Per-case flips: the paired cases whose metrics moved at least ``flip_threshold``, with their likely
cause (relevant documents lost or gained, reordering, an error, a changed answer, a newly failing
validator). Which cases flipped, by how much and in which direction is read here from the per-case score
dicts; the causes are found here from the flipped cases' whole records (:func:`causes`), as the diff
found them before it kept only the parts of a record they read."""

from __future__ import annotations

from typing import Literal

from harness.diff.align import relevant
from harness.diff.records import CaseFlip, DiffSettings
from harness.types import CaseOutput, GoldenCase, RunResult
from tests.diff.record_oracle.oracle_align import Alignment


def causes(bo: CaseOutput, ho: CaseOutput, case: GoldenCase | None, newly: list[str], ds: DiffSettings,
           level: int) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The causes as the diff found them on the whole records before it kept only parts of them."""
    rel = relevant(case, level)
    btop = [d.doc_id for d in bo.ranking[: ds.k]]
    htop = [d.doc_id for d in ho.ranking[: ds.k]]
    lost = tuple(sorted((set(btop) - set(htop)) & rel))
    gained = tuple(sorted((set(htop) - set(btop)) & rel))
    found = []
    if lost:
        found.append(f"relevant docs lost from top-{ds.k}: {', '.join(lost)}")
    if gained:
        found.append(f"relevant docs gained in top-{ds.k}: {', '.join(gained)}")
    if not lost and not gained and btop != htop:
        found.append(f"top-{ds.k} reordered")
    if ho.error and not bo.error:
        found.append(f"{ho.error.stage} error: {ho.error.message}")
    if btop == htop and bo.answer != ho.answer:
        found.append("answer changed while retrieval did not")
    if newly:
        found.append(f"validator newly failing: {', '.join(newly)}")
    if not found:
        found.append("scores changed with the same retrieval and answer (scorer or judgments changed)")
    return tuple(found), lost, gained


def _flip(
    cid: str,
    bscores: dict[str, float | None],
    hscores: dict[str, float | None],
    dirs: dict[str, bool],
    diagnostics: dict[str, str],
    bo: CaseOutput,
    ho: CaseOutput,
    case: GoldenCase | None,
    settings: DiffSettings,
    level: int,
) -> CaseFlip | None:
    deltas: dict[str, tuple[float | None, float | None]] = {}
    signed: list[float] = []
    for m in sorted(set(bscores) | set(hscores)):
        b, h = bscores.get(m), hscores.get(m)
        if b is None or h is None or m in diagnostics:
            continue
        if abs(h - b) >= settings.flip_threshold:
            deltas[m] = (b, h)
            signed.append((h - b) if dirs.get(m, True) else (b - h))
    if not deltas:
        return None
    newly = sorted(
        diagnostics[m]
        for m, v in hscores.items()
        if m in diagnostics and v == 1.0 and bscores.get(m) == 0.0
    )
    causes_, lost, gained = causes(bo, ho, case, newly, settings, level)
    worst, best = min(signed), max(signed)
    direction: Literal["regressed", "improved", "mixed"] = (
        "mixed" if worst < 0 < best else "regressed" if worst < 0 else "improved"
    )
    impact = max(abs(worst), abs(best))
    return CaseFlip(
        case_id=cid,
        direction=direction,
        impact=impact,
        deltas=deltas,
        causes=causes_,
        lost_relevant=lost,
        gained_relevant=gained,
        query=case.query if case else None,
    )


def case_flips(
    base: RunResult, head: RunResult, alignment: Alignment, dirs: dict[str, bool], settings: DiffSettings, level: int
) -> list[CaseFlip]:
    """The flipped paired cases, largest impact first. Diagnostic metrics (a validator failing) do not flip a
    case on their own; one newly failing is named among the causes, by its label."""
    bcs, hcs = base.case_scores(), head.case_scores()
    diagnostics = {m: s.label or m for run in (base, head) for m, s in run.aggregates.overall.items()
                   if s.role == "diagnostic"}
    bo = {o.case_id: o for o in base.outputs}
    ho = {o.case_id: o for o in head.outputs}
    flips = [
        f
        for cid in alignment.common
        if (
            f := _flip(
                cid, bcs.get(cid, {}), hcs.get(cid, {}), dirs, diagnostics, bo[cid], ho[cid], alignment.cases.get(cid),
                settings, level,
            )
        )
        is not None
    ]
    flips.sort(key=lambda f: (-f.impact, f.case_id))
    return flips
