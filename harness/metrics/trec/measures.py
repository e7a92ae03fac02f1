"""trec_eval's measures: the ``-m`` grammar (``P.5,10``, ``ndcg_cut.10``, ``ndcg.1=3,2=9``, nicknames
such as ``all_trec``) and their computation, each measure mapped onto a harness metric of
:mod:`harness.metrics.ir`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import HarnessError, InputError, MeasureError
from harness.metrics.ir import JudgedRankings, build_judged, evaluate, rank_codes
from harness.metrics.trec.files import TrecQrels, TrecRun, find_line, judgment_codes, read_qrels, read_run

#: trec_eval's default cutoffs for P, recall, ndcg_cut and map_cut.
DEFAULT_CUTOFFS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)
_SUCCESS_CUTOFFS = (1, 5, 10)


@dataclass(frozen=True)
class _TrecDef:
    name: str
    kind: str  # runid | num_q | count | float | cut | gains
    base: str
    defaults: tuple[int, ...] = ()


_TREC_DEFS = (
    _TrecDef("runid", "runid", ""),
    _TrecDef("num_q", "num_q", ""),
    _TrecDef("num_ret", "count", "num_ret"),
    _TrecDef("num_rel", "count", "num_rel"),
    _TrecDef("num_rel_ret", "count", "num_rel_ret"),
    _TrecDef("map", "float", "map"),
    _TrecDef("Rprec", "float", "rprec"),
    _TrecDef("recip_rank", "float", "mrr"),
    _TrecDef("P", "cut", "precision", DEFAULT_CUTOFFS),
    _TrecDef("recall", "cut", "recall", DEFAULT_CUTOFFS),
    _TrecDef("ndcg", "gains", "ndcg"),
    _TrecDef("ndcg_cut", "cut", "ndcg", DEFAULT_CUTOFFS),
    _TrecDef("map_cut", "cut", "map", DEFAULT_CUTOFFS),
    _TrecDef("success", "cut", "success", _SUCCESS_CUTOFFS),
)
_DEFS = {d.name: d for d in _TREC_DEFS}
_ORDER = {d.name: i for i, d in enumerate(_TREC_DEFS)}
_NICKNAMES = {
    "official": ("runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank", "P"),
    "all_trec": tuple(d.name for d in _TREC_DEFS),
    "set": ("runid", "num_q", "num_ret", "num_rel", "num_rel_ret"),
}
# trec_eval measures and nicknames harness does not implement (rejected by name, with this reason).
_NOT_IMPLEMENTED = frozenset(
    {
        "gm_map",
        "bpref",
        "iprec_at_recall",
        "relstring",
        "infAP",
        "gm_bpref",
        "Rprec_mult",
        "utility",
        "11pt_avg",
        "binG",
        "G",
        "dcg",
        "ideal_dcg",
        "ndcg_rel",
        "Rndcg",
        "relative_P",
        "set_P",
        "set_relative_P",
        "set_recall",
        "set_map",
        "set_F",
        "num_nonrel_judged_ret",
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
        "yaap",
        "rbp",
        "rbp_resid",
        "unj",
        "ndcg_p",
        "num_nonjudged_ret",
        "all_prefs",
        "prefs",
        "qrels_jg",
    }
)
_CUTOFF_RE = re.compile(r"^\+?(\d+)(?:\.\d*)?$")
_INT_RE = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class TrecMeasure:
    """One requested trec_eval measure with its parameters (cutoffs, or ndcg gains)."""

    name: str
    cutoffs: tuple[int, ...] = ()
    gains: tuple[tuple[int, float], ...] = ()
    param_text: str | None = None


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


def _parse_gains(text: str) -> tuple[tuple[int, float], ...]:
    gains: dict[int, float] = {}
    for part in text.split(","):
        level, sep, gain = part.partition("=")
        if not sep or _INT_RE.match(level.strip()) is None:
            raise MeasureError(
                f"measure 'ndcg.{text}': parameters must be 'grade=gain' pairs, found {part!r}"
            )
        lvl = int(level)
        if lvl < 0:
            raise MeasureError(f"measure 'ndcg.{text}': gains can only be set for grades >= 0, found {lvl}")
        try:
            gains[lvl] = float(gain)
        except ValueError:
            raise MeasureError(f"measure 'ndcg.{text}': gain {gain!r} is not a number") from None
    return tuple(sorted(gains.items()))


def parse_measures(requests: Iterable[str]) -> list[TrecMeasure]:
    """Resolve trec_eval ``-m`` arguments (names, ``name.params``, nicknames) in trec_eval's order.

    No request means ``official``. A measure given twice with different parameters is an error
    (trec_eval would silently keep the first).
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
                f"trec_eval measure {name!r} is not implemented by harness; implemented: {_implemented()}"
            )
        if name not in _DEFS:
            raise MeasureError(f"unknown trec_eval measure {req!r}; implemented: {_implemented()}")
        d = _DEFS[name]
        if not dot:
            measure = _default_measure(name)
        elif d.kind == "cut":
            measure = TrecMeasure(name, cutoffs=_parse_cutoffs(name, params), param_text=params)
        elif d.kind == "gains":
            measure = TrecMeasure(name, gains=_parse_gains(params), param_text=params)
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
    return TrecMeasure(name, cutoffs=_DEFS[name].defaults)


# ---------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class TrecValues:
    """One output measure (e.g. ``P_10``): per-query values and the summary over all queries."""

    name: str
    integer: bool
    per_query: np.ndarray
    summary: float


@dataclass(frozen=True)
class TrecEvaluation:
    """What trec_eval prints: run id, evaluated queries (in order) and the measures' values."""

    runid: str
    query_ids: tuple[str, ...]
    values: tuple[TrecValues, ...]
    show_runid: bool
    show_num_q: bool


def evaluate_trec(
    qrels: TrecQrels,
    run: TrecRun,
    measures: Sequence[TrecMeasure],
    relevance_level: int = 1,
    average_complete: bool = False,
    max_depth: int | None = None,
) -> TrecEvaluation:
    """Evaluate like ``trec_eval [-c] [-l LEVEL] [-M DEPTH] -m ...``.

    Queries are those in both qrels and run (with ``average_complete``, every qrels query; missing
    ones have an empty ranking and count 0). Summaries are means over those queries (sums for the
    ``num_*`` counts), accumulated in query order like trec_eval.
    """
    n_q = len(qrels.query_ids)
    qrels_index = {q: i for i, q in enumerate(qrels.query_bytes)}
    qmap = np.array([qrels_index.get(q, -1) for q in run.query_bytes], dtype=np.int64)
    if np.all(qmap >= 0):
        kq = qmap.astype(np.int32)[run.qindex]
        kdocs, kscores = run.docs, run.scores
    else:
        line_q = qmap.astype(np.int32)[run.qindex]
        keep = np.flatnonzero(line_q >= 0)
        kq, kdocs, kscores = line_q[keep], run.docs[keep], run.scores[keep]
    codes, dup = judgment_codes(kq, kdocs, qrels)
    if dup is not None:
        qb = qrels.query_bytes[dup[0]]
        raise InputError(
            run.source or "run",
            f"document {dup[1].decode('utf-8', 'replace')!r} is ranked twice for query "
            f"{qb.decode('utf-8', 'replace')!r}",
            line=find_line(run.source, qb, dup[1]) if run.source else None,
        )
    ranked, num_ret = rank_codes(kq, kscores, codes, n_q, lambda idx: kdocs[idx], max_depth)
    judged = build_judged(qrels.qcode, qrels.grades, n_q)
    in_run = np.bincount(kq, minlength=n_q) > 0
    rows = np.arange(n_q) if average_complete else np.flatnonzero(in_run)
    if len(rows) == 0:
        raise HarnessError(
            "no query has both results and judgments",
            hint="check that the run and qrels use the same query ids",
        )
    jr = JudgedRankings(
        query_ids=tuple(qrels.query_ids[i] for i in rows.tolist()),
        ranked=ranked[rows],
        num_ret=num_ret[rows],
        judged=judged[rows],
    )
    wanted: list[tuple[str, int | None]] = []
    gains: dict[int, float] | None = None
    for m in measures:
        d = _DEFS[m.name]
        if d.kind in ("count", "float"):
            wanted.append((d.base, None))
        elif d.kind == "gains":
            wanted.append((d.base, None))
            gains = dict(m.gains) if m.gains else None
        elif d.kind == "cut":
            wanted.extend((d.base, k) for k in m.cutoffs)
    computed = evaluate(jr, wanted, relevance_level, ndcg_gains=gains)
    n_eval = len(rows)
    out: list[TrecValues] = []
    for m in measures:
        d = _DEFS[m.name]
        if d.kind in ("runid", "num_q"):
            continue
        if d.kind == "cut":
            items = [(f"{m.name}_{k}", computed[(d.base, k)]) for k in m.cutoffs]
        elif d.kind == "gains" and m.param_text:
            items = [(f"{m.name}_{m.param_text}", computed[(d.base, None)])]
        else:
            items = [(m.name, computed[(d.base, None)])]
        for label, arr in items:
            total = float(np.cumsum(arr)[-1])
            integer = d.kind == "count"
            out.append(TrecValues(label, integer, arr, total if integer else total / n_eval))
    names = {m.name for m in measures}
    return TrecEvaluation(
        runid=run.runid,
        query_ids=jr.query_ids,
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
) -> TrecEvaluation:
    """Read both files and evaluate (``harness metrics``'s core); errors name file:line."""
    qrels = read_qrels(qrels_path)
    run = read_run(run_path)
    return evaluate_trec(qrels, run, measures, relevance_level, average_complete, max_depth)
