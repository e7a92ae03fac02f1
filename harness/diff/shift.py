"""Distribution shift: how the retrieval score distributions moved (PSI, KS over the top-1 and top-k
scores of paired cases) and the calibration of top-k scores as relevance probabilities (ECE, Brier;
Platt map fitted on base).

The rankings are read once per run (:func:`rankings`) into flat arrays: from the run's ranking columns
(``RunColumns.ranking_batches``) when it has them, else streamed from its records (a table written before
those columns existed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.columns import RunColumns
from harness.diff.align import relevant
from harness.diff.records import CalibrationShift, DiffSettings, ScoreShift


def _score_shift(which: str, b: np.ndarray, h: np.ndarray) -> ScoreShift:
    from harness.stats import ks_2samp, psi

    if not b.size or not h.size:
        return ScoreShift(
            which=which,
            n_base=int(b.size),
            n_head=int(h.size),
            base_mean=None,
            head_mean=None,
            psi=None,
            ks_statistic=None,
            ks_p_value=None,
        )
    p = psi(b, h)
    ks = ks_2samp(b, h)
    return ScoreShift(
        which=which,
        n_base=int(b.size),
        n_head=int(h.size),
        base_mean=float(np.mean(b)),
        head_mean=float(np.mean(h)),
        psi=p.psi,
        ks_statistic=ks.statistic,
        ks_p_value=ks.p_value,
    )


@dataclass(frozen=True)
class Rankings:
    """What the score shift and the calibration read of one run's rankings, one entry per paired case (in
    the alignment's order): ``scored`` (the ranking's scores are the retriever's), ``top1`` (NaN: empty
    ranking), ``judged`` (the run's golden case has judgments), the top-``k`` scores and whether each is
    relevant at ``level`` (ragged), and ``missing``: the judged-relevant ids not in the top ``k``."""

    scored: np.ndarray
    has_top: np.ndarray
    top1: np.ndarray
    judged: np.ndarray
    top_scores: pa.ListArray
    top_relevant: pa.ListArray
    missing: np.ndarray


def rankings(run: RunColumns, rows: np.ndarray, k: int, level: int) -> Rankings:
    """The :class:`Rankings` of ``rows`` of ``run`` (in that order): from its ranking columns
    (``ranking_batches``, one pass, no record decoded) when the run has them, else streamed from its
    records (one pass over ``batches``, or the rows' records through ``fetch``), one chunk at a time."""
    if run.ranking_batches is not None:
        return _rankings_from_columns(run, rows, k, level)
    return _rankings_from_records(run, rows, k, level)


def _np(arr: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _row_of(lengths: np.ndarray) -> np.ndarray:
    """For a flattened list array with these list lengths, each element's row."""
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def _rankings_from_columns(run: RunColumns, rows: np.ndarray, k: int, level: int) -> Rankings:
    """:func:`rankings` from the :data:`~harness.columns.RANKING_SCHEMA` batches: Arrow list kernels and
    numpy over each batch's rows that are among ``rows``; the same values as the record pass."""
    assert run.ranking_batches is not None
    n = len(rows)
    slot = np.full(len(run), -1, dtype=np.int64)
    slot[np.asarray(rows, dtype=np.int64)] = np.arange(n)
    parts: dict[str, list[np.ndarray]] = {
        key: [] for key in ("slot", "scored", "has_top", "top1", "judged", "missing", "lengths", "scores", "rel")}
    start = 0
    for batch in run.ranking_batches():
        m = batch.num_rows
        s = slot[start:start + m]
        start += m
        keep = s >= 0
        if not keep.any():
            continue
        if not keep.all():
            batch = batch.filter(pa.array(keep))
        m = batch.num_rows
        full = batch.column("rank_scores")
        full_len = _np(pc.list_value_length(full), np.int64)
        has_top = full_len > 0
        top1 = np.full(m, np.nan)
        top1[has_top] = _np(pc.list_slice(full, 0, 1).flatten(), np.float64)
        top = pc.list_slice(full, 0, k)
        top_len = np.minimum(full_len, k)
        top_scores = _np(top.flatten(), np.float64)
        # a null grade (the case does not judge the doc) is NaN here: never >= level
        top_grades = _np(pc.list_slice(batch.column("rank_grades"), 0, k).flatten(), np.float64)
        top_rel = top_grades >= level
        top_row = _row_of(top_len)
        hits = np.bincount(top_row[top_rel], minlength=m)
        # a doc id seen higher up counts once among the retrieved relevant ids
        reps = batch.column("rank_repeats")
        rep_at = _np(reps.flatten(), np.int64)
        rep_row = _row_of(_np(pc.list_value_length(reps), np.int64))
        inside = rep_at < top_len[rep_row]
        top_starts = np.concatenate([[0], np.cumsum(top_len)[:-1]]).astype(np.int64)
        rep_rel = top_rel[top_starts[rep_row[inside]] + rep_at[inside]]
        hits -= np.bincount(rep_row[inside][rep_rel], minlength=m)
        judged_grades = batch.column("rel_grades")
        judged_len = _np(pc.list_value_length(judged_grades), np.float64)  # NaN: no golden case
        relevant_grades = _np(judged_grades.flatten(), np.float64) >= level
        n_relevant = np.bincount(_row_of(np.nan_to_num(judged_len).astype(np.int64))[relevant_grades], minlength=m)
        parts["slot"].append(s[keep])
        parts["scored"].append(_np(batch.column("ranking_scored"), bool))
        parts["has_top"].append(has_top)
        parts["top1"].append(top1)
        parts["judged"].append(judged_len > 0)
        parts["missing"].append((n_relevant - hits).astype(np.int64))
        parts["lengths"].append(top_len)
        parts["scores"].append(top_scores)
        parts["rel"].append(top_rel)
    if start != len(run):
        raise ValueError(f"run {run.run_id}: its ranking columns have {start} rows, the run {len(run)}")
    cat = {key: np.concatenate(v) if v else np.empty(0) for key, v in parts.items()}
    got = cat["slot"].astype(np.int64)
    if got.size != n:
        raise ValueError(f"run {run.run_id}: {n - got.size} paired cases have no ranking row")
    back = np.argsort(got, kind="stable")  # entry of each of rows, in rows' order
    lengths = cat["lengths"].astype(np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    take = pa.array(back)
    return Rankings(
        scored=cat["scored"].astype(bool)[back], has_top=cat["has_top"].astype(bool)[back],
        top1=cat["top1"].astype(np.float64)[back], judged=cat["judged"].astype(bool)[back],
        top_scores=pa.ListArray.from_arrays(offsets, pa.array(cat["scores"].astype(np.float64), pa.float64())
                                            ).take(take),
        top_relevant=pa.ListArray.from_arrays(offsets, pa.array(cat["rel"].astype(bool), pa.bool_())).take(take),
        missing=cat["missing"].astype(np.int64)[back],
    )


def _rankings_from_records(run: RunColumns, rows: np.ndarray, k: int, level: int) -> Rankings:
    n = len(rows)
    order = np.argsort(rows, kind="stable")
    slot = np.full(len(run), -1, dtype=np.int64)
    slot[rows[order]] = np.arange(n)
    scored = np.zeros(n, dtype=bool)
    has_top = np.zeros(n, dtype=bool)
    top1 = np.full(n, np.nan)
    judged = np.zeros(n, dtype=bool)
    missing = np.zeros(n, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    score_parts: list[np.ndarray] = []
    rel_parts: list[np.ndarray] = []
    expected = 0
    source = run.records(None) if run.batches is not None else run.records(np.sort(rows))
    for idx, cases, outputs, _ in source:
        by_id = {c.id: c for c in cases}
        sc: list[float] = []
        rl: list[bool] = []
        for r, o in zip(idx.tolist(), outputs, strict=True):
            s = int(slot[r])
            if s < 0:
                continue
            if s != expected:
                raise ValueError(f"run {run.run_id}: records out of row order at row {r}")
            expected += 1
            case = by_id.get(o.case_id)
            top = o.ranking[:k]
            scored[s] = o.ranking_scored
            if o.ranking:
                has_top[s] = True
                top1[s] = o.ranking[0].score
            rel = relevant(case, level)
            judged[s] = case is not None and bool(case.relevance)
            lengths[s] = len(top)
            sc.extend(d.score for d in top)
            rl.extend(d.doc_id in rel for d in top)
            missing[s] = len(rel - {d.doc_id for d in top})
        score_parts.append(np.array(sc, dtype=np.float64))
        rel_parts.append(np.array(rl, dtype=bool))
    if expected != n:
        raise ValueError(f"run {run.run_id}: {n - expected} paired cases have no record")
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    flat_scores = pa.array(np.concatenate(score_parts) if score_parts else np.empty(0), pa.float64())
    flat_rel = pa.array(np.concatenate(rel_parts) if rel_parts else np.empty(0, dtype=bool), pa.bool_())
    back = np.argsort(order, kind="stable")  # slot of each entry of rows
    take = pa.array(back)
    return Rankings(
        scored=scored[back], has_top=has_top[back], top1=top1[back], judged=judged[back],
        top_scores=pa.ListArray.from_arrays(offsets, flat_scores).take(take),
        top_relevant=pa.ListArray.from_arrays(offsets, flat_rel).take(take),
        missing=missing[back],
    )


def _flat(lists: pa.ListArray, mask: np.ndarray) -> np.ndarray:
    return np.asarray(lists.filter(pa.array(mask)).flatten().to_numpy(zero_copy_only=False))


def score_shifts(base: Rankings, head: Rankings, settings: DiffSettings) -> list[ScoreShift]:
    """The shift of the top-1 and the top-k retrieval scores of the paired cases (those ranked with real
    scores: ranks standing in for supplied outputs' missing scores are no distribution)."""
    both = base.scored & head.scored
    return [
        _score_shift("top1", base.top1[both & base.has_top], head.top1[both & head.has_top]),
        _score_shift(f"top{settings.k}", _flat(base.top_scores, both).astype(np.float64),
                     _flat(head.top_scores, both).astype(np.float64)),
    ]


def _pairs(r: Rankings) -> tuple[np.ndarray, np.ndarray, int]:
    """(score, relevant?) for every top-k passage of the judged cases, with its real score, and the
    number of judged-relevant passages the run did not retrieve in its top k. Those have no score and
    get none: a stand-in score would make any threshold below it look like it kept them."""
    use = r.judged & r.scored  # ranks standing in for scores have no calibration
    return (_flat(r.top_scores, use).astype(np.float64), _flat(r.top_relevant, use).astype(np.float64),
            int(r.missing[use].sum()))


def calibration_shift(base: Rankings, head: Rankings, settings: DiffSettings) -> CalibrationShift | None:
    """Calibration of the paired judged cases' top-k scores in both runs; None when base's top k holds
    no scored passage, no relevant one or only relevant ones (nothing to fit a Platt map on)."""
    return calibration_of(*_pairs(base), *_pairs(head), settings.k)


def calibration_of(bs: np.ndarray, bl: np.ndarray, bmiss: int, hs: np.ndarray, hl: np.ndarray, hmiss: int,
                   k: int) -> CalibrationShift | None:
    """The :class:`CalibrationShift` of both runs' top-``k`` passages: their scores (``bs``, ``hs``), whether
    each is relevant (``bl``, ``hl``: 0/1) and how many relevant ones each run left out of its top k
    (``bmiss``, ``hmiss``); None when there is nothing to fit a Platt map on (see :func:`calibration_shift`)."""
    from harness.stats import calibration_drift

    if not (bs.size and hs.size and 0 < bl.sum() < bl.size):
        return None
    cd = calibration_drift(bs, bl, hs, hl, base_unretrieved=bmiss, head_unretrieved=hmiss)
    return CalibrationShift(
        k=k,
        n_base=int(bs.size),
        n_head=int(hs.size),
        relevant_base=cd.base_relevant,
        relevant_head=cd.head_relevant,
        relevant_in_top_k_base=int(bl.sum()),
        relevant_in_top_k_head=int(hl.sum()),
        in_top_k_share_base=cd.base_retrieved_share,
        in_top_k_share_head=cd.head_retrieved_share,
        ece_base=cd.platt_base.ece,
        ece_head=cd.platt_head.ece,
        brier_base=cd.platt_base.brier,
        brier_head=cd.platt_head.brier,
        raw_ece_base=cd.raw_base.ece,
        raw_ece_head=cd.raw_head.ece,
        threshold=cd.threshold,
        target_recall=cd.target_recall,
        kept_base_at_threshold=cd.base_recall,
        kept_head_at_threshold=cd.head_recall,
    )
