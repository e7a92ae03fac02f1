"""trec_eval's measures: the ``-m`` grammar (``P.5,10``, ``iprec_at_recall..1,.5``, ``ndcg.1=3,2=9``,
``utility.2,-1,0,0``, nicknames such as ``all_trec``), output names (``P_5``, ``Rprec_mult_0.20``,
``ndcg_1=3,2=9``) and the per-query and summary values, computed by :mod:`.engine`."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import HarnessError, InputError, MeasureError
from harness.metrics.ir import PAD, rank_codes
from harness.metrics.trec.engine import NONPOOL, Engine, Rankings
from harness.metrics.trec.files import TrecQrels, TrecRun, find_line, judgment_codes, read_qrels, read_run

#: trec_eval's default cutoffs for P, recall, ndcg_cut, map_cut and relative_P.
DEFAULT_CUTOFFS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)
_TENTHS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_RPREC_MULT = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)


@dataclass(frozen=True)
class _TrecDef:
    name: str
    # runid | num_q | count | float | geo | cut (long cutoffs) | dcut (double cutoffs, sorted) |
    # dparams (double list, as given) | pairs (level=gain pairs)
    kind: str
    cutoffs: tuple[int, ...] = ()
    values: tuple[float, ...] = ()
    n_values: int | None = None  # required number of dparams
    per_query: bool = True


# trec_eval 10's measure table order (measures.c), which is the output order.
_TREC_DEFS = (
    _TrecDef("runid", "runid", per_query=False),
    _TrecDef("num_q", "num_q", per_query=False),
    _TrecDef("num_ret", "count"),
    _TrecDef("num_rel", "count"),
    _TrecDef("num_rel_ret", "count"),
    _TrecDef("map", "float"),
    _TrecDef("gm_map", "geo", per_query=False),
    _TrecDef("Rprec", "float"),
    _TrecDef("bpref", "float"),
    _TrecDef("recip_rank", "float"),
    _TrecDef("iprec_at_recall", "dcut", values=_TENTHS),
    _TrecDef("P", "cut", DEFAULT_CUTOFFS),
    _TrecDef("relstring", "dparams", values=(10.0,), n_values=1),
    _TrecDef("recall", "cut", DEFAULT_CUTOFFS),
    _TrecDef("infAP", "float"),
    _TrecDef("gm_bpref", "geo", per_query=False),
    _TrecDef("Rprec_mult", "dcut", values=_RPREC_MULT),
    _TrecDef("utility", "dparams", values=(1.0, -1.0, 0.0, 0.0), n_values=4),
    _TrecDef("11pt_avg", "dparams", values=_TENTHS),
    _TrecDef("binG", "float"),
    _TrecDef("G", "pairs"),
    _TrecDef("dcg", "pairs"),
    _TrecDef("ideal_dcg", "pairs"),
    _TrecDef("ndcg", "pairs"),
    _TrecDef("ndcg_rel", "pairs"),
    _TrecDef("Rndcg", "pairs"),
    _TrecDef("ndcg_cut", "cut", DEFAULT_CUTOFFS),
    _TrecDef("map_cut", "cut", DEFAULT_CUTOFFS),
    _TrecDef("relative_P", "cut", DEFAULT_CUTOFFS),
    _TrecDef("success", "cut", (1, 5, 10)),
    _TrecDef("set_P", "float"),
    _TrecDef("set_relative_P", "float"),
    _TrecDef("set_recall", "float"),
    _TrecDef("set_map", "float"),
    _TrecDef("set_F", "dparams", values=(1.0,), n_values=1),
    _TrecDef("num_nonrel_judged_ret", "count"),
    _TrecDef("yaap", "float"),
    _TrecDef("rbp", "pairs"),
    _TrecDef("rbp_resid", "pairs"),
    _TrecDef("unj", "cut", (5, 10, 20)),
)
_DEFS = {d.name: d for d in _TREC_DEFS}
_ORDER = {d.name: i for i, d in enumerate(_TREC_DEFS)}
_NICKNAMES = {
    "official": ("runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec", "bpref",
                 "recip_rank", "iprec_at_recall", "P"),
    "all_trec": ("runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec", "bpref",
                 "recip_rank", "iprec_at_recall", "P", "relstring", "recall", "unj", "rbp", "rbp_resid",
                 "infAP", "gm_bpref", "utility", "11pt_avg", "ndcg", "relative_P", "Rprec_mult", "success",
                 "map_cut", "ndcg_cut", "ndcg_rel", "Rndcg", "binG", "G", "set_P", "set_recall",
                 "set_relative_P", "set_map", "set_F", "num_nonrel_judged_ret"),
    "set": ("runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "utility", "set_P", "set_recall",
            "set_relative_P", "set_map", "set_F"),
}  # fmt: skip
# trec_eval measures that read other input formats (-R prefs, -R qrels_jg) or are not ported: rejected.
_NOT_IMPLEMENTED = frozenset(
    {
        "ndcg_p",
        "prefs_num_prefs_poss",
        "prefs_num_prefs_ful",
        "prefs_num_prefs_ful_ret",
        "prefs_simp",
        "prefs_pair",
        "prefs_avgjg",
        "prefs_avgjg_Rnonrel",
        "prefs_simp_ret",
        "prefs_pair_ret",
        "prefs_avgjg_ret",
        "prefs_avgjg_Rnonrel_ret",
        "prefs_simp_imp",
        "prefs_pair_imp",
        "prefs_avgjg_imp",
        "map_avgjg",
        "P_avgjg",
        "Rprec_mult_avgjg",
        "all_prefs",
        "prefs",
        "qrels_jg",
    }
)
_CUTOFF_RE = re.compile(r"^\+?(\d+)(?:\.\d*)?$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class TrecMeasure:
    """One requested trec_eval measure with its parameters.

    ``cutoffs``: integer cutoffs (P, recall...); ``values``: double cutoffs or parameters
    (iprec_at_recall, Rprec_mult, utility, 11pt_avg, set_F, relstring); ``pairs``: ``name=value``
    pairs (ndcg and the other gain measures; ``gains`` holds the integer-level ones);
    ``param_text`` the parameter text as given (``None``: defaults).
    """

    name: str
    cutoffs: tuple[int, ...] = ()
    gains: tuple[tuple[int, float], ...] = ()
    param_text: str | None = None
    values: tuple[float, ...] = ()
    pairs: tuple[tuple[str, float], ...] = ()


def _implemented() -> str:
    return ", ".join([*_DEFS, *_NICKNAMES])


def _parse_cutoffs(name: str, text: str) -> tuple[int, ...]:
    cutoffs = []
    for part in text.split(","):
        m = _CUTOFF_RE.match(part.strip())
        if m is None or int(m.group(1)) <= 0:
            raise MeasureError(f"measure '{name}.{text}': cutoffs must be positive integers, found {part!r}")
        cutoffs.append(int(m.group(1)))
    cutoffs.sort()
    if len(set(cutoffs)) != len(cutoffs):
        raise MeasureError(f"measure '{name}.{text}': duplicate cutoffs")
    return tuple(cutoffs)


def _parse_float(name: str, text: str, part: str) -> float:
    if _FLOAT_RE.match(part.strip()) is None:
        raise MeasureError(f"measure '{name}.{text}': parameters must be numbers, found {part!r}")
    value = float(part)
    if not math.isfinite(value):
        raise MeasureError(f"measure '{name}.{text}': parameter {part!r} is not finite")
    return value


def _parse_values(d: _TrecDef, text: str) -> tuple[float, ...]:
    values = [_parse_float(d.name, text, part) for part in text.split(",")]
    if d.kind == "dcut":
        values.sort()
        if len(set(values)) != len(values):
            raise MeasureError(f"measure '{d.name}.{text}': duplicate cutoffs")
    if d.n_values is not None and len(values) != d.n_values:
        raise MeasureError(
            f"measure '{d.name}.{text}': takes {d.n_values} comma-separated number(s), found {len(values)}"
        )
    if d.name == "relstring" and values[0] < 0:
        raise MeasureError(f"measure 'relstring.{text}': the length must be >= 0")
    return tuple(values)


def _parse_pairs(name: str, text: str) -> tuple[tuple[str, float], ...]:
    pairs: list[tuple[str, float]] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        rbp_p = name in ("rbp", "rbp_resid") and key == "p"
        if not sep or (_INT_RE.match(key) is None and not rbp_p):
            want = "'grade=gain' pairs" + (" or 'p=persistence'" if name.startswith("rbp") else "")
            raise MeasureError(f"measure '{name}.{text}': parameters must be {want}, found {part!r}")
        pairs.append((key, _parse_float(name, text, value)))
    return tuple(pairs)


def parse_measures(requests: Iterable[str]) -> list[TrecMeasure]:
    """Resolve trec_eval ``-m`` arguments (names, ``name.params``, nicknames) in trec_eval's order.

    No request means ``official``. A measure given twice with different parameters is an error
    (trec_eval would silently keep the first); an unknown or unimplemented name or a malformed
    parameter is a :class:`MeasureError` naming it.
    """
    requests = list(requests) or ["official"]
    chosen: dict[str, TrecMeasure] = {}
    explicit: dict[str, str] = {}
    for req in requests:
        name, dot, params = req.strip().partition(".")
        if dot and not params:
            raise MeasureError(f"measure {req!r}: empty parameter list after '.'")
        if name in _NICKNAMES:
            if dot:
                raise MeasureError(f"measure {req!r}: the nickname {name} takes no parameters")
            for member in _NICKNAMES[name]:
                chosen.setdefault(member, _default_measure(member))
            continue
        if name in _NOT_IMPLEMENTED:
            raise MeasureError(
                f"trec_eval measure {name!r} is not implemented by harness (it needs trec_eval's prefs or "
                f"qrels_jg input formats); implemented: {_implemented()}"
            )
        if name not in _DEFS:
            raise MeasureError(f"unknown trec_eval measure {req!r}; implemented: {_implemented()}")
        d = _DEFS[name]
        if not dot:
            measure = _default_measure(name)
        elif d.kind == "cut":
            measure = TrecMeasure(name, cutoffs=_parse_cutoffs(name, params), param_text=params)
        elif d.kind in ("dcut", "dparams"):
            measure = TrecMeasure(name, values=_parse_values(d, params), param_text=params)
        elif d.kind == "pairs":
            pairs = _parse_pairs(name, params)
            gains = tuple((int(k), v) for k, v in pairs if k != "p")
            measure = TrecMeasure(name, gains=gains, param_text=params, pairs=pairs)
        else:
            raise MeasureError(f"measure {req!r}: {name} takes no parameters")
        if name in explicit and explicit[name] != params:
            raise MeasureError(
                f"measure {name} requested with two parameter lists: {explicit[name] or '(default)'!r} and "
                f"{params or '(default)'!r}"
            )
        explicit[name] = params
        chosen[name] = measure
    return sorted(chosen.values(), key=lambda m: _ORDER[m.name])


def _default_measure(name: str) -> TrecMeasure:
    d = _DEFS[name]
    return TrecMeasure(name, cutoffs=d.cutoffs, values=d.values)


# ---------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class TrecValues:
    """One output measure (e.g. ``P_10``): per-query values and the summary over all queries.

    ``text`` holds per-query strings instead (relstring: no summary); ``show_per_query`` is false
    for the summary-only measures (gm_map, gm_bpref), ``show_summary`` false for relstring.
    """

    name: str
    integer: bool
    per_query: np.ndarray
    summary: float
    text: tuple[str, ...] | None = None
    show_per_query: bool = True
    show_summary: bool = True


@dataclass(frozen=True)
class TrecEvaluation:
    """What trec_eval prints: run id, evaluated queries (in order) and the measures' values."""

    runid: str
    query_ids: tuple[str, ...]
    values: tuple[TrecValues, ...]
    show_runid: bool
    show_num_q: bool


def _mean(arr: np.ndarray, n: int) -> float:
    """Sum in query order (trec_eval's accumulation), divided by the number of queries."""
    return float(np.cumsum(arr)[-1]) / n if len(arr) else 0.0


def _outputs(eng: Engine, m: TrecMeasure) -> list[TrecValues]:
    d = _DEFS[m.name]
    n = eng.n
    name = m.name
    if d.kind == "count":
        arr = {
            "num_ret": lambda: np.where(eng.r.bogus, 0, eng.r.num_ret),
            "num_rel": lambda: eng.num_rel,
            "num_rel_ret": lambda: eng.num_rel_ret,
            "num_nonrel_judged_ret": eng.num_nonrel_judged_ret,
        }[name]().astype(np.float64)
        return [TrecValues(name, True, arr, float(np.cumsum(arr)[-1]))]
    if d.kind in ("float", "geo"):
        arr = {
            "map": eng.map,
            "gm_map": eng.gm_map,
            "Rprec": eng.rprec,
            "bpref": eng.bpref,
            "recip_rank": eng.recip_rank,
            "infAP": eng.infap,
            "gm_bpref": eng.gm_bpref,
            "binG": eng.bin_g,
            "set_P": eng.set_p,
            "set_relative_P": eng.set_relative_p,
            "set_recall": eng.set_recall,
            "set_map": eng.set_map,
            "yaap": eng.yaap,
        }[name]()
        if d.kind == "geo":
            return [TrecValues(name, False, arr, math.exp(_mean(arr, n)), show_per_query=False)]
        return [TrecValues(name, False, arr, _mean(arr, n))]
    if d.kind == "cut":
        fn = {
            "P": eng.precision,
            "recall": eng.recall,
            "ndcg_cut": eng.ndcg_cut,
            "map_cut": eng.map_cut,
            "relative_P": eng.relative_p,
            "success": eng.success,
            "unj": eng.unj,
        }[name]
        out = []
        for k in m.cutoffs:
            arr = fn(k)
            out.append(TrecValues(f"{name}_{k}", False, arr, _mean(arr, n)))
        return out
    if d.kind == "dcut":
        arrs = eng.iprec_at_recall(m.values) if name == "iprec_at_recall" else eng.rprec_mult(m.values)
        return [
            TrecValues(f"{name}_{v:3.2f}", False, arr, _mean(arr, n)) for v, arr in zip(m.values, arrs, strict=True)
        ]
    label = name if m.param_text is None else f"{name}_{m.param_text}"
    # trec_eval blanks a -c query's utility, relstring and rbp_resid by exact output name only
    blank = m.param_text is None
    if d.kind == "dparams":
        if name == "relstring":
            text = tuple(eng.relstring(m.values[0], blank))
            return [TrecValues(label, False, np.zeros(n), 0.0, text=text, show_summary=False)]
        arr = {
            "utility": lambda: eng.utility(m.values, blank),
            "11pt_avg": lambda: eng.pt11_avg(m.values),
            "set_F": lambda: eng.set_f(m.values[0]),
        }[name]()
        return [TrecValues(label, False, arr, _mean(arr, n))]
    # pairs
    gains = m.gains
    p = next((v for k, v in m.pairs if k == "p"), 0.9)
    arr = {
        "G": lambda: eng.g_measure(gains),
        "dcg": lambda: eng.dcg(gains),
        "ideal_dcg": lambda: eng.ideal_dcg(gains),
        "ndcg": lambda: eng.ndcg(gains),
        "ndcg_rel": lambda: eng.ndcg_rel(gains),
        "Rndcg": lambda: eng.rndcg(gains),
        "rbp": lambda: eng.rbp(gains, p),
        "rbp_resid": lambda: eng.rbp_resid(p, blank),
    }[name]()
    return [TrecValues(label, False, arr, _mean(arr, n))]


def _levels(qrels: TrecQrels, n_q: int) -> np.ndarray:
    """[n_q x (max grade + 1)] count of judged documents per grade >= 0."""
    sel = qrels.grades >= 0
    top = int(qrels.grades[sel].max(initial=0)) + 1
    flat = np.bincount(qrels.qcode[sel] * top + qrels.grades[sel], minlength=n_q * top)
    return flat.reshape(n_q, top).astype(np.int64)


def evaluate_trec(
    qrels: TrecQrels,
    run: TrecRun,
    measures: Sequence[TrecMeasure],
    relevance_level: int = 1,
    average_complete: bool = False,
    max_depth: int | None = None,
    num_docs_in_coll: int = 0,
) -> TrecEvaluation:
    """Evaluate like ``trec_eval [-c] [-l LEVEL] [-M DEPTH] [-N DOCS] -m ...``.

    Queries are those in both qrels and run. With ``average_complete`` every qrels query is
    evaluated; a query missing from the run gets trec_eval's one-document ranking of an unjudged
    document (and num_ret, utility, unj, rbp_resid and relstring of it are blanked, as trec_eval
    does). Summaries are means over the evaluated queries (sums for the counts; the geometric mean
    for gm_map and gm_bpref), accumulated in query order like trec_eval.
    """
    if relevance_level < 0:
        raise MeasureError(f"relevance level (-l) must be >= 0, found {relevance_level}")
    n_q = len(qrels.query_ids)
    qrels_index = {q: i for i, q in enumerate(qrels.query_bytes)}
    qmap = np.array([qrels_index.get(q, -1) for q in run.query_bytes], dtype=np.int32)
    line_q = qmap[run.qindex]
    keep, codes, dup = judgment_codes(line_q, run.doc_bytes, qrels)
    if keep is None:
        kq, kscores = line_q, run.scores
    else:
        kq, kscores = line_q[keep], run.scores[keep]
    if dup is not None:
        qb = qrels.query_bytes[dup[0]]
        raise InputError(
            run.source or "run",
            f"document {dup[1].decode('utf-8', 'replace')!r} is ranked twice for query "
            f"{qb.decode('utf-8', 'replace')!r}",
            line=find_line(run.source, qb, dup[1]) if run.source else None,
        )

    def tie_keys(idx: np.ndarray) -> np.ndarray:
        return run.doc_bytes.fixed(idx if keep is None else keep[idx])

    ranked, num_ret = rank_codes(kq, kscores, codes, n_q, tie_keys, max_depth)
    in_run = np.bincount(kq, minlength=n_q) > 0
    rows = np.arange(n_q) if average_complete else np.flatnonzero(in_run)
    if len(rows) == 0:
        raise HarnessError(
            "no query has both results and judgments",
            hint="check that the run and qrels use the same query ids",
        )
    ranked = ranked if len(rows) == n_q else ranked[rows]
    num_ret = num_ret[rows]
    bogus = ~in_run[rows]
    if bogus.any():
        # trec_eval ranks one document "ceci_nest_pas_un_docno" (not in the pool) for such a query
        depth = 1 if max_depth is None else min(1, max_depth)
        if depth:
            ranked = ranked.copy()
            ranked[bogus, 0] = NONPOOL
            num_ret = np.where(bogus, 1, num_ret)
    levels = _levels(qrels, n_q)[rows]
    eng = Engine(Rankings(ranked, num_ret.astype(np.int64), levels, bogus), relevance_level, num_docs_in_coll)
    out: list[TrecValues] = []
    for m in measures:
        if _DEFS[m.name].kind in ("runid", "num_q"):
            continue
        out.extend(_outputs(eng, m))
    names = {m.name for m in measures}
    assert ranked.dtype == np.int32 and int(ranked.min(initial=0)) >= PAD
    return TrecEvaluation(
        runid=run.runid,
        query_ids=tuple(qrels.query_ids[i] for i in rows.tolist()),
        values=tuple(out),
        show_runid="runid" in names,
        show_num_q="num_q" in names,
    )


def evaluate_files(
    qrels_path: str | Path,
    run_path: str | Path,
    measures: Sequence[TrecMeasure],
    relevance_level: int = 1,
    average_complete: bool = False,
    max_depth: int | None = None,
    num_docs_in_coll: int = 0,
) -> TrecEvaluation:
    """Read both files and evaluate (``harness metrics``'s core); errors name file:line."""
    qrels = read_qrels(qrels_path)
    run = read_run(run_path)
    return evaluate_trec(qrels, run, measures, relevance_level, average_complete, max_depth, num_docs_in_coll)
