"""The monitor's directional cheap signals as a scorer, so a replay judges them like any metric.

``harness replay`` runs logged production queries through two manifests: there are no relevance labels,
so besides the label-free scorers (format, instructions, groundedness, truncation) it scores each case by
the signals the monitor computes on production records (:mod:`harness.monitor.signals`), from the run's
own outputs. The definitions are the monitor's, not a copy: the outputs are laid out as the columns
:func:`~harness.monitor.signals.cheap_signals` reads and it computes them, so a replay, the monitor and the
canary measure the same thing.

Per case, with the monitor's direction (:func:`~harness.monitor.signals.signal_spec`):

- ``top1_score``, ``topk_mean_score`` (higher is better): the best / mean retrieved score; unscored when
  nothing was retrieved, or the ranking's scores stand for ranks (supplied doc ids without scores);
- ``answer_empty`` (lower is better, 0/1): the answer is blank; 1 when there is no answer at all (the
  case errored: a failure rate never passes an error);
- ``abstained`` (lower is better, 0/1): the answer declines to answer
  (:data:`~harness.monitor.signals.ABSTAIN_RE`); unscored when there is no answer.

The directionless signals (``answer_chars``, ``n_retrieved``) are not metrics: no rule can say which way
is better, so the replay describes how they moved (:func:`output_signals` gives them too).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from harness.metrics import MetricInfo
from harness.monitor.schema import LOG_SCHEMA
from harness.monitor.signals import cheap_signals, signal_spec
from harness.scorers import SCORERS, ScoringContext, generation_error, info
from harness.types import CaseOutput, GoldenCase, Score

SIGNAL_METRICS = ("top1_score", "topk_mean_score", "answer_empty", "abstained")
"""The directional cheap signals scored per case (the monitor's names)."""

MOVE_SIGNALS = ("answer_chars", "n_retrieved")
"""The cheap signals without a better side that a replay describes (never judged)."""


def _row(case: GoldenCase, out: CaseOutput | None, now: datetime) -> dict[str, Any]:
    ranking = out.ranking if out is not None else ()
    scored = out is not None and out.ranking_scored
    return {
        "record_id": case.id,
        "ts": now,
        "query": case.query,
        "answer": out.answer if out is not None else None,
        "retrieved_ids": [d.doc_id for d in ranking] if out is not None else None,
        # scores that stand for ranks are not retrieval scores: no score signals from them
        "retrieved_scores": [float(d.score) for d in ranking] if scored else None,
        "contexts": None,
        "latency": list(out.latency_s.items()) if out is not None else None,
        "error": out.error.kind if out is not None and out.error is not None else None,
        "timeout": False,
        "manifest_id": None,
        "instructions": None,  # judged by the instructions scorer
        "contract": None,  # judged by the format scorer
        "attrs": list(case.tags.items()),
        "fields": [],
        "source": case.id,
        "ingested_at": now,
    }


def output_signals(cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput]) -> pa.Table:
    """The monitor's cheap signals (:func:`~harness.monitor.signals.cheap_signals`) of a run's outputs, one
    row per case in ``cases`` order (``record_id`` is the case id). Contract and instruction signals are
    left null here: the format and instructions scorers judge those."""
    by_id = {o.case_id: o for o in outputs}
    now = datetime.now(UTC)
    table = pa.Table.from_pylist([_row(c, by_id.get(c.id), now) for c in cases], schema=LOG_SCHEMA)
    return cheap_signals(table, None)


def _value(column: pa.ChunkedArray, i: int) -> Any:
    return column[i].as_py()


class SignalScorer:
    """See the module docstring."""

    spec: dict[str, Any]

    def metrics(self) -> list[MetricInfo]:
        out = []
        for name in SIGNAL_METRICS:
            s = signal_spec(name)
            out.append(info(name, s.better == "higher", f"{s.description} (the monitor's signal)"))
        return out

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        by_id = {o.case_id: o for o in outputs}
        table = output_signals(cases, outputs)
        cols = {name: table[name] for name in SIGNAL_METRICS}
        scores: list[Score] = []
        for i, c in enumerate(cases):
            out = by_id.get(c.id)
            for name in ("top1_score", "topk_mean_score"):
                v = _value(cols[name], i)
                if v is None:
                    why = ("no output for this case" if out is None else
                           f"retrieval failed: {out.error.message}" if out.error is not None
                           and out.error.stage == "retrieve" else
                           "the ranking's scores stand for ranks (no retriever scores)" if out.ranking
                           and not out.ranking_scored else "no documents retrieved")
                    scores.append(Score(case_id=c.id, metric=name, value=None, explanation=why))
                else:
                    scores.append(Score(case_id=c.id, metric=name, value=float(v)))
            empty, abstained = _value(cols["answer_empty"], i), _value(cols["abstained"], i)
            if out is None or out.answer is None:
                err = generation_error(out) or "no answer"
                scores += [Score(case_id=c.id, metric="answer_empty", value=1.0, explanation=err),
                           Score(case_id=c.id, metric="abstained", value=None, explanation=err)]
                continue
            scores += [
                Score(case_id=c.id, metric="answer_empty", value=float(bool(empty)),
                      explanation="the answer is blank" if empty else None),
                Score(case_id=c.id, metric="abstained", value=float(bool(abstained)),
                      explanation="the answer declines to answer" if abstained else None),
            ]
        return scores


@SCORERS.register("signals")
def signals() -> SignalScorer:
    return SignalScorer()
