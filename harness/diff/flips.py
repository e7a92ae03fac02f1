"""Per-case flips: the paired cases whose metrics moved at least ``flip_threshold``, with their likely
cause (relevant documents lost or gained, reordering, an error, a changed answer, a newly failing
validator).

Which cases flipped, by how much and in which direction is found on the aligned value columns; only the
flipped cases' records (their rankings, answers, errors) are read, through the runs' ``fetch``, in chunks."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.columns import RunColumns
from harness.diff.align import Alignment, relevant
from harness.diff.records import CaseFlip, DiffSettings
from harness.types import CaseOutput, GoldenCase

FETCH_CHUNK = 5_000  # flipped cases whose records are read at once


def _causes(bo: CaseOutput, ho: CaseOutput, case: GoldenCase | None, newly: list[str], settings: DiffSettings,
            level: int) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    rel = relevant(case, level)
    btop = [d.doc_id for d in bo.ranking[: settings.k]]
    htop = [d.doc_id for d in ho.ranking[: settings.k]]
    lost = tuple(sorted((set(btop) - set(htop)) & rel))
    gained = tuple(sorted((set(htop) - set(btop)) & rel))
    causes = []
    if lost:
        causes.append(f"relevant docs lost from top-{settings.k}: {', '.join(lost)}")
    if gained:
        causes.append(f"relevant docs gained in top-{settings.k}: {', '.join(gained)}")
    if not lost and not gained and btop != htop:
        causes.append(f"top-{settings.k} reordered")
    if ho.error and not bo.error:
        causes.append(f"{ho.error.stage} error: {ho.error.message}")
    if btop == htop and bo.answer != ho.answer:
        causes.append("answer changed while retrieval did not")
    if newly:
        causes.append(f"validator newly failing: {', '.join(newly)}")
    if not causes:
        causes.append("scores changed with the same retrieval and answer (scorer or judgments changed)")
    return tuple(causes), lost, gained


def case_flips(
    base: RunColumns, head: RunColumns, alignment: Alignment, dirs: dict[str, bool], settings: DiffSettings,
    level: int, *, limit: int | None = None,
) -> tuple[list[CaseFlip], int]:
    """(the flipped paired cases, largest impact first, how many flipped). Diagnostic metrics (a validator
    failing) do not flip a case on their own; one newly failing is named among the causes, by its label.
    ``limit`` keeps the first ``limit`` flips (None: all): only those cases' records are fetched."""
    diagnostics = {m: s.label or m for run in (base, head) for m, s in run.aggregates.overall.items()
                   if s.role == "diagnostic"}
    n = len(alignment)
    brows, hrows = alignment.base_rows, alignment.head_rows

    def paired(run: RunColumns, rows: np.ndarray, m: str) -> np.ndarray:
        col = run.values.get(m)
        return np.full(n, np.nan) if col is None else np.asarray(col, dtype=np.float64)[rows]

    flipped_metrics: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # metric, flipped?, base, head
    worst = np.full(n, np.inf)
    best = np.full(n, -np.inf)
    for m in sorted(set(base.values) | set(head.values)):
        if m in diagnostics:
            continue
        b, h = paired(base, brows, m), paired(head, hrows, m)
        with np.errstate(invalid="ignore"):
            hit = np.abs(h - b) >= settings.flip_threshold  # NaN (not scored in one run) never flips
        if not hit.any():
            continue
        signed = (h - b) if dirs.get(m, True) else (b - h)
        worst = np.where(hit, np.minimum(worst, signed), worst)
        best = np.where(hit, np.maximum(best, signed), best)
        flipped_metrics.append((m, hit, b, h))
    any_hit = np.zeros(n, dtype=bool)
    for _, hit, _, _ in flipped_metrics:
        any_hit |= hit
    where = np.flatnonzero(any_hit)
    total = int(where.size)
    if not total:
        return [], 0
    impact = np.maximum(np.abs(worst[where]), np.abs(best[where]))
    ids = alignment.common.take(pa.array(where))
    ranked = np.asarray(pc.sort_indices(
        pa.table({"impact": impact, "id": ids}), sort_keys=[("impact", "descending"), ("id", "ascending")]
    ).to_numpy(), dtype=np.int64)
    if limit is not None:
        ranked = ranked[:limit]
    shown = where[ranked]  # positions in the alignment, in flip order
    diag = [(m, diagnostics[m], paired(base, brows, m)[shown], paired(head, hrows, m)[shown])
            for m in diagnostics if m in head.values]

    flips: list[CaseFlip] = []
    for start in range(0, len(shown), FETCH_CHUNK):
        part = shown[start:start + FETCH_CHUNK]
        bcases, bouts, _ = _fetch(base, brows[part])
        hcases, houts, _ = _fetch(head, hrows[part])
        for j, pos in enumerate(part):
            i = start + j
            cid = str(alignment.common[int(pos)].as_py())
            deltas: dict[str, tuple[float | None, float | None]] = {
                m: (float(b[pos]), float(h[pos])) for m, hit, b, h in flipped_metrics if hit[pos]}
            w, bst = float(worst[pos]), float(best[pos])
            direction: Literal["regressed", "improved", "mixed"] = (
                "mixed" if w < 0 < bst else "regressed" if w < 0 else "improved"
            )
            newly = sorted(label for m, label, bv, hv in diag if hv[i] == 1.0 and bv[i] == 0.0)
            case = hcases[cid] if cid in hcases else bcases.get(cid)
            causes, lost, gained = _causes(bouts[cid], houts[cid], case, newly, settings, level)
            flips.append(CaseFlip(
                case_id=cid, direction=direction, impact=max(abs(w), abs(bst)), deltas=deltas, causes=causes,
                lost_relevant=lost, gained_relevant=gained, query=case.query if case else None,
            ))
    return flips, total


def _fetch(run: RunColumns, rows: np.ndarray) -> tuple[dict[str, GoldenCase], dict[str, CaseOutput], None]:
    """The golden cases and outputs of ``rows`` (any order), by case id."""
    order = np.sort(rows)
    cases: dict[str, GoldenCase] = {}
    outs: dict[str, CaseOutput] = {}
    for _, cs, os_, _ in run.records(order, chunk=max(1, len(order))):
        cases.update((c.id, c) for c in cs)
        outs.update((o.case_id, o) for o in os_)
    return cases, outs, None
