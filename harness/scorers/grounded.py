"""Groundedness scorer: is each claim of the answer supported by the retrieved passages?

Offline and deterministic (:mod:`harness.grounding`): lexical, number/name/quote and embedding
evidence combined by a frozen logistic model. The embedder is the run's own (the manifest's model,
through the same per-text cache), so passage sentences already seen cost nothing and only new answer
text is embedded. Per case: ``groundedness`` (the answer's support score), ``grounded`` (1 if it
clears the threshold) and ``unsupported_claims``; the claims and their verdicts are stored in
``Score.details``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.contracts import ParsedAnswer
from harness.metrics import MetricInfo
from harness.scorers import SCORERS, ScoringContext, generation_error, info
from harness.types import CaseOutput, GoldenCase, Score


class GroundednessScorer:
    spec: dict[str, Any]

    def __init__(self, n_passages: int = 5, threshold: float | None = None) -> None:
        self.n_passages = n_passages
        self.threshold = threshold

    def metrics(self) -> list[MetricInfo]:
        return [
            info("groundedness", True, "support of the answer's claims by the retrieved passages (0..1)"),
            info("grounded", True, "1 if the answer's groundedness clears the threshold"),
            info("unsupported_claims", False, "number of answer claims below the support threshold"),
        ]

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        from harness.grounding import DEFAULT_THRESHOLD, GroundednessChecker

        if ctx.embed is None:
            return [Score(case_id=c.id, metric=m.name, value=None, explanation="no embedder in this run")
                    for c in cases for m in self.metrics()]
        threshold = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        checker = GroundednessChecker(embed=ctx.embed, threshold=threshold)
        by_id = {o.case_id: o for o in outputs}
        scores: list[Score] = []
        todo: list[tuple[str, str, list[str]]] = []
        for c in cases:
            out = by_id.get(c.id)
            err = generation_error(out)
            if err is not None or out is None or out.answer is None:
                scores += [Score(case_id=c.id, metric="groundedness", value=0.0, explanation=err),
                           Score(case_id=c.id, metric="grounded", value=0.0, explanation=err),
                           Score(case_id=c.id, metric="unsupported_claims", value=None, explanation=err)]
                continue
            passages = [f"{d.title}. {d.text}" if d.title else d.text for d in ctx.passages(out, self.n_passages)]
            if not passages:
                scores += [Score(case_id=c.id, metric=m.name, value=None, explanation="no retrieved passages")
                           for m in self.metrics()]
                continue
            contract = ctx.contracts.get(c.contract) if ctx.contracts is not None else None
            todo.append((c.id, ParsedAnswer(out.answer, contract).answer_text(), passages))
        results = checker.check_many([t[1] for t in todo], [t[2] for t in todo]) if todo else []
        for (cid, _, _), res in zip(todo, results, strict=True):
            unsupported = [cl for cl in res.claims if not cl.supported]
            why = ("all claims supported" if not unsupported else
                   "unsupported: " + " | ".join(f"{cl.text} ({'; '.join(cl.reasons) or 'weak evidence'})"
                                                for cl in unsupported))
            details = {"claims": [{"claim": cl.text, "support": round(cl.support, 6), "supported": cl.supported,
                                   "evidence": cl.evidence, "reasons": list(cl.reasons)} for cl in res.claims]}
            scores += [Score(case_id=cid, metric="groundedness", value=res.score, explanation=why, details=details),
                       Score(case_id=cid, metric="grounded", value=float(res.supported)),
                       Score(case_id=cid, metric="unsupported_claims", value=float(len(unsupported)))]
        return scores


@SCORERS.register("groundedness")
def groundedness(n_passages: int = 5, threshold: float | None = None) -> GroundednessScorer:
    return GroundednessScorer(n_passages=n_passages, threshold=threshold)
