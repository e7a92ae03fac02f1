"""trec_eval's text output, line for line, and the same values as JSON."""

from __future__ import annotations

import json
import math

import numpy as np

from harness.metrics.trec.measures import TrecEvaluation, TrecValues


def _fmt_float(v: float) -> str:
    """C's ``%6.4f`` (glibc prints a NaN with its sign bit as ``-nan``)."""
    if math.isnan(v):
        return f"{'-nan' if np.signbit(v) else 'nan':>6}"
    return f"{v:6.4f}"


def _fmt(v: float, integer: bool) -> str:
    return str(int(v)) if integer else _fmt_float(v)


def format_trec(result: TrecEvaluation, per_query: bool = False) -> str:
    """trec_eval's text output: ``name<pad>\\tquery\\tvalue`` lines, per query (``-q``) then ``all``."""
    lines: list[str] = []
    if per_query:
        cols: list[tuple[TrecValues, list[float] | tuple[str, ...]]] = [
            (tv, tv.text if tv.text is not None else tv.per_query.tolist()) for tv in result.values if tv.show_per_query
        ]
        for i, qid in enumerate(result.query_ids):
            for tv, vals in cols:
                if tv.text is not None:
                    lines.append(f"{tv.name:<22}\t{qid}\t'{vals[i]}'")
                else:
                    lines.append(f"{tv.name:<22}\t{qid}\t{_fmt(float(vals[i]), tv.integer)}")
    if result.show_runid:
        lines.append(f"{'runid':<22}\tall\t{result.runid}")
    if result.show_num_q:
        lines.append(f"{'num_q':<22}\tall\t{len(result.query_ids)}")
    for tv in result.values:
        if tv.show_summary:
            lines.append(f"{tv.name:<22}\tall\t{_fmt(tv.summary, tv.integer)}")
    return "\n".join(lines) + "\n" if lines else ""


def _json_value(v: float, integer: bool) -> float | int | None:
    if integer:
        return int(v)
    return v if math.isfinite(v) else None


def trec_json(result: TrecEvaluation, per_query: bool = False) -> str:
    """JSON output: ``{"runid", "num_q", "queries", "measures": {name: {"all": v, query id: v...}}}``.

    Every measure is present. Values are unrounded; counts are integers; a non-finite value (a
    trec_eval ``nan``) is ``null``; per-query values appear only with ``per_query``; relstring has
    per-query strings and no ``all``; gm_map and gm_bpref have only ``all``.
    """
    measures: dict[str, dict[str, float | int | str | None]] = {}
    for tv in result.values:
        entry: dict[str, float | int | str | None] = {}
        if tv.show_summary:
            entry["all"] = _json_value(tv.summary, tv.integer)
        if per_query and tv.show_per_query:
            if tv.text is not None:
                entry.update(zip(result.query_ids, tv.text, strict=True))
            else:
                for qid, v in zip(result.query_ids, tv.per_query.tolist(), strict=True):
                    entry[qid] = _json_value(v, tv.integer)
        measures[tv.name] = entry
    doc = {
        "runid": result.runid,
        "num_q": len(result.query_ids),
        "queries": list(result.query_ids),
        "measures": measures,
    }
    return json.dumps(doc, indent=2)
