"""Retrieval metrics with trec_eval's exact definitions, vectorized with numpy.

:func:`compute_metrics` scores in-memory rankings per query (the run pipeline's entry point);
:mod:`harness.metrics.trec` reads TREC qrels/run files and reproduces trec_eval's measures and output
(``harness metrics``).
"""

from __future__ import annotations

from harness.metrics.ir import (
    JudgedRankings,
    MetricInfo,
    Qrels,
    Run,
    compute_metrics,
    evaluate,
    metric_info,
    metric_names,
)
from harness.metrics.trec import (
    TrecEvaluation,
    TrecMeasure,
    TrecQrels,
    TrecRun,
    evaluate_files,
    evaluate_trec,
    format_trec,
    parse_measures,
    read_qrels,
    read_run,
    trec_json,
)

__all__ = [
    "JudgedRankings",
    "MetricInfo",
    "Qrels",
    "Run",
    "TrecEvaluation",
    "TrecMeasure",
    "TrecQrels",
    "TrecRun",
    "compute_metrics",
    "evaluate",
    "evaluate_files",
    "evaluate_trec",
    "format_trec",
    "metric_info",
    "metric_names",
    "parse_measures",
    "read_qrels",
    "read_run",
    "trec_json",
]
