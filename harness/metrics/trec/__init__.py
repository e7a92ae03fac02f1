"""TREC files and trec_eval compatibility: qrels/run parsing (:mod:`.files`), the measure grammar and its
computation (:mod:`.measures`), trec_eval's text output (:mod:`.output`).

Measure names follow trec_eval (``-m P.5,10``, ``ndcg_cut.10``, ``ndcg.1=3,2=9``, ``all_trec``...);
each maps onto a harness metric of :mod:`harness.metrics.ir`, and the text output is trec_eval's,
line for line. Deliberate differences, all stricter or clearer than trec_eval:

* trec_eval measures harness does not implement (bpref, iprec_at_recall, gm_map...) are left out of
  the ``official``/``all_trec``/``set`` nicknames and rejected when named explicitly;
* a measure requested twice with different parameters is an error (trec_eval keeps the first);
* blank qrels lines are skipped (trec_eval rejects them); a grade must be an integer (trec_eval's
  ``atol`` reads ``1.5`` as 1); bytes up to 0x20 all separate fields;
* custom ndcg gains are sorted exactly for the ideal ranking (trec_eval's comparator truncates
  gain differences to int) and may only be set for grades >= 0.
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
