"""trec_eval's text output, line for line, and the same values as JSON."""

from __future__ import annotations

import json

from harness.metrics.trec.measures import TrecEvaluation


def format_trec(result: TrecEvaluation, per_query: bool = False) -> str:
    """trec_eval's text output: ``name<pad>\\tquery\\tvalue`` lines, per query (``-q``) then ``all``."""
    lines: list[str] = []

    def fmt(v: float, integer: bool) -> str:
        return str(round(v)) if integer else f"{v:6.4f}"

    if per_query:
        cols = [(tv, tv.per_query.tolist()) for tv in result.values]
        for i, qid in enumerate(result.query_ids):
            for tv, vals in cols:
                lines.append(f"{tv.name:<22}\t{qid}\t{fmt(vals[i], tv.integer)}")
    if result.show_runid:
        lines.append(f"{'runid':<22}\tall\t{result.runid}")
    if result.show_num_q:
        lines.append(f"{'num_q':<22}\tall\t{len(result.query_ids)}")
    for tv in result.values:
        lines.append(f"{tv.name:<22}\tall\t{fmt(tv.summary, tv.integer)}")
    return "\n".join(lines) + "\n"


def trec_json(result: TrecEvaluation, per_query: bool = False) -> str:
    """JSON output: ``{"runid", "num_q", "queries", "measures": {name: {"all": v, query id: v...}}}``.

    Values are unrounded; counts are integers; per-query values appear only with ``per_query``.
    """
    measures: dict[str, dict[str, float | int]] = {}
    for tv in result.values:
        entry: dict[str, float | int] = {"all": round(tv.summary) if tv.integer else tv.summary}
        if per_query:
            for qid, v in zip(result.query_ids, tv.per_query.tolist(), strict=True):
                entry[qid] = round(v) if tv.integer else v
        measures[tv.name] = entry
    doc = {
        "runid": result.runid,
        "num_q": len(result.query_ids),
        "queries": list(result.query_ids),
        "measures": measures,
    }
    return json.dumps(doc, indent=2)
