"""Runs and diffs as tables: Arrow tables (pyarrow, a core dependency) and pandas DataFrames (the optional
extra ``rag-harness[pandas]``) for notebooks, dashboards and anything that reads Arrow.

Every frame is its Arrow table converted with ``Table.to_pandas()``, so the two always hold the same
columns in the same order. Column types (Arrow -> pandas):

- ids, names, texts: ``string`` -> pandas' string dtype; a missing text is null -> NaN;
- metric values, means, deltas, intervals, p-values, latencies: ``float64``; unscored or not computed is
  null -> NaN (never 0);
- counts: ``int64``, never null; flags: ``bool``, never null;
- lists (ranked doc ids, causes): ``list<string>`` -> an array per row.

The tables:

- :func:`cases_table` / :func:`cases_frame`: one row per case of a run, in the run's order: ``case_id``,
  ``query``, one ``tag:<name>`` column per tag of the golden set, one column per metric named as the metric
  (``ndcg@10``, ``format_pass``, ``format_fail:<contract>.<check>``...), ``answer``, ``retrieved`` (doc ids
  in rank order), ``error_stage``, ``error_kind``, ``error_message`` (null when the case has no error) and
  one ``latency_s:<stage>`` column per stage timed (seconds).
- :func:`metrics_table` / :func:`metrics_frame`: one row per metric x segment of a run's aggregates, the
  overall rows first (segment ``"all"``, as in a diff) and then each ``tag=value`` segment: ``metric``,
  ``segment``, ``label`` (how reports name it, null: by its name), ``role`` (``quality`` / ``diagnostic``),
  ``greater_is_better``, ``mean`` (over the scored cases), ``n`` (cases scored), ``n_unscored``.
- :func:`deltas_table` / :func:`deltas_frame`: one row per metric x segment of a diff, overall rows first,
  in the published ``harness diff --json`` layout of :class:`~harness.diff.MetricDelta` (``base_mean``,
  ``head_mean``, ``delta``, ``rel_delta``, ``ci_low``, ``ci_high``, ``p_value``, ``p_adjusted``,
  ``significant``, ``direction`` = ``improved`` / ``regressed`` / ``unchanged``, null when nothing was
  paired, ...).
- :func:`flips_table` / :func:`flips_frame`: one row per flipped case and metric that moved (a case that
  moved on three metrics has three rows sharing its ``case_id``), largest impact first: ``case_id``,
  ``query``, ``direction`` (the case's: ``regressed`` / ``improved`` / ``mixed``), ``impact``, ``metric``,
  ``base``, ``head``, ``delta`` (head - base), ``causes``, ``lost_relevant``, ``gained_relevant``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from harness.errors import HarnessError, MissingDependencyError

if TYPE_CHECKING:
    import pandas as pd

    from harness.diff import Diff
    from harness.types import RunResult

TAG_PREFIX = "tag:"
LATENCY_PREFIX = "latency_s:"
_STRINGS = pa.list_(pa.string())

_METRICS_SCHEMA = pa.schema([
    pa.field("metric", pa.string(), nullable=False),
    pa.field("segment", pa.string(), nullable=False),
    pa.field("label", pa.string()),
    pa.field("role", pa.string(), nullable=False),
    pa.field("greater_is_better", pa.bool_(), nullable=False),
    pa.field("mean", pa.float64()),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("n_unscored", pa.int64(), nullable=False),
])

# the published MetricDelta layout (MetricDelta's serializer), typed
_DELTAS_SCHEMA = pa.schema([
    pa.field("metric", pa.string(), nullable=False),
    pa.field("segment", pa.string(), nullable=False),
    pa.field("greater_is_better", pa.bool_(), nullable=False),
    pa.field("role", pa.string(), nullable=False),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("n_base", pa.int64(), nullable=False),
    pa.field("n_head", pa.int64(), nullable=False),
    pa.field("base_mean", pa.float64()),
    pa.field("head_mean", pa.float64()),
    pa.field("delta", pa.float64()),
    pa.field("rel_delta", pa.float64()),
    pa.field("ci_low", pa.float64()),
    pa.field("ci_high", pa.float64()),
    pa.field("p_value", pa.float64()),
    pa.field("p_adjusted", pa.float64()),
    pa.field("significant", pa.bool_(), nullable=False),
    pa.field("in_family", pa.bool_(), nullable=False),
    pa.field("changed", pa.int64(), nullable=False),
    pa.field("wins", pa.int64(), nullable=False),
    pa.field("ties", pa.int64(), nullable=False),
    pa.field("losses", pa.int64(), nullable=False),
    pa.field("cohens_dz", pa.float64()),
    pa.field("direction", pa.string()),
])

_FLIPS_SCHEMA = pa.schema([
    pa.field("case_id", pa.string(), nullable=False),
    pa.field("query", pa.string()),
    pa.field("direction", pa.string(), nullable=False),
    pa.field("impact", pa.float64(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("base", pa.float64()),
    pa.field("head", pa.float64()),
    pa.field("delta", pa.float64()),
    pa.field("causes", _STRINGS, nullable=False),
    pa.field("lost_relevant", _STRINGS, nullable=False),
    pa.field("gained_relevant", _STRINGS, nullable=False),
])


def _table(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=schema)


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def cases_table(run: RunResult) -> pa.Table:
    """One row per case of ``run`` (see the module docstring for the columns)."""
    cases = {c.id: c for c in run.cases}
    tags = sorted({t for c in run.cases for t in c.tags})
    metrics = _unique([*run.aggregates.overall, *(s.metric for s in run.scores)])
    stages = _unique(stage for o in run.outputs for stage in o.latency_s)
    fields = [
        pa.field("case_id", pa.string(), nullable=False),
        pa.field("query", pa.string()),
        *(pa.field(TAG_PREFIX + t, pa.string()) for t in tags),
        *(pa.field(m, pa.float64()) for m in metrics),
        pa.field("answer", pa.string()),
        pa.field("retrieved", _STRINGS, nullable=False),
        pa.field("error_stage", pa.string()),
        pa.field("error_kind", pa.string()),
        pa.field("error_message", pa.string()),
        *(pa.field(LATENCY_PREFIX + s, pa.float64()) for s in stages),
    ]
    names = [f.name for f in fields]
    if len(set(names)) < len(names):
        clash = next(m for m in metrics if names.count(m) > 1)
        raise HarnessError(f"metric {clash!r} has the name of another column of the case table; "
                           "rename the metric in its scorer")
    scores = run.case_scores()
    rows = []
    for o in run.outputs:
        case = cases.get(o.case_id)
        values = scores.get(o.case_id, {})
        rows.append({
            "case_id": o.case_id,
            "query": case.query if case else None,
            **{TAG_PREFIX + t: case.tags.get(t) if case else None for t in tags},
            **{m: values.get(m) for m in metrics},
            "answer": o.answer,
            "retrieved": [d.doc_id for d in o.ranking],
            "error_stage": o.error.stage if o.error else None,
            "error_kind": o.error.kind if o.error else None,
            "error_message": o.error.message if o.error else None,
            **{LATENCY_PREFIX + s: o.latency_s.get(s) for s in stages},
        })
    return _table(rows, pa.schema(fields))


def metrics_table(run: RunResult) -> pa.Table:
    """One row per metric x segment of ``run``'s aggregates, overall (segment ``"all"``) first."""
    groups = [("all", run.aggregates.overall), *run.aggregates.segments.items()]
    return _table(({"metric": metric, "segment": segment, "label": s.label, "role": s.role,
                    "greater_is_better": s.greater_is_better, "mean": s.mean, "n": s.n, "n_unscored": s.n_unscored}
                   for segment, summaries in groups for metric, s in summaries.items()), _METRICS_SCHEMA)


def deltas_table(diff: Diff) -> pa.Table:
    """One row per metric x segment of ``diff``, overall first, in the published ``MetricDelta`` layout."""
    return _table((d.model_dump(mode="json") for d in (*diff.metrics, *diff.segments)), _DELTAS_SCHEMA)


def flips_table(diff: Diff) -> pa.Table:
    """One row per flipped case of ``diff`` and metric that moved, largest impact first."""
    return _table(({"case_id": f.case_id, "query": f.query, "direction": f.direction, "impact": f.impact,
                    "metric": metric, "base": base, "head": head,
                    "delta": None if base is None or head is None else head - base,
                    "causes": list(f.causes), "lost_relevant": list(f.lost_relevant),
                    "gained_relevant": list(f.gained_relevant)}
                   for f in diff.flips for metric, (base, head) in f.deltas.items()), _FLIPS_SCHEMA)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    try:
        import pandas  # noqa: F401  (Table.to_pandas imports it; checked here to name the extra)
    except ImportError:
        raise MissingDependencyError(
            "DataFrames need pandas: pip install 'rag-harness[pandas]' (the Arrow tables, cases_table and "
            "the others, need nothing more)") from None
    return table.to_pandas()


def cases_frame(run: RunResult) -> pd.DataFrame:
    """:func:`cases_table` as a pandas DataFrame (needs ``rag-harness[pandas]``)."""
    return _to_pandas(cases_table(run))


def metrics_frame(run: RunResult) -> pd.DataFrame:
    """:func:`metrics_table` as a pandas DataFrame (needs ``rag-harness[pandas]``)."""
    return _to_pandas(metrics_table(run))


def deltas_frame(diff: Diff) -> pd.DataFrame:
    """:func:`deltas_table` as a pandas DataFrame (needs ``rag-harness[pandas]``)."""
    return _to_pandas(deltas_table(diff))


def flips_frame(diff: Diff) -> pd.DataFrame:
    """:func:`flips_table` as a pandas DataFrame (needs ``rag-harness[pandas]``)."""
    return _to_pandas(flips_table(diff))
