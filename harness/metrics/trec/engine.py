"""trec_eval's per-query measures, computed for all queries at once over padded numpy matrices.

Inputs (see :class:`Rankings`): the relevance code of the document at each rank of each evaluated
query (``ranked``, ``PAD`` past ``num_ret``), and each query's count of judged documents per grade
(``levels``, grades >= 0). Codes: the grade (>= 0), ``-1`` not in the qrels (trec_eval
RELVALUE_NONPOOL), ``-2`` judged with a negative grade (RELVALUE_UNJUDGED).

Every measure follows the loop of its trec_eval 10 ``m_<name>.c`` file, restated as prefix sums
taken in rank order (``numpy.cumsum``, never pairwise ``sum``) so the floating-point operations
are the same, in the same order, as trec_eval's loops; the quirks are kept and commented
(ndcg_rel/Rndcg boundary rules, the gain sort's truncating comparator, the bogus document of
``-c``...). Nothing loops over documents or queries in Python; loops run over cutoffs or gain
levels only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.metrics.ir import JUDGED_NEGATIVE, PAD, UNJUDGED

MIN_GEO_MEAN = 0.00001
INFAP_EPSILON = 0.00001
NONPOOL = UNJUDGED  # -1
_FAR = 1 << 40  # the rank of a compressed matrix's padding: past any cutoff
POOL_UNJUDGED = JUDGED_NEGATIVE  # -2


@dataclass(frozen=True)
class Rankings:
    """Evaluated queries' rankings as relevance codes, and their judged documents per grade."""

    ranked: np.ndarray  # [n x depth] int32, PAD past num_ret
    num_ret: np.ndarray  # [n] int64
    levels: np.ndarray  # [n x n_grades] int64: judged documents with grade g >= 0
    bogus: np.ndarray  # [n] bool: -c query missing from the run (trec_eval's one-document ranking)


def _at(cum: np.ndarray, k: int) -> np.ndarray:
    """Column ``k - 1`` of a cumulative matrix (its last column when ``k`` exceeds the width)."""
    return cum[:, min(k, cum.shape[1]) - 1]


def _gather(cum: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``cum[q, idx[q]]`` for each row (``idx`` clipped into the matrix)."""
    idx = np.clip(idx, 0, cum.shape[1] - 1)
    return np.take_along_axis(cum, idx[:, None], axis=1)[:, 0]


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den != 0``, else 0 (trec_eval leaves such values at 0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape), dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def lround(x: np.ndarray) -> np.ndarray:
    """C ``lround``: nearest integer, halves away from zero."""
    a = np.abs(x)
    f = np.floor(a)
    r = np.where(a - f >= 0.5, f + 1.0, f)
    return (np.sign(x) * r).astype(np.int64)


# ------------------------------------------------------------------------------------------- gains


def _msort(items: list[tuple[int, float, int]]) -> list[tuple[int, float, int]]:
    """glibc's ``qsort`` (a top-down merge sort) with trec_eval's gain comparator, which truncates
    the gain difference to an int: gains closer than 1 compare equal and keep their input order."""
    n = len(items)
    if n <= 1:
        return list(items)
    n1 = n // 2
    b1, b2 = _msort(items[:n1]), _msort(items[n1:])
    out: list[tuple[int, float, int]] = []
    i = j = 0
    while i < len(b1) and j < len(b2):
        if int(b1[i][1] - b2[j][1]) <= 0:
            out.append(b1[i])
            i += 1
        else:
            out.append(b2[j])
            j += 1
    return out + b1[i:] + b2[j:]


@dataclass(frozen=True)
class Gains:
    """``setup_gains`` (gain_init.c) for one number of grade levels: (level, gain, count column or
    -1) sorted by gain, and the gain ``get_gain`` returns for each code from ``-2``."""

    entries: tuple[tuple[int, float, int], ...]
    lookup: np.ndarray  # gain of code c at index c + 2

    @staticmethod
    def setup(pairs: Sequence[tuple[int, float]], n_levels: int, top_code: int) -> Gains:
        entries: list[tuple[int, float, int]] = [(lvl, g, -1) for lvl, g in pairs]
        for i in range(n_levels):
            j = next((k for k, e in enumerate(entries) if e[0] == i), None)
            if j is None:
                entries.append((i, float(i), i))
            elif entries[j][2] == -1:
                entries[j] = (entries[j][0], entries[j][1], i)
        ordered = _msort(entries)
        lookup = np.zeros(max(top_code, n_levels) + 3, dtype=np.float64)
        for lvl, g, _ in reversed(ordered):  # the first match wins, as in get_gain
            if -2 <= lvl < len(lookup) - 2:
                lookup[lvl + 2] = g
        return Gains(tuple(ordered), lookup)


@dataclass
class _Ideal:
    gains: np.ndarray  # [n x width] ideal gain at each ideal rank (0 past the end)
    length: np.ndarray  # [n] L: ideal ranks with a positive gain
    seq_gain: np.ndarray  # [n x K] gain of the k-th emitted level block (top first)
    seq_count: np.ndarray  # [n x K] its size (0: not emitted)


def _g_value(g: np.ndarray, sum_cost: np.ndarray, idl: _Ideal) -> np.ndarray:
    """trec_eval's G from the run's gains per rank and the cumulative cost at each rank (the two ways
    :meth:`Engine.g_measure` computes that cost share this): sum of g / log2(2 + cost - gains so far),
    over the ideal's total gain."""
    sum_results = np.cumsum(g, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(g != 0, g / np.log2(2 + sum_cost - sum_results), 0.0)
    num = np.cumsum(term, axis=1)[:, -1]
    sum_ideal = np.cumsum(idl.gains, axis=1)[:, -1]
    return _div(num, np.where(sum_ideal > 0, sum_ideal, 0.0))


# ----------------------------------------------------------------------------------------- engine


@dataclass
class Engine:
    """Per-query values of every trec_eval measure, with shared intermediates computed once."""

    r: Rankings
    level: int
    num_docs_in_coll: int = 0
    #: compress each ranking to its judged documents (codes >= 0 or -2) with their ranks in ``col``:
    #: every sum runs over the same nonzero terms in the same order, far fewer columns
    compressed: bool = True
    _cache: dict[object, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ranked = self.r.ranked
        if not self.compressed:
            self.codes = ranked
            self.col = np.arange(ranked.shape[1], dtype=np.int64)[None, :]
            return
        mask = (ranked >= 0) | (ranked == POOL_UNJUDGED)  # judged: a grade >= 0, or -2
        rows, cols = np.nonzero(mask)
        counts = np.bincount(rows, minlength=ranked.shape[0])
        w = max(int(counts.max(initial=0)), 1)
        pos = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        self.codes = np.full((ranked.shape[0], w), PAD, dtype=np.int32)
        self.codes[rows, pos] = ranked[rows, cols]
        self.col = np.full((ranked.shape[0], w), _FAR, dtype=np.int64)
        self.col[rows, pos] = cols

    def dense(self) -> Engine:
        """The same evaluation over the full matrices (for the measures that need every rank)."""
        if not self.compressed:
            return self
        return self._memo("dense", lambda: Engine(self.r, self.level, self.num_docs_in_coll, compressed=False))  # type: ignore[return-value]

    def count_lt(self, k: int | np.ndarray) -> np.ndarray:
        """Columns per row whose rank (0-based) is < k (k a scalar or one per row)."""
        if not self.compressed:
            return np.broadcast_to(np.minimum(k, self.width), (self.n,)).astype(np.int64)
        if np.ndim(k) == 0:
            return self._memo(("count_lt", int(k)), lambda: np.count_nonzero(self.col < k, axis=1))
        return np.count_nonzero(self.col < np.asarray(k)[:, None], axis=1)

    def upto(self, cum: np.ndarray, k: int | np.ndarray) -> np.ndarray:
        """A cumulative row value over the ranks < k (0 when there is none)."""
        c = self.count_lt(k)
        return np.where(c > 0, _gather(cum, c - 1), 0)

    def _memo(self, key: object, fn: object) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = fn()  # type: ignore[operator]
        return self._cache[key]  # type: ignore[return-value]

    # --- basic counts
    @property
    def n(self) -> int:
        return int(self.r.ranked.shape[0])

    @property
    def width(self) -> int:
        return int(self.codes.shape[1])

    @property
    def depth(self) -> int:
        return int(self.r.ranked.shape[1])

    @property
    def rel(self) -> np.ndarray:
        return self._memo("rel", lambda: self.codes >= self.level)

    @property
    def cum_rel(self) -> np.ndarray:
        return self._memo("cum_rel", lambda: np.cumsum(self.rel, axis=1, dtype=np.int32))

    @property
    def ranks(self) -> np.ndarray:
        return self._memo("ranks", lambda: self.col + 1.0)

    @property
    def num_rel(self) -> np.ndarray:
        def f() -> np.ndarray:
            lv = self.r.levels
            return lv[:, max(self.level, 0) :].sum(axis=1).astype(np.int64)

        return self._memo("num_rel", f)

    @property
    def num_nonrel(self) -> np.ndarray:
        return self._memo("num_nonrel", lambda: self.r.levels[:, : max(self.level, 0)].sum(axis=1))

    @property
    def num_rel_ret(self) -> np.ndarray:
        return self._memo("nrr", lambda: self.cum_rel[:, -1].astype(np.int64))

    def count_codes(self, code: int) -> np.ndarray:
        return self._memo(("count", code), lambda: np.count_nonzero(self.codes == code, axis=1))

    @property
    def num_judged_ret(self) -> np.ndarray:
        """Retrieved documents judged with a grade >= 0."""
        return self._memo("judged_ret", lambda: np.count_nonzero(self.codes >= 0, axis=1))

    @property
    def n_levels(self) -> np.ndarray:
        """trec_eval's num_rel_levels: 1 + the highest grade judged at least once (0 if none)."""

        def f() -> np.ndarray:
            lv = self.r.levels
            has = lv > 0
            top = lv.shape[1] - 1 - np.argmax(has[:, ::-1], axis=1)
            return np.where(has.any(axis=1), top + 1, 0).astype(np.int64)

        return self._memo("n_levels", f)

    @property
    def cum_ap(self) -> np.ndarray:
        """Running sum of precision at each relevant rank (m_map.c's loop)."""

        def f() -> np.ndarray:
            prec = np.divide(self.cum_rel, self.ranks)
            prec *= self.rel
            return np.cumsum(prec, axis=1, out=prec)

        return self._memo("cum_ap", f)

    @property
    def prec(self) -> np.ndarray:
        return self._memo("prec", lambda: np.divide(self.cum_rel, self.ranks))

    # --- measures
    def map(self) -> np.ndarray:
        return _div(self.cum_ap[:, -1], self.num_rel)

    def map_cut(self, k: int) -> np.ndarray:
        return _div(self.upto(self.cum_ap, k), self.num_rel)

    def gm_map(self) -> np.ndarray:
        return np.log(np.maximum(self.map(), MIN_GEO_MEAN))

    def yaap(self) -> np.ndarray:
        s = self.cum_ap[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log((1.0 + s) / (1.0 + self.num_rel.astype(np.float64) - s))

    def rprec(self) -> np.ndarray:
        r = self.num_rel
        return _div(self.upto(self.cum_rel, r), r)

    def recip_rank(self) -> np.ndarray:
        rel = self.rel
        has = rel.any(axis=1)
        first = _gather(self.col, np.argmax(rel, axis=1))
        return np.where(has, 1.0 / (first + 1.0), 0.0)

    def precision(self, k: int) -> np.ndarray:
        return self.upto(self.cum_rel, k) / float(k)

    def recall(self, k: int) -> np.ndarray:
        return _div(self.upto(self.cum_rel, k), self.num_rel)

    def success(self, k: int) -> np.ndarray:
        return (self.upto(self.cum_rel, k) > 0).astype(np.float64)

    def relative_p(self, k: int) -> np.ndarray:
        r = self.num_rel
        return _div(self.upto(self.cum_rel, k), np.where(k > r, r, k))

    def unj(self, k: int) -> np.ndarray:
        # documents not judged >= 0 (not in the pool, or judged negative) in the top k, over k
        judged = self._memo("cum_judged", lambda: np.cumsum(self.codes >= 0, axis=1))
        out = (np.minimum(k, self.r.num_ret) - self.upto(judged, k)) / float(k)
        out[self.r.bogus] = 0.0
        return out

    def _judged_walk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(judged relevant mask, relevant so far incl., judged nonrelevant before, pool-unjudged
        before) for bpref and infAP."""

        def f() -> tuple[np.ndarray, ...]:
            codes = self.codes
            judged = codes >= 0
            nonrel = judged & (codes < self.level)
            relj = judged & ~nonrel
            rel_so_far = np.cumsum(relj, axis=1, dtype=np.int64)
            nonrel_before = np.cumsum(nonrel, axis=1, dtype=np.int64)  # equal before a rel doc
            unj_before = np.cumsum(codes == POOL_UNJUDGED, axis=1, dtype=np.int64)
            return relj, rel_so_far, nonrel_before, unj_before

        return self._memo("judged_walk", f)  # type: ignore[return-value]

    def bpref(self) -> np.ndarray:
        relj, _, nonrel, _ = self._judged_walk()
        r = self.num_rel[:, None]
        den = np.minimum(self.num_nonrel[:, None], r).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(nonrel > 0, 1.0 - np.minimum(nonrel, r) / den, 1.0)
        term = np.where(relj, term, 0.0)
        total = np.cumsum(term, axis=1)[:, -1]
        return _div(total, self.num_rel)

    def gm_bpref(self) -> np.ndarray:
        return np.log(np.maximum(self.bpref(), MIN_GEO_MEAN))

    def infap(self) -> np.ndarray:
        relj, rel_so_far, nonrel, unj = self._judged_walk()
        fj = self.col.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = 1.0 / (fj + 1.0)
            b = fj / (fj + 1.0)
            c = (rel_so_far - 1 + nonrel + unj) / fj
            d = (rel_so_far - 1 + INFAP_EPSILON) / (rel_so_far - 1 + nonrel + 2 * INFAP_EPSILON)
            term = a + b * c * d
        term = np.where(fj == 0, 1.0, term)  # the document at rank 1 adds 1
        term = np.where(relj, term, 0.0)
        return _div(np.cumsum(term, axis=1)[:, -1], self.num_rel)

    def bin_g(self) -> np.ndarray:
        rel = self.rel
        cr = self.cum_rel
        i = self.col
        with np.errstate(divide="ignore"):
            term = np.where(rel, 1.0 / np.log2((3 + i - cr).astype(np.float64)), 0.0)
        s = np.cumsum(term, axis=1)[:, -1]
        return np.where(self.num_rel_ret > 0, _div(s, self.num_rel), 0.0)

    # --- interpolated precision (iprec_at_recall, 11pt_avg)
    def _interp_values(self, percents: Sequence[float]) -> list[np.ndarray]:
        """Value of each cutoff index as m_iprec_at_recall.c / m_11pt_avg.c's reverse loop
        assigns it (0 for the cutoffs skipped at the start); works for unsorted cutoffs too."""
        nrr = self.cum_rel[:, -1].astype(np.int64)
        r = self.num_rel.astype(np.float64)
        suffix = self._memo("prec_suffix_max", lambda: np.maximum.accumulate(self.prec[:, ::-1], axis=1)[:, ::-1])
        rows, cols = np.nonzero(self.rel)
        starts = np.searchsorted(rows, np.arange(self.n))

        def int_prec_at(c: np.ndarray) -> np.ndarray:
            # max precision at ranks >= the rank of the c-th relevant document
            idx = np.clip(starts + c - 1, 0, max(len(cols) - 1, 0))
            rank = cols[idx] if len(cols) else np.zeros(self.n, dtype=np.int64)
            return _gather(suffix, rank)

        final = np.where(nrr > 0, int_prec_at(np.ones(self.n, dtype=np.int64)), 0.0)
        cuts = [lround(np.float64(p) * r) for p in percents]
        out = [np.zeros(self.n) for _ in percents]
        k_active = np.full(self.n, len(cuts) - 1, dtype=np.int64)
        skipping = np.ones(self.n, dtype=bool)
        blocked = np.zeros(self.n, dtype=bool)
        bound = nrr.copy()
        for k in range(len(cuts) - 1, -1, -1):
            c = cuts[k]
            skipping &= c > nrr
            active = ~skipping
            hit = active & ~blocked & (c >= 1) & (c <= bound)
            blocked |= active & ~hit
            out[k] = np.where(hit, int_prec_at(c), np.where(active, final, 0.0))
            bound = np.where(hit, c, bound)
        del k_active
        return out

    def iprec_at_recall(self, percents: Sequence[float]) -> list[np.ndarray]:
        return self._interp_values(percents)

    def pt11_avg(self, percents: Sequence[float]) -> np.ndarray:
        vals = self._interp_values(percents)
        total = np.zeros(self.n)
        for v in reversed(vals):  # the loop adds from the last cutoff down
            total = total + v
        return total / float(len(percents))

    def rprec_mult(self, percents: Sequence[float]) -> list[np.ndarray]:
        r = self.num_rel.astype(np.float64)
        nrr = self.cum_rel[:, -1]
        out = []
        for p in percents:
            c = (np.float64(p) * r + 0.9).astype(np.int64)  # C's (long) truncation
            beyond = c > self.r.num_ret
            inside = self.upto(self.cum_rel, c) / np.maximum(c, 1).astype(np.float64)
            val = np.where(beyond, _div(nrr, c), np.where(c >= 1, inside, 0.0))
            out.append(val)
        return out

    # --- set measures
    def utility(self, p: Sequence[float], blank_bogus: bool = True) -> np.ndarray:
        nrr = self.num_rel_ret.astype(np.float64)
        nret = self.r.num_ret.astype(np.float64)
        r = self.num_rel.astype(np.float64)
        v = p[0] * nrr + p[1] * (nret - nrr) + p[2] * (r - nrr) + p[3] * (self.num_docs_in_coll + nrr - nret - r)
        if blank_bogus:
            v[self.r.bogus] = 0.0
        return v

    def set_p(self) -> np.ndarray:
        return _div(self.num_rel_ret, self.r.num_ret)

    def set_relative_p(self) -> np.ndarray:
        den = np.minimum(self.r.num_ret, self.num_rel)
        return _div(self.num_rel_ret, den)

    def set_recall(self) -> np.ndarray:
        return _div(self.num_rel_ret, self.num_rel)

    def set_map(self) -> np.ndarray:
        nrr = self.num_rel_ret.astype(np.float64)
        den = self.r.num_ret.astype(np.float64) * self.num_rel.astype(np.float64)
        return _div(nrr * nrr, den)

    def set_f(self, x: float) -> np.ndarray:
        nrr = self.num_rel_ret.astype(np.float64)
        ok = nrr > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            p = nrr / self.r.num_ret
            rr = nrr / self.num_rel
            v = (x + 1.0) * p * rr / (x * p + rr)
        return np.where(ok, v, 0.0)

    def num_nonrel_judged_ret(self) -> np.ndarray:
        return self.num_judged_ret - self.num_rel_ret

    def relstring(self, length: float, blank_bogus: bool = True) -> list[str]:
        n = int(length)
        codes = self.r.ranked[:, : max(n, 0)]
        chars = np.full(codes.shape, ord("<"), dtype=np.uint8)
        chars[(codes >= 0) & (codes <= 9)] = (codes[(codes >= 0) & (codes <= 9)] + 48).astype(np.uint8)
        chars[codes > 9] = ord(">")
        chars[codes == NONPOOL] = ord("-")
        chars[codes == POOL_UNJUDGED] = ord(".")
        out = []
        for row, nr, bog in zip(
            chars, np.minimum(self.r.num_ret, max(n, 0)).tolist(), self.r.bogus.tolist(), strict=True
        ):
            out.append("" if bog and blank_bogus else row[:nr].tobytes().decode("ascii"))
        return out

    # --- gain-based measures (ndcg, dcg, ideal_dcg, ndcg_rel, Rndcg, G, rbp)
    def _gain_groups(self, pairs: tuple[tuple[int, float], ...]) -> list[tuple[np.ndarray, Gains]]:
        def f() -> list[tuple[np.ndarray, Gains]]:
            nl = self.n_levels
            top = int(self.r.levels.shape[1])
            return [(np.flatnonzero(nl == v), Gains.setup(pairs, int(v), top)) for v in np.unique(nl).tolist()]

        return self._memo(("groups", pairs), f)  # type: ignore[return-value]

    def _needs_dense(self, pairs: tuple[tuple[int, float], ...]) -> bool:
        """Whether a document not in the pool (code -1, absent when compressed) can have a gain."""
        return self.compressed and any(lvl == NONPOOL for lvl, _ in pairs)

    def _run_gains(self, pairs: tuple[tuple[int, float], ...], transform: object = None) -> np.ndarray:
        """[n x width] gain of each ranked document (0 for PAD)."""

        def f() -> np.ndarray:
            codes = self.codes
            out = np.zeros(codes.shape, dtype=np.float64)
            valid = codes >= -2
            for rows, g in self._gain_groups(pairs):
                lookup = g.lookup if transform is None else transform(g)  # type: ignore[operator]
                sub = codes[rows]
                idx = np.clip(sub + 2, 0, len(lookup) - 1)
                vals = lookup[idx]
                vals[~valid[rows]] = 0.0
                out[rows] = vals
            return out

        return self._memo(("run_gains", pairs, transform), f)

    def _ideal(self, pairs: tuple[tuple[int, float], ...]) -> _Ideal:
        def f() -> _Ideal:
            lv = self.r.levels
            groups = self._gain_groups(pairs)
            k_max = max(len(g.entries) for _, g in groups)
            seq_gain = np.zeros((self.n, k_max))
            seq_count = np.zeros((self.n, k_max), dtype=np.int64)
            for rows, g in groups:
                ents = list(reversed(g.entries))  # top gain first
                alive = np.full(len(rows), ents[0][1] > 0.0 if ents else False)
                for k, (_, gain, col) in enumerate(ents):
                    cnt = lv[rows, col] if col >= 0 else np.zeros(len(rows), dtype=np.int64)
                    present = cnt > 0
                    emit = alive & present & (gain > 0.0)
                    alive &= ~(present & (gain <= 0.0))
                    seq_gain[rows, k] = gain
                    seq_count[rows, k] = np.where(emit, cnt, 0)
            length = seq_count.sum(axis=1)
            width = max(int(length.max(initial=0)), 1)
            flat_counts = seq_count.ravel()
            vals = np.repeat(seq_gain.ravel(), flat_counts)
            qrow = np.repeat(np.repeat(np.arange(self.n), k_max), flat_counts)
            starts = np.cumsum(length) - length
            pos = np.arange(len(vals)) - np.repeat(starts, length)
            gains = np.zeros((self.n, width))
            gains[qrow, pos] = vals
            return _Ideal(gains, length, seq_gain, seq_count)

        return self._memo(("ideal", pairs), f)  # type: ignore[return-value]

    def _dcg_cum(self, pairs: tuple[tuple[int, float], ...]) -> tuple[np.ndarray, np.ndarray]:
        """(cumulative DCG of the ranking, cumulative DCG of the ideal ranking)."""

        def f() -> tuple[np.ndarray, np.ndarray]:
            g = self._run_gains(pairs)
            disc = np.log2(self.col + 2.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                run = np.cumsum(np.where(g != 0, g / disc, 0.0), axis=1)
            ideal = self._ideal(pairs)
            idisc = np.log2(np.arange(2, ideal.gains.shape[1] + 2, dtype=np.float64))
            return run, np.cumsum(ideal.gains / idisc, axis=1)

        return self._memo(("dcg", pairs), f)  # type: ignore[return-value]

    def dcg(self, pairs: tuple[tuple[int, float], ...]) -> np.ndarray:
        if self._needs_dense(pairs):
            return self.dense().dcg(pairs)
        return self._dcg_cum(pairs)[0][:, -1].copy()

    def ideal_dcg(self, pairs: tuple[tuple[int, float], ...]) -> np.ndarray:
        if self._needs_dense(pairs):
            return self.dense().ideal_dcg(pairs)
        return self._dcg_cum(pairs)[1][:, -1].copy()

    def ndcg(self, pairs: tuple[tuple[int, float], ...]) -> np.ndarray:
        if self._needs_dense(pairs):
            return self.dense().ndcg(pairs)
        run, ideal = self._dcg_cum(pairs)
        return _div(run[:, -1], np.where(ideal[:, -1] > 0, ideal[:, -1], 0.0))

    def ndcg_cut(self, k: int) -> np.ndarray:
        run, ideal = self._dcg_cum(())
        num = self.upto(run, k)
        den = _at(ideal, k)
        return np.where(den > 0, _div(num, den), num)

    def ndcg_rel(self, pairs: tuple[tuple[int, float], ...]) -> np.ndarray:
        if self._needs_dense(pairs):
            return self.dense().ndcg_rel(pairs)
        run, ideal = self._dcg_cum(pairs)
        g = self._run_gains(pairs)
        L = self._ideal(pairs).length
        ideal0 = np.concatenate((np.zeros((self.n, 1)), ideal), axis=1)
        id_at = np.take_along_axis(ideal0, np.minimum(self.col + 1, L[:, None]), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(g > 0, run / id_at, 0.0)
            s = np.cumsum(term, axis=1)[:, -1]
            n_pos = np.count_nonzero(g > 0, axis=1)
            id_full = ideal0[np.arange(self.n), L]
            s = s + ((L - n_pos).astype(np.float64) * run[:, -1]) / id_full
            val = s / L
        return np.where(s > 0.0, val, 0.0)

    def rndcg(self, pairs: tuple[tuple[int, float], ...]) -> np.ndarray:
        if self._needs_dense(pairs):
            return self.dense().rndcg(pairs)
        run, ideal = self._dcg_cum(pairs)
        idl = self._ideal(pairs)
        nret = self.r.num_ret
        last = nret - 1
        total = np.zeros(self.n)
        count = np.zeros(self.n, dtype=np.int64)
        pos = np.zeros(self.n, dtype=np.int64)  # ideal ranks emitted so far
        prev_gain = np.full(self.n, np.nan)
        k_max = idl.seq_gain.shape[1]
        # boundary after each emitted block whose gain differs from the next emitted block's
        emitted_next_gain = np.full((self.n, k_max), -np.inf)
        nxt = np.full(self.n, -np.inf)  # gain of the next emitted block; the stop (<= 0) at the end
        for k in range(k_max - 1, -1, -1):
            emitted_next_gain[:, k] = nxt
            e = idl.seq_count[:, k] > 0
            nxt = np.where(e, idl.seq_gain[:, k], nxt)
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(k_max):
                e = idl.seq_count[:, k] > 0
                pos = pos + idl.seq_count[:, k]
                g = idl.seq_gain[:, k]
                boundary = e & (emitted_next_gain[:, k] != g)
                b = pos  # the boundary is at ideal rank b (0-based), after b ideal documents
                d = self.upto(run, np.minimum(b, last + 1))
                idv = _gather(ideal, b - 1)
                take = boundary & (idv > 0)
                total = np.where(take, total + d / idv, total)
                count = count + take
                prev_gain = np.where(e, g, prev_gain)
            L = idl.length
            final = (nret >= L + 2) & (L >= 1)
            id_full = _gather(ideal, L - 1)
            total = np.where(final & (id_full > 0), total + run[:, -1] / id_full, total)
            count = count + (final & (id_full > 0))
            val = total / count
        return np.where(self.num_rel > 0, val, 0.0)

    def g_measure(self, pairs: tuple[tuple[int, float], ...]) -> np.ndarray:
        if self._needs_dense(pairs):
            return self.dense().g_measure(pairs)
        if self.compressed:
            return self._g_compressed(pairs)
        g = self._run_gains(pairs)
        idl = self._ideal(pairs)
        w = self.width
        ideal_part = (
            idl.gains[:, :w] if idl.gains.shape[1] >= w else np.pad(idl.gains, ((0, 0), (0, w - idl.gains.shape[1])))
        )
        pos = np.arange(w)[None, :]
        cost = np.where(pos < idl.length[:, None], np.maximum(ideal_part, 1.0), 1.0)
        sum_cost = np.cumsum(cost, axis=1)
        return _g_value(g, sum_cost, idl)

    def _g_compressed(self, pairs: tuple[tuple[int, float], ...]) -> np.ndarray:
        """G over judged documents only: sum_cost at rank i is the ideal's cumulative cost, then +1
        per rank past the ideal, added in one step, which equals trec_eval's one-by-one additions
        when the ideal's cost is an integer (always with integer gains); otherwise dense."""
        idl = self._ideal(pairs)
        L = idl.length
        pos = np.arange(idl.gains.shape[1])[None, :]
        icost = np.cumsum(np.where(pos < L[:, None], np.maximum(idl.gains, 1.0), 0.0), axis=1)
        ci_last = np.where(L > 0, _gather(icost, L - 1), 0.0)
        if not np.all((ci_last == np.floor(ci_last)) & (ci_last < 2.0**52)):
            return self.dense().g_measure(pairs)
        g = self._run_gains(pairs)
        col = self.col
        in_ideal = col < L[:, None]
        cost_ideal = np.take_along_axis(icost, np.minimum(col, icost.shape[1] - 1), axis=1)
        sum_cost = np.where(in_ideal, cost_ideal, ci_last[:, None] + (col - L[:, None] + 1).astype(np.float64))
        return _g_value(g, sum_cost, idl)

    def _rbp_p(self, params: tuple[tuple[str, float], ...]) -> float:
        p = 0.9
        for name, value in params:
            if name == "p":
                p = value
        return p

    def rbp(self, pairs: tuple[tuple[int, float], ...], p: float) -> np.ndarray:
        if self._needs_dense(pairs):
            return self.dense().rbp(pairs, p)

        def normalized(g: Gains) -> np.ndarray:
            # trec_eval leaves min/max uninitialized; the expected outputs match min/max starting at 0
            gains = [e[1] for e in g.entries]
            lo, hi = min([0.0, *gains]), max([0.0, *gains])
            lookup = g.lookup.copy()
            if lo < 0 or hi > 1:
                lookup = (lookup - lo) / (hi - lo)
                # codes no entry names keep get_gain's 0
                named = {e[0] for e in g.entries}
                for c in range(-2, len(lookup) - 2):
                    if c not in named:
                        lookup[c + 2] = 0.0
            return lookup

        gains = self._run_gains(pairs, _Normalizer(normalized))
        cur = self._cur_p(p)
        weight = cur[np.minimum(self.col, len(cur) - 1)]
        s = np.cumsum(np.where(gains != 0, gains * weight, 0.0), axis=1)[:, -1]
        return (1.0 - p) * s

    def _cur_p(self, p: float) -> np.ndarray:
        def f() -> np.ndarray:
            out = np.empty(self.depth + 1)
            c = 1.0
            for i in range(self.depth + 1):  # repeated multiplication, as the C loop
                out[i] = c
                c = c * p
            return out

        return self._memo(("cur_p", p), f)

    def rbp_resid(self, p: float, blank_bogus: bool = True) -> np.ndarray:
        if self.compressed:
            return self.dense().rbp_resid(p, blank_bogus)
        codes = self.r.ranked
        neg = (codes < 0) & (codes != PAD)
        cur = self._cur_p(p)
        s = np.cumsum(np.where(neg, cur[None, : self.depth], 0.0), axis=1)[:, -1]
        v = cur[self.r.num_ret] + (1 - p) * s
        v = np.where(neg.any(axis=1), v, 0.0)
        if blank_bogus:
            v[self.r.bogus] = 0.0
        return v


@dataclass(frozen=True)
class _Normalizer:
    """A hashable wrapper for a lookup transform (the memo key of rbp's normalized gains)."""

    fn: object

    def __call__(self, g: Gains) -> np.ndarray:
        return self.fn(g)  # type: ignore[operator]

    def __hash__(self) -> int:
        return hash("rbp-normalized")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Normalizer)
