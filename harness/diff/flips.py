"""Per-case flips: the paired cases whose metrics moved at least ``flip_threshold``, with their likely
cause (relevant documents lost or gained, reordering, an error, a changed answer, a newly failing
validator).

Which cases flipped, by how much and in which direction is found on the aligned value columns; only the
shown flips' records (their rankings, answers, errors) are read: each run's rows that any shown flip needs,
once, in row order (:meth:`~harness.columns.RunColumns.records`, in chunks), kept as the little the causes
read of them (:class:`_Side`), whichever metrics flipped the case."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.columns import RunColumns
from harness.diff.align import Alignment, relevant
from harness.diff.records import CaseFlip, DiffSettings
from harness.types import CaseError, CaseOutput, GoldenCase

FETCH_CHUNK = 5_000  # rows of a run whose records are read and decoded at once


@dataclass(frozen=True, slots=True)
class _Golden:
    """What a flip reads of a golden case: the docs it judges relevant at the level, and its query."""

    relevant: frozenset[str]
    query: str


@dataclass(frozen=True, slots=True)
class _Side:
    """What the causes read of one run's record of a case: the ids of its top-``k`` ranked docs, its error,
    its answer as a 128-bit digest (None: no answer; the causes only ask whether two answers differ, and a
    digest keeps every shown flip's answers from being held at once), and its golden case (None: the row
    has none)."""

    top: tuple[str, ...]
    error: CaseError | None
    answer: bytes | None
    case: _Golden | None


def _answer_key(answer: str | None) -> bytes | None:
    if answer is None:
        return None
    return hashlib.blake2b(answer.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _side(o: CaseOutput, case: GoldenCase | None, k: int, level: int, pool: dict[str, str] | None = None) -> _Side:
    """``o`` and its golden case as the causes read them (``pool``: doc ids seen so far, shared)."""
    top = tuple(d.doc_id for d in o.ranking[:k])
    golden = None
    if case is not None:
        rel = relevant(case, level)
        golden = _Golden(frozenset(rel if pool is None else (pool.setdefault(d, d) for d in rel)), case.query)
    if pool is not None:
        top = tuple(pool.setdefault(d, d) for d in top)
    return _Side(top=top, error=o.error, answer=_answer_key(o.answer), case=golden)


def _reasons(b: _Side, h: _Side, rel: frozenset[str], newly: list[str], settings: DiffSettings
             ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    btop, htop = list(b.top), list(h.top)
    lost = tuple(sorted((set(btop) - set(htop)) & rel))
    gained = tuple(sorted((set(htop) - set(btop)) & rel))
    causes = []
    if lost:
        causes.append(f"relevant docs lost from top-{settings.k}: {', '.join(lost)}")
    if gained:
        causes.append(f"relevant docs gained in top-{settings.k}: {', '.join(gained)}")
    if not lost and not gained and btop != htop:
        causes.append(f"top-{settings.k} reordered")
    if h.error and not b.error:
        causes.append(f"{h.error.stage} error: {h.error.message}")
    if btop == htop and b.answer != h.answer:
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
    ``limit`` keeps the first ``limit`` flips (None: all): only those cases' records are fetched, each
    record once (:func:`_sides`)."""
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
    bsides = _sides(base, brows[shown], settings.k, level)
    hsides = _sides(head, hrows[shown], settings.k, level)

    flips: list[CaseFlip] = []
    for i, pos in enumerate(shown.tolist()):
        cid = str(alignment.common[pos].as_py())
        deltas: dict[str, tuple[float | None, float | None]] = {
            m: (float(b[pos]), float(h[pos])) for m, hit, b, h in flipped_metrics if hit[pos]}
        w, bst = float(worst[pos]), float(best[pos])
        direction: Literal["regressed", "improved", "mixed"] = (
            "mixed" if w < 0 < bst else "regressed" if w < 0 else "improved"
        )
        newly = sorted(label for m, label, bv, hv in diag if hv[i] == 1.0 and bv[i] == 0.0)
        bs, hs = bsides[int(brows[pos])], hsides[int(hrows[pos])]
        case = hs.case if hs.case is not None else bs.case  # the head's golden case, else the base's
        causes, lost, gained = _reasons(bs, hs, case.relevant if case else frozenset(), newly, settings)
        flips.append(CaseFlip(
            case_id=cid, direction=direction, impact=max(abs(w), abs(bst)), deltas=deltas, causes=causes,
            lost_relevant=lost, gained_relevant=gained, query=case.query if case else None,
        ))
    return flips, total


def _sides(run: RunColumns, rows: np.ndarray, k: int, level: int) -> dict[int, _Side]:
    """The :class:`_Side` of each of ``rows`` (any order, repeats allowed), by row: every row read and
    decoded once, in row order, :data:`FETCH_CHUNK` rows at a time."""
    wanted = np.unique(np.asarray(rows, dtype=np.int64))
    pool: dict[str, str] = {}
    out: dict[int, _Side] = {}
    for idx, cases, outputs, _ in run.records(wanted, chunk=FETCH_CHUNK):
        by_id = {c.id: c for c in cases}
        for r, o in zip(idx.tolist(), outputs, strict=True):
            out[r] = _side(o, by_id.get(o.case_id), k, level, pool)
    return out
