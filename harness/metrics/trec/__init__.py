"""TREC files and trec_eval compatibility: qrels/run parsing (:mod:`.files`), the measure grammar and its
computation (:mod:`.measures`), trec_eval's text output (:mod:`.output`).

Every measure of trec_eval 10 that reads standard qrels is implemented (:mod:`.engine`), with its
names, parameters, nicknames (``official``, ``all_trec``, ``set``) and text output, line for line;
the prefs and qrels_jg measures (other input formats) and ndcg_p are rejected by name. Deliberate
differences, all stricter than trec_eval:

* an unknown measure, a malformed parameter (trec_eval's ``atof`` reads ``x`` as 0 and its gain
  parser skips a non-integer level) or a measure requested twice with different parameters is an
  error (trec_eval keeps the first);
* blank qrels lines are skipped (trec_eval rejects them); a grade must be an integer (trec_eval's
  ``atol`` reads ``1.5`` as 1); bytes up to 0x20 all separate fields; ``-l`` must be >= 0;
* rbp's gain normalization reads uninitialized variables in trec_eval; harness starts its
  min/max at 0, which is what the expected outputs show.
"""

from harness.metrics.trec.files import TrecQrels, TrecRun, read_qrels, read_run, to_mappings
from harness.metrics.trec.measures import (
    DEFAULT_CUTOFFS,
    TrecEvaluation,
    TrecMeasure,
    TrecValues,
    evaluate_files,
    evaluate_trec,
    parse_measures,
)
from harness.metrics.trec.output import format_trec, trec_json

__all__ = [
    "DEFAULT_CUTOFFS",
    "TrecEvaluation",
    "TrecMeasure",
    "TrecQrels",
    "TrecRun",
    "TrecValues",
    "evaluate_files",
    "evaluate_trec",
    "format_trec",
    "parse_measures",
    "read_qrels",
    "read_run",
    "to_mappings",
    "trec_json",
]
