"""Ranking metrics with trec_eval's exact definitions, computed with numpy over all queries at once.

Every metric is computed from one padded ``[n_queries x depth]`` matrix of relevance codes (the code
of the document at each rank) plus one ``[n_queries x n_judged]`` matrix of the judged grades, sorted
descending (for the ideal nDCG and for ``num_rel``). Nothing loops over documents in Python.

Conventions, all taken from trec_eval 9 (``form_res_rels.c`` and the ``m_*.c`` measure files):

* Ranking: documents are ordered by score descending, ties broken by document id descending (byte
  order, trec_eval's ``comp_sim_docno``); a rank column in a run is ignored.
* Relevance code of a retrieved document: its qrels grade if judged with a grade >= 0, ``-2`` if
  judged with a negative grade (trec_eval's RELVALUE_UNJUDGED), ``-1`` if not in the qrels
  (RELVALUE_NONPOOL). A document is relevant when its code >= ``relevance_level`` (trec_eval ``-l``).
* ``num_rel``: judged documents with a grade >= 0 and >= ``relevance_level``.
* nDCG ignores ``relevance_level``: the gain of a document is its grade (negative grades and
  unjudged documents gain 0), the discount is ``log2(rank + 1)``, and the ideal ranking is every
  judged document with a positive grade, by grade descending (``m_ndcg.c``, ``m_ndcg_cut.c``).
* Sums are accumulated in rank order (``numpy.cumsum``), as trec_eval's loops do, so values match
  trec_eval to the last bit in practice; nothing is rounded here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.errors import UnknownMetricError

if TYPE_CHECKING:
    from harness.types import MetricRole

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[tuple[str, float]]]

#: Relevance code of a retrieved document that is not in the qrels (trec_eval RELVALUE_NONPOOL).
UNJUDGED = -1
#: Relevance code of a retrieved document judged with a negative grade (trec_eval RELVALUE_UNJUDGED).
JUDGED_NEGATIVE = -2
#: Padding code for ranks past the end of a ranking: never relevant, never a gain.
PAD = int(np.iinfo(np.int32).min)

__all__ = [
    "JUDGED_NEGATIVE",
    "PAD",
    "UNJUDGED",
    "JudgedRankings",
    "MetricInfo",
    "Qrels",
    "Run",
    "build_judged",
    "compute_metrics",
    "evaluate",
    "metric_info",
    "metric_names",
    "rank_codes",
]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric name means: its base measure, cutoff, direction and formula, and its role
    (:data:`harness.types.MetricRole`), declared by the scorer so no reader parses the name; ``label``
    is how reports name it when not by its name (a validator's ``contract.check``)."""

    name: str
    base: str
    cutoff: int | None
    greater_is_better: bool
    description: str
    role: MetricRole = "quality"
    label: str | None = None


# base -> (cutoff: "required" | "optional" | "none", greater_is_better, description)
_BASES: dict[str, tuple[str, bool, str]] = {
    "ndcg": (
        "optional",
        True,
        "nDCG (Jarvelin & Kekalainen 2002) as trec_eval ndcg / ndcg_cut.k: DCG = sum over ranks r <= k of "
        "grade_r / log2(r + 1) (negative grades and unjudged documents gain 0), divided by the DCG of the "
        "ideal ranking of all judged documents with a positive grade, truncated at k; 0 if that is 0. "
        "Independent of relevance_level.",
    ),
    "recall": (
        "required",
        True,
        "Recall@k as trec_eval recall.k: relevant documents in the top k / num_rel.",
    ),
    "precision": (
        "required",
        True,
        "Precision@k as trec_eval P.k: relevant documents in the top k / k (k even if fewer were retrieved).",
    ),
    "map": (
        "optional",
        True,
        "Average precision as trec_eval map (map_cut.k with @k): sum over relevant documents at rank "
        "r <= k of (relevant documents in the top r) / r, divided by num_rel.",
    ),
    "mrr": (
        "optional",
        True,
        "Reciprocal rank of the first relevant document as trec_eval recip_rank; with @k (MTEB's MRR@k) "
        "0 when no relevant document is in the top k.",
    ),
    "rprec": (
        "none",
        True,
        "R-precision as trec_eval Rprec: relevant documents in the top num_rel / num_rel.",
    ),
    "success": (
        "required",
        True,
        "Success@k as trec_eval success.k: 1 if a relevant document is in the top k, else 0.",
    ),
    "num_ret": (
        "none",
        True,
        "Number of documents retrieved (after any depth limit), as trec_eval num_ret. A count, not a "
        "quality score: its direction is nominal.",
    ),
    "num_rel": (
        "none",
        True,
        "Number of judged documents with grade >= relevance_level, as trec_eval num_rel. A property of "
        "the qrels: its direction is nominal.",
    ),
    "num_rel_ret": (
        "none",
        True,
        "Number of relevant documents retrieved, as trec_eval num_rel_ret.",
    ),
}
_ALIASES = {"p": "precision"}
_NAME_RE = re.compile(r"^([a-z_]+)(?:@(\d+))?$")


def metric_names() -> list[str]:
    """The valid metric name patterns, for error messages and help text."""
    out = []
    for base, (cut, _, _) in _BASES.items():
        out.append({"required": f"{base}@k", "optional": f"{base}, {base}@k", "none": base}[cut])
    out.append("p@k (= precision@k)")
    return out


def metric_info(name: str) -> MetricInfo:
    """Parse a harness metric name (``ndcg@10``, ``P@5``, ``map``...) into its :class:`MetricInfo`.

    Names are case-insensitive; ``p@k`` is an alias of ``precision@k`` and the returned ``name`` is
    canonical (``precision@k``). Raises :class:`UnknownMetricError` naming the valid names.
    """
    raw = name
    m = _NAME_RE.match(name.strip().lower())
    valid = "valid metrics: " + ", ".join(metric_names()) + " (k a positive integer)"
    if m is None:
        raise UnknownMetricError(f"unknown metric {raw!r}; {valid}")
    base = _ALIASES.get(m.group(1), m.group(1))
    if base not in _BASES:
        raise UnknownMetricError(f"unknown metric {raw!r}; {valid}")
    cut_rule, greater, desc = _BASES[base]
    cutoff = int(m.group(2)) if m.group(2) is not None else None
    if cutoff is not None and cut_rule == "none":
        raise UnknownMetricError(f"metric {raw!r}: {base} takes no @k cutoff; {valid}")
    if cutoff is None and cut_rule == "required":
        raise UnknownMetricError(f"metric {raw!r}: {base} needs a cutoff, e.g. {base}@10; {valid}")
    if cutoff is not None and cutoff <= 0:
        raise UnknownMetricError(f"metric {raw!r}: the cutoff must be a positive integer; {valid}")
    canonical = base if cutoff is None else f"{base}@{cutoff}"
    return MetricInfo(name=canonical, base=base, cutoff=cutoff, greater_is_better=greater, description=desc)


@dataclass(frozen=True)
class JudgedRankings:
    """Rankings joined with judgments, ready for :func:`evaluate`.

    ``ranked[i, r]`` is the relevance code of the document at rank ``r + 1`` of query ``i`` (``PAD``
    past ``num_ret[i]``); ``judged[i]`` holds the non-negative grades of query ``i``'s judged
    documents, sorted descending, ``PAD`` after. Both have at least one column.
    """

    query_ids: tuple[str, ...]
    ranked: np.ndarray
    num_ret: np.ndarray
    judged: np.ndarray


def _segment_starts(keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal consecutive values."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(([0], np.flatnonzero(keys[1:] != keys[:-1]) + 1))


def rank_codes(
    qcode: np.ndarray,
    scores: np.ndarray,
    codes: np.ndarray,
    n_queries: int,
    tie_keys: Callable[[np.ndarray], np.ndarray],
    max_depth: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank every query's documents and lay their relevance codes out as a padded matrix.

    Inputs are flat, one entry per retrieved document: ``qcode`` (query row, ``-1`` to drop),
    ``scores`` and relevance ``codes``. Order: score descending, ties by document id descending;
    ``tie_keys(idx)`` returns sortable document ids for the entries ``idx`` (only tied entries are
    asked for). ``max_depth`` keeps the top documents only (trec_eval ``-M``). Returns
    ``(ranked [n_queries x depth] int32, num_ret [n_queries] int64)``.
    """
    keep: np.ndarray | None
    if len(qcode) == 0 or qcode.min() >= 0:
        keep = None
        q, s, c = qcode, scores, codes
    else:
        keep = np.flatnonzero(qcode >= 0)
        q, s, c = qcode[keep], scores[keep], codes[keep]
    order = _rank_order(q, s)
    if order is not None:
        q, s, c = q[order], s[order], c[order]
    tied = (q[1:] == q[:-1]) & (s[1:] == s[:-1])
    if tied.any():
        positions, members = _break_ties(order, tied, keep, tie_keys)
        c = c.copy() if order is None and keep is None else c
        c[positions] = (codes if keep is None else codes[keep])[members]
    starts = _segment_starts(q)
    lengths = np.diff(np.append(starts, len(q)))
    if len(starts) and int(lengths.min()) == int(lengths.max()):
        # every query has the same number of documents: the codes are the matrix's rows
        width = int(lengths[0]) if max_depth is None else min(int(lengths[0]), max_depth)
        rows = c.reshape(len(starts), int(lengths[0]))[:, :width]
        seg_q = q[starts]
        num_ret = np.zeros(n_queries, dtype=np.int64)
        num_ret[seg_q] = width
        if len(seg_q) == n_queries and width > 0 and bool(np.all(seg_q[1:] > seg_q[:-1])):
            out = np.array(rows, dtype=np.int32) if c is codes else np.ascontiguousarray(rows, dtype=np.int32)
            return out, num_ret
        ranked = np.full((n_queries, max(width, 1)), PAD, dtype=np.int32)
        ranked[seg_q, :width] = rows
        return ranked, num_ret
    pos = np.arange(len(q), dtype=np.int64)
    pos -= np.repeat(starts, lengths)
    if max_depth is not None:
        sel = pos < max_depth
        pos, q, c = pos[sel], q[sel], c[sel]
    num_ret = np.bincount(q, minlength=n_queries).astype(np.int64)
    depth = max(int(num_ret.max(initial=0)), 1)
    ranked = np.full((n_queries, depth), PAD, dtype=np.int32)
    ranked[q, pos] = c
    return ranked, num_ret


def _rank_order(q: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    """Permutation sorting by (query ascending, score descending), ``None`` if already sorted.

    Ties are left for :func:`_break_ties`. Runs are usually written grouped by query and sorted by
    score; then at most the query groups are reordered, without a full sort.
    """
    n = len(q)
    if n == 0:
        return None
    starts = _segment_starts(q)
    seg_q = q[starts]
    same = np.ones(n, dtype=bool)
    same[starts] = False
    if np.any(same[1:] & (s[1:] > s[:-1])) or len(np.unique(seg_q)) != len(seg_q):
        return np.lexsort((-s, q))
    if np.all(seg_q[1:] > seg_q[:-1]):
        return None
    lengths = np.diff(np.append(starts, n))
    seg_order = np.argsort(seg_q, kind="stable")
    new_lengths = lengths[seg_order]
    new_starts = np.concatenate(([0], np.cumsum(new_lengths)[:-1]))
    offsets = np.arange(n, dtype=np.int64) - np.repeat(new_starts, new_lengths)
    return np.repeat(starts[seg_order], new_lengths) + offsets


def _break_ties(
    order: np.ndarray | None,
    tied: np.ndarray,
    keep: np.ndarray | None,
    tie_keys: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Reorder each run of equal (query, score) by document id descending (trec_eval's rule).

    ``order``: the ranking so far (``None``: the input order); returns the sorted positions in
    ties and the (kept) input entries that go there.
    """
    in_tie = np.zeros(len(tied) + 1, dtype=bool)
    in_tie[:-1] |= tied
    in_tie[1:] |= tied
    positions = np.flatnonzero(in_tie)
    # A tie group starts where an in-tie position is not tied to its predecessor.
    group_start = np.ones(len(positions), dtype=bool)
    group_start[1:] = ~tied[positions[1:] - 1]
    group = np.cumsum(group_start)
    members = positions if order is None else order[positions]
    docs = tie_keys(members if keep is None else keep[members])
    # Ascending by (-group, doc), reversed: ascending group, descending doc.
    perm = np.lexsort((docs, -group))[::-1]
    return positions, members[perm]


def build_judged(qcode: np.ndarray, grades: np.ndarray, n_queries: int) -> np.ndarray:
    """Matrix of each query's non-negative judged grades, sorted descending, padded with ``PAD``."""
    sel = (grades >= 0) & (qcode >= 0)
    q, g = qcode[sel], grades[sel]
    order = np.lexsort((-g, q))
    q, g = q[order], g[order]
    counts = np.bincount(q, minlength=n_queries)
    width = max(int(counts.max(initial=0)), 1)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(q)) - np.repeat(starts, counts)
    judged = np.full((n_queries, width), PAD, dtype=np.int32)
    judged[q, pos] = g
    return judged


def _at(cum: np.ndarray, k: int) -> np.ndarray:
    """Column ``k - 1`` of a cumulative matrix, or its last column when ``k`` exceeds the depth."""
    return cum[:, min(k, cum.shape[1]) - 1]


def _needs_cutoff(base: str, cutoff: int | None) -> int:
    if cutoff is None or cutoff <= 0:
        raise UnknownMetricError(f"{base} needs a positive cutoff, e.g. {base}@10")
    return cutoff


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (trec_eval leaves such values at 0)."""
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(np.shape(num), den.shape), dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


class _Evaluator:
    """Shared intermediate matrices, each computed once and only if a requested measure needs it."""

    def __init__(self, jr: JudgedRankings, relevance_level: int) -> None:
        self.jr = jr
        self.level = relevance_level
        self.rel = jr.ranked >= relevance_level
        self.num_rel = np.count_nonzero(jr.judged >= max(relevance_level, 0), axis=1)
        self._cum_rel: np.ndarray | None = None
        self._cum_ap: np.ndarray | None = None
        self._first: tuple[np.ndarray, np.ndarray] | None = None
        self._dcg: dict[tuple[tuple[int, float], ...] | None, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def ranks(self) -> np.ndarray:
        return np.arange(1, self.rel.shape[1] + 1, dtype=np.float64)

    @property
    def cum_rel(self) -> np.ndarray:
        """Relevant documents in the top r, for every r."""
        if self._cum_rel is None:
            self._cum_rel = np.cumsum(self.rel, axis=1, dtype=np.int32)
        return self._cum_rel

    @property
    def cum_ap(self) -> np.ndarray:
        """Running sum of precision at each relevant rank (trec_eval ``m_map.c``'s loop)."""
        if self._cum_ap is None:
            prec = np.divide(self.cum_rel, self.ranks)
            prec *= self.rel
            self._cum_ap = np.cumsum(prec, axis=1, out=prec)
        return self._cum_ap

    @property
    def first_rel(self) -> tuple[np.ndarray, np.ndarray]:
        """(has a relevant document, 0-based rank of the first one)."""
        if self._first is None:
            has: np.ndarray = np.any(self.rel, axis=1)
            self._first = (has, np.argmax(self.rel, axis=1))
        return self._first

    def dcg(self, gains: Mapping[int, float] | None) -> tuple[np.ndarray, np.ndarray]:
        """(cumulative DCG of the ranking, cumulative DCG of the ideal ranking)."""
        key = None if gains is None else tuple(sorted(gains.items()))
        if key not in self._dcg:
            ranked, judged = self.jr.ranked, self.jr.judged
            if gains is None:
                g_run = np.maximum(ranked, 0, dtype=np.float64)
                g_ideal = np.maximum(judged, 0, dtype=np.float64)
            else:
                top = max(int(judged.max(initial=0)), max(gains, default=0), 0)
                table = np.arange(top + 1, dtype=np.float64)
                for level, gain in gains.items():
                    table[level] = gain
                g_run = np.where(ranked >= 0, table[np.clip(ranked, 0, top)], 0.0)
                g_ideal = np.where(judged >= 0, table[np.clip(judged, 0, top)], 0.0)
                g_ideal = -np.sort(-np.where(g_ideal > 0, g_ideal, 0.0), axis=1)
            disc_run = np.log2(np.arange(2, ranked.shape[1] + 2, dtype=np.float64))
            disc_ideal = np.log2(np.arange(2, judged.shape[1] + 2, dtype=np.float64))
            g_run /= disc_run
            g_ideal /= disc_ideal
            self._dcg[key] = (np.cumsum(g_run, axis=1, out=g_run), np.cumsum(g_ideal, axis=1, out=g_ideal))
        return self._dcg[key]

    def value(self, base: str, cutoff: int | None, gains: Mapping[int, float] | None = None) -> np.ndarray:
        jr = self.jr
        if base == "num_ret":
            return jr.num_ret.astype(np.float64)
        if base == "num_rel":
            return self.num_rel.astype(np.float64)
        if base == "num_rel_ret":
            return self.cum_rel[:, -1].astype(np.float64)
        if base == "precision":
            k = _needs_cutoff(base, cutoff)
            return _at(self.cum_rel, k) / float(k)
        if base == "recall":
            return _ratio(_at(self.cum_rel, _needs_cutoff(base, cutoff)), self.num_rel)
        if base == "success":
            return (_at(self.cum_rel, _needs_cutoff(base, cutoff)) > 0).astype(np.float64)
        if base == "map":
            return _ratio(self.cum_ap[:, -1] if cutoff is None else _at(self.cum_ap, cutoff), self.num_rel)
        if base == "mrr":
            has, first = self.first_rel
            if cutoff is not None:
                has = has & (first < cutoff)
            return np.where(has, 1.0 / (first + 1.0), 0.0)
        if base == "rprec":
            depth = self.cum_rel.shape[1]
            idx = np.clip(np.minimum(self.num_rel, depth) - 1, 0, None)
            hits = np.take_along_axis(self.cum_rel, idx[:, None], axis=1)[:, 0]
            return _ratio(np.where(self.num_rel > 0, hits, 0), self.num_rel)
        if base == "ndcg":
            run_cum, ideal_cum = self.dcg(gains)
            if cutoff is None:
                return _ratio(run_cum[:, -1], ideal_cum[:, -1])
            return _ratio(_at(run_cum, cutoff), _at(ideal_cum, cutoff))
        raise UnknownMetricError(f"unknown metric base {base!r}")  # pragma: no cover - guarded by metric_info


def evaluate(
    jr: JudgedRankings,
    measures: Iterable[tuple[str, int | None]],
    relevance_level: int = 1,
    ndcg_gains: Mapping[int, float] | None = None,
) -> dict[tuple[str, int | None], np.ndarray]:
    """Per-query values (float64 arrays aligned with ``jr.query_ids``) for each ``(base, cutoff)``.

    ``ndcg_gains`` overrides the gain of some grades for the full-ranking ``ndcg`` only, like
    trec_eval's ``-m ndcg.1=3,2=9`` (ndcg_cut always uses the grades). Queries without relevant
    documents get trec_eval's values (0 for most measures); :func:`compute_metrics` turns them into
    ``None``.
    """
    ev = _Evaluator(jr, relevance_level)
    out: dict[tuple[str, int | None], np.ndarray] = {}
    for base, cutoff in measures:
        gains = ndcg_gains if (base == "ndcg" and cutoff is None) else None
        out[(base, cutoff)] = ev.value(base, cutoff, gains)
    return out


def judged_rankings_from_mappings(qrels: Qrels, run: Run, max_depth: int | None = None) -> JudgedRankings:
    """Join in-memory qrels and run (every qrels query gets a row; missing ones are empty)."""
    query_ids = tuple(qrels)
    n_q = len(query_ids)
    qcodes: list[np.ndarray] = []
    all_docs: list[str] = []
    all_scores: list[float] = []
    all_grades: list[int] = []
    j_q: list[np.ndarray] = []
    j_g: list[int] = []
    missing = PAD
    for i, qid in enumerate(query_ids):
        judgments = qrels[qid]
        j_g.extend(judgments.values())
        j_q.append(np.full(len(judgments), i, dtype=np.int64))
        ranking = run.get(qid) or ()
        if not ranking:
            continue
        docs, scores = zip(*ranking, strict=True)
        if len(set(docs)) != len(docs):
            dup = next(d for d in docs if docs.count(d) > 1)
            raise ValueError(f"run query {qid!r}: document {dup!r} is ranked more than once")
        get = judgments.get
        all_grades.extend([get(d, missing) for d in docs])
        all_docs.extend(docs)
        all_scores.extend(scores)
        qcodes.append(np.full(len(docs), i, dtype=np.int64))
    qcode = np.concatenate(qcodes) if qcodes else np.zeros(0, dtype=np.int64)
    scores_arr = np.asarray(all_scores, dtype=np.float64)
    if np.isnan(scores_arr).any():
        raise ValueError("run scores must not be NaN")
    raw = np.asarray(all_grades, dtype=np.int64)
    codes = np.where(raw == missing, UNJUDGED, np.where(raw < 0, JUDGED_NEGATIVE, raw))

    def tie_keys(idx: np.ndarray) -> np.ndarray:
        return np.array([all_docs[i] for i in idx.tolist()], dtype=str)

    ranked, num_ret = rank_codes(qcode, scores_arr, codes, n_q, tie_keys, max_depth)
    jq = np.concatenate(j_q) if j_q else np.zeros(0, dtype=np.int64)
    judged = build_judged(jq, np.asarray(j_g, dtype=np.int64), n_q)
    return JudgedRankings(query_ids=query_ids, ranked=ranked, num_ret=num_ret, judged=judged)


def compute_metrics(
    qrels: Qrels,
    run: Run,
    metrics: Sequence[str],
    relevance_level: int = 1,
) -> dict[str, dict[str, float | None]]:
    """Per-query retrieval metrics, exactly as trec_eval defines them (see the module docstring).

    ``qrels``: query id -> {doc id: grade}; ``run``: query id -> [(doc id, score), ...] in any order.
    Returns {metric name as given: {query id: value}} for every query id in ``qrels``:

    * a query absent from ``run`` (or with an empty ranking) scores 0 and stays in the denominator;
    * a query with no document graded >= ``relevance_level`` is unscored: ``None``, never 0 or NaN;
    * query ids in ``run`` but not in ``qrels`` are ignored.

    Raises :class:`UnknownMetricError` for an unknown name, ``ValueError`` for a document ranked
    twice in one query or a NaN score.
    """
    infos = [metric_info(name) for name in metrics]
    jr = judged_rankings_from_mappings(qrels, run)
    values = evaluate(jr, [(i.base, i.cutoff) for i in infos], relevance_level)
    scored = np.count_nonzero(jr.judged >= max(relevance_level, 0), axis=1) > 0
    result: dict[str, dict[str, float | None]] = {}
    for name, info in zip(metrics, infos, strict=True):
        arr = values[(info.base, info.cutoff)].tolist()
        result[name] = {
            qid: (v if ok else None) for qid, v, ok in zip(jr.query_ids, arr, scored.tolist(), strict=True)
        }
    return result
