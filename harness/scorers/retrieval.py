"""Retrieval scorer: trec_eval-exact ranking metrics per case (see :mod:`harness.metrics`).

A case with no relevant document is unscored (``None``) with a reason; a case whose retrieval returned
nothing scores 0 and stays in the denominator (DESIGN principle 4). A case whose retrieval failed (a
:class:`~harness.types.CaseError` of stage ``retrieve``) is unscored with the error as the reason: there
is no ranking to judge, and the error itself fails the run (exit 1) and the gate's implicit error rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.metrics import MetricInfo, compute_metrics, metric_info
from harness.scorers import SCORERS, ScoringContext
from harness.types import CaseOutput, GoldenCase, Score


class RetrievalScorer:
    spec: dict[str, object]

    def __init__(self, metrics: Sequence[str], relevance_level: int = 1) -> None:
        self._names = list(metrics)
        self._infos = [metric_info(m) for m in self._names]
        self.relevance_level = relevance_level

    def metrics(self) -> list[MetricInfo]:
        return self._infos

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        by_id = {o.case_id: o for o in outputs}
        qrels = {c.id: c.relevance for c in cases if c.relevance}
        run = {c.id: [(d.doc_id, d.score) for d in by_id[c.id].ranking] for c in cases if c.id in by_id}
        values = compute_metrics(qrels, run, self._names, relevance_level=self.relevance_level)
        scores: list[Score] = []
        for c in cases:
            out = by_id.get(c.id)
            if out is not None and out.error is not None and out.error.stage in ("retrieve", "outputs"):
                why = f"{'retrieval failed' if out.error.stage == 'retrieve' else 'no output'}: {out.error.message}"
                scores += [Score(case_id=c.id, metric=name, value=None, explanation=why) for name in self._names]
                continue
            for name in self._names:
                v = values[name].get(c.id)
                if v is None:
                    why = "no relevance judgments" if not c.relevance else "no relevant document at this level"
                    scores.append(Score(case_id=c.id, metric=name, value=None, explanation=why))
                else:
                    missing = "retrieval failed: no output for this case" if out is None else None
                    scores.append(Score(case_id=c.id, metric=name, value=float(v), explanation=missing))
        return scores


@SCORERS.register("retrieval")
def retrieval(metrics: Sequence[str], relevance_level: int = 1) -> RetrievalScorer:
    return RetrievalScorer(metrics, relevance_level)
