"""A run as columns: what diff, gate and the summaries read of a run, without its cases' records.

A run of 1,000,000 cases held as pydantic records is gigabytes; its per-case metric values are a few
megabytes. :class:`RunColumns` is that second form: one row per case, in the run's case order, as numpy
arrays (values) and Arrow arrays (ids, tags, error stages), with the header fields beside them. It is made
from an in-memory :class:`~harness.types.RunResult` (:meth:`RunColumns.from_result`) or read from a stored
run's Parquet file, only the columns asked for (:meth:`harness.runs.RunTable.columns`). Whatever needs a
case's full record (a flipped case's answer, its explanation) asks for those few ids through ``fetch``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.types import Aggregates, CaseOutput, GoldenCase, Manifest, RunResult, Score, ScorerSpec

Fetch = Callable[[Sequence[str]], tuple[list[GoldenCase], list[CaseOutput], list[Score]]]
"""Given case ids, their golden cases, outputs and scores (in the order asked; an unknown id is left out)."""

Batches = Callable[[], Iterator[tuple[list[GoldenCase], list[CaseOutput], list[Score]]]]
"""One pass over a run's records in row order, batch by batch (``RunTable.iter_batches``)."""

RankingBatches = Callable[[], Iterator[pa.RecordBatch]]
"""One pass over a run's :data:`RANKING_SCHEMA` columns in row order, batch by batch."""

RANKING_SCHEMA = pa.schema([
    pa.field("ranking_scored", pa.bool_(), nullable=False),
    pa.field("rank_scores", pa.list_(pa.float64()), nullable=False),
    pa.field("rank_grades", pa.list_(pa.int64()), nullable=False),
    pa.field("rank_repeats", pa.list_(pa.int32()), nullable=False),
    pa.field("rel_grades", pa.list_(pa.int64())),
])
"""What the score shift and the calibration read of a case's ranking, as columns (independent of the
diff's ``k`` and relevance level): ``ranking_scored`` (``CaseOutput.ranking_scored``); ``rank_scores`` (the
ranking's scores in rank order); ``rank_grades`` (the golden case's grade of each ranked doc, null where
the case does not judge it); ``rank_repeats`` (0-based ranks whose doc id already appeared higher up);
``rel_grades`` (the golden case's grades, ``relevance.values()``; null where the row has no golden case)."""

RANKING_COLUMNS = tuple(RANKING_SCHEMA.names)


def ranking_lists(cases: Sequence[GoldenCase | None], outputs: Sequence[CaseOutput]) -> dict[str, list[Any]]:
    """The :data:`RANKING_SCHEMA` columns of these rows (``cases[i]``: row ``i``'s golden case or None),
    as Python lists (what the run writer appends)."""
    scored: list[bool] = []
    scores: list[list[float]] = []
    grades: list[list[int | None]] = []
    repeats: list[list[int]] = []
    rel: list[list[int] | None] = []
    for case, o in zip(cases, outputs, strict=True):
        judged = case.relevance if case is not None else {}
        scored.append(bool(o.ranking_scored))
        scores.append([float(d.score) for d in o.ranking])
        grades.append([judged.get(d.doc_id) for d in o.ranking])
        seen: set[str] = set()
        rep: list[int] = []
        for j, d in enumerate(o.ranking):
            if d.doc_id in seen:
                rep.append(j)
            seen.add(d.doc_id)
        repeats.append(rep)
        rel.append(None if case is None else list(judged.values()))
    return {"ranking_scored": scored, "rank_scores": scores, "rank_grades": grades, "rank_repeats": repeats,
            "rel_grades": rel}


def ranking_batch(cases: Sequence[GoldenCase | None], outputs: Sequence[CaseOutput]) -> pa.RecordBatch:
    """:func:`ranking_lists` as one record batch of :data:`RANKING_SCHEMA`."""
    return pa.RecordBatch.from_pydict(ranking_lists(cases, outputs), schema=RANKING_SCHEMA)


@dataclass(frozen=True)
class RunColumns:
    """One run's per-case columns, row ``i`` = the run's ``i``-th case.

    - ``case_ids``: ``pa.string()`` array, unique.
    - ``values[metric]``: float64 array; NaN where the case has no score for the metric or its value is
      None (unscored). ``unscored[metric]``: bool array, True where a Score row exists with value None
      (so "absent" and "unscored" stay apart: aggregation counts only the second as n_unscored).
    - ``tags[key]``: ``pa.string()`` array of the case's tag value (null where the case lacks the tag);
      a case's segments are ``f"{key}={value}"`` over its non-null tags.
    - ``error_stage``: ``pa.string()`` array, null where the case did not error, else ``CaseError.stage``;
      ``error_kind``: the same for ``CaseError.kind``.
    - ``latency[stage]``: float64 array of ``CaseOutput.latency_s[stage]`` (NaN where not recorded).
    - ``fetch`` reads a few cases' records by id; ``batches`` (None: not available) one pass over all the
      records in row order (:meth:`records` picks one); the diff reads records only for flipped cases and,
      streamed, for the rankings behind the score shift and the calibration when ``ranking_batches`` is
      None (a table written before those columns existed).
    - ``ranking_batches``: one pass over the :data:`RANKING_SCHEMA` columns in row order (None: not stored;
      the diff then reads the rankings from the records).
    - ``extra``: ``cache_hits`` (stage -> bool array of ``CaseOutput.cache_hits``; absent: read from the
      records when a latency rule needs it), ``no_case`` (bool array: the row has no golden case).
    """

    run_id: str
    manifest_id: str
    manifest: Manifest
    aggregates: Aggregates
    counts: dict[str, int]
    scorers: tuple[ScorerSpec, ...]
    case_ids: pa.Array
    values: dict[str, np.ndarray]
    unscored: dict[str, np.ndarray]
    tags: dict[str, pa.Array]
    error_stage: pa.Array
    error_kind: pa.Array
    latency: dict[str, np.ndarray] = field(default_factory=dict)
    fetch: Fetch | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    batches: Batches | None = None
    ranking_batches: RankingBatches | None = None

    def __len__(self) -> int:
        return len(self.case_ids)

    # --- made from an in-memory run -------------------------------------------------------------------

    @classmethod
    def from_result(cls, run: RunResult, *, batch_rows: int = 10_000) -> RunColumns:
        """The columns of an in-memory run: one row per output, in the run's output order; a case's tags
        come from its golden case (the run's ``cases``), its values from its scores (the last score of a
        case and metric wins, as :meth:`RunResult.case_scores`). ``fetch``, ``batches`` and
        ``ranking_batches`` serve the run's own records. ``extra`` holds ``cache_hits`` (stage -> bool array, from
        ``CaseOutput.cache_hits``) and, when some output has no golden case, ``no_case`` (bool array)."""
        outputs = run.outputs
        n = len(outputs)
        ids = [o.case_id for o in outputs]
        row = {cid: i for i, cid in enumerate(ids)}
        cases = {c.id: c for c in run.cases}
        metrics: dict[str, None] = {}
        for s in run.scores:
            metrics.setdefault(s.metric, None)
        values = {m: np.full(n, np.nan) for m in metrics}
        unscored = {m: np.zeros(n, dtype=bool) for m in metrics}
        for s in run.scores:
            i = row.get(s.case_id)
            if i is None:
                continue
            values[s.metric][i] = np.nan if s.value is None else s.value
            unscored[s.metric][i] = s.value is None
        keys = sorted({k for c in run.cases for k in c.tags})
        tags = {k: pa.array([(cases[cid].tags.get(k) if cid in cases else None) for cid in ids], pa.string())
                for k in keys}
        stages = sorted({st for o in outputs for st in o.latency_s})
        latency = {st: np.array([o.latency_s.get(st, np.nan) for o in outputs], dtype=np.float64) for st in stages}
        hit_stages = sorted({st for o in outputs for st in o.cache_hits} | set(stages))
        extra: dict[str, Any] = {
            "cache_hits": {st: np.array([bool(o.cache_hits.get(st, False)) for o in outputs], dtype=bool)
                           for st in hit_stages}}
        if any(cid not in cases for cid in ids):
            extra["no_case"] = np.array([cid not in cases for cid in ids], dtype=bool)
        by_id = {o.case_id: o for o in outputs}
        scores_of: dict[str, list[Score]] = {}
        for s in run.scores:
            scores_of.setdefault(s.case_id, []).append(s)

        def fetch(wanted: Sequence[str]) -> tuple[list[GoldenCase], list[CaseOutput], list[Score]]:
            got = [c for c in wanted if c in by_id]
            return ([cases[c] for c in got if c in cases], [by_id[c] for c in got],
                    [s for c in got for s in scores_of.get(c, [])])

        def batches() -> Iterator[tuple[list[GoldenCase], list[CaseOutput], list[Score]]]:
            for start in range(0, n, batch_rows):
                yield fetch(ids[start:start + batch_rows])

        def ranking_batches() -> Iterator[pa.RecordBatch]:
            for start in range(0, n, batch_rows):
                part = outputs[start:start + batch_rows]
                yield ranking_batch([cases.get(o.case_id) for o in part], part)

        return cls(
            run_id=run.run_id, manifest_id=run.manifest_id, manifest=run.manifest, aggregates=run.aggregates,
            counts=dict(run.counts), scorers=tuple(run.scorers), case_ids=pa.array(ids, pa.string()), values=values,
            unscored=unscored, tags=tags,
            error_stage=pa.array([o.error.stage if o.error else None for o in outputs], pa.string()),
            error_kind=pa.array([o.error.kind if o.error else None for o in outputs], pa.string()),
            latency=latency, fetch=fetch, extra=extra, batches=batches, ranking_batches=ranking_batches,
        )

    # --- reading ----------------------------------------------------------------------------------------

    def errored(self) -> np.ndarray:
        """Bool per row: the case errored."""
        return _valid(self.error_stage)

    def has_case(self) -> np.ndarray | None:
        """Bool per row: the row has a golden case (None: every row has)."""
        no_case = self.extra.get("no_case")
        return None if no_case is None else ~np.asarray(no_case, dtype=bool)

    def tag_values(self, key: str) -> set[str]:
        """The values tag ``key`` takes in this run."""
        arr = self.tags.get(key)
        if arr is None:
            return set()
        return {v for v in pc.unique(arr.drop_null()).to_pylist() if v is not None}

    def segment_mask(self, segment: str) -> np.ndarray:
        """Bool per row: the case belongs to ``segment`` (``tag=value``)."""
        key, _, value = segment.partition("=")
        arr = self.tags.get(key)
        if arr is None:
            return np.zeros(len(self), dtype=bool)
        return _filled(pc.equal(arr, pa.scalar(value, pa.string())))

    def records(self, rows: np.ndarray | None = None, *, chunk: int = 10_000
                ) -> Iterator[tuple[np.ndarray, list[GoldenCase], list[CaseOutput], list[Score]]]:
        """The full records of ``rows`` (row indices, ascending; None: every row), streamed in chunks as
        (row indices, cases, outputs, scores), in row order: ``rows`` through ``fetch`` in chunks of
        ``chunk`` (a stored run's :meth:`~harness.runs.RunTable.take` decodes only the rows asked for, where
        a pass over ``batches`` decodes every row), every row as one pass over ``batches``; either one when
        the other is missing. Memory is bounded by one chunk or batch."""
        if self.batches is not None and (rows is None or self.fetch is None):
            wanted = None if rows is None else np.zeros(len(self), dtype=bool)
            if wanted is not None:
                wanted[np.asarray(rows, dtype=np.int64)] = True
            start = 0
            for cases, outputs, scores in self.batches():
                idx = np.arange(start, start + len(outputs))
                start += len(outputs)
                if wanted is None:
                    yield idx, cases, outputs, scores
                    continue
                keep = wanted[idx]
                if not keep.any():
                    continue
                ids = {o.case_id for o, k in zip(outputs, keep.tolist(), strict=True) if k}
                yield (idx[keep], [c for c in cases if c.id in ids], [o for o in outputs if o.case_id in ids],
                       [s for s in scores if s.case_id in ids])
            return
        if self.fetch is None:
            raise ValueError(f"run {self.run_id}: its columns have no fetch for the cases' records")
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            ids = self.case_ids.take(pa.array(part)).to_pylist()
            cases, outputs, scores = self.fetch(ids)
            pos = {cid: i for i, cid in enumerate(ids)}
            order = sorted(range(len(outputs)), key=lambda i: pos[outputs[i].case_id])
            outputs = [outputs[i] for i in order]
            yield np.array([part[pos[o.case_id]] for o in outputs], dtype=np.int64), cases, outputs, scores


def _filled(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy, null read as False."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _valid(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return _filled(pc.is_valid(arr))
