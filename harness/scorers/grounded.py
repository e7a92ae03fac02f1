"""Groundedness scorer: is each claim of the answer supported by the retrieved passages?

Offline and deterministic (:mod:`harness.grounding`): lexical, number/name/quote and embedding
evidence combined by a frozen logistic model. The embedder is the run's own (the manifest's model,
through the same per-text cache), so passage sentences already seen cost nothing and only new answer
text is embedded. Per case: ``groundedness`` (the answer's support score), ``grounded`` (1 if it
clears the threshold) and ``unsupported_claims``; the claims and their verdicts are stored in
``Score.details``. An answer that asserts nothing checkable (empty, whitespace, an empty JSON
answer field, only citation marks) scores 0 and is not grounded, with ``unsupported_claims``
unscored: saying nothing is never a grounded answer.

``lm = "gemma-3-270m"`` (or a local transformers model folder, absolute or relative to the working
directory) adds the language-model feature
(:mod:`harness.grounding.lm`: how much more likely each claim is once the passages are read) with
the weights fit for it; its values are cached in the run cache by (model, passages, claim). Needs
the ``lm`` extra for the bundled model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.contracts import ParsedAnswer
from harness.errors import HarnessError
from harness.metrics import MetricInfo
from harness.scorers import SCORERS, ScoringContext, empty_content, generation_error, info
from harness.types import CaseOutput, GoldenCase, Score


class GroundednessScorer:
    spec: dict[str, Any]

    def __init__(self, n_passages: int = 5, threshold: float | None = None, lm: str | None = None) -> None:
        self.n_passages = n_passages
        self.threshold = threshold
        self.lm = lm
        self._likelihood: Any = None
        if lm is not None:
            from harness.grounding.lm import lm_spec_folder

            try:
                lm_spec_folder(lm)
            except ValueError as exc:
                raise HarnessError(
                    f"scorer 'groundedness': {exc}",
                    hint="use lm = \"gemma-3-270m\" (pip install 'rag-harness[lm]') or the path of a local "
                    "transformers causal LM",
                ) from None

    def metrics(self) -> list[MetricInfo]:
        return [
            info("groundedness", True, "support of the answer's claims by the retrieved passages (0..1)"),
            info("grounded", True, "1 if the answer's groundedness clears the threshold"),
            info("unsupported_claims", False, "number of answer claims below the support threshold"),
        ]

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        from harness.grounding import GroundednessChecker

        if ctx.embed is None:
            return [Score(case_id=c.id, metric=m.name, value=None, explanation="no embedder in this run")
                    for c in cases for m in self.metrics()]
        checker = GroundednessChecker(embed=ctx.embed, threshold=self.threshold, lm=self._lm(ctx))
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
            text = ParsedAnswer(out.answer, contract).answer_text()
            empty = empty_content(text)
            if empty is not None:
                scores += self._nothing_to_check(c.id, empty)
                continue
            todo.append((c.id, text, passages))
        results = self._check(checker, todo, ctx)
        for (cid, _, _), res in zip(todo, results, strict=True):
            if not res.claims:
                scores += self._nothing_to_check(cid, "no claims in the answer (nothing it says can be checked)")
                continue
            unsupported = [cl for cl in res.claims if not cl.supported]
            why = ("all claims supported" if not unsupported else
                   "unsupported: " + " | ".join(f"{cl.text} ({'; '.join(cl.reasons) or 'weak evidence'})"
                                                for cl in unsupported))
            details = {"claims": [{"claim": cl.text, "support": round(cl.support, 6), "supported": cl.supported,
                                   "evidence": cl.evidence, "reasons": list(cl.reasons)}
                                  | ({"lm_pmi": round(cl.features["lm_pmi"], 4)} if "lm_pmi" in cl.features else {})
                                  for cl in res.claims]}
            scores += [Score(case_id=cid, metric="groundedness", value=res.score, explanation=why, details=details),
                       Score(case_id=cid, metric="grounded", value=float(res.supported)),
                       Score(case_id=cid, metric="unsupported_claims", value=float(len(unsupported)))]
        return scores

    @staticmethod
    def _nothing_to_check(case_id: str, why: str) -> list[Score]:
        return [Score(case_id=case_id, metric="groundedness", value=0.0, explanation=why),
                Score(case_id=case_id, metric="grounded", value=0.0, explanation=why),
                Score(case_id=case_id, metric="unsupported_claims", value=None, explanation=why)]

    def _check(self, checker: Any, todo: list[tuple[str, str, list[str]]], ctx: ScoringContext) -> list[Any]:
        """Check the answers; with a language model (about a second per claim) in small steps with progress."""
        if not todo:
            return []
        if self.lm is None or ctx.progress is None:
            return list(checker.check_many([t[1] for t in todo], [t[2] for t in todo]))
        results: list[Any] = []
        with ctx.progress.task("groundedness (language model)", len(todo)) as advance:
            for start in range(0, len(todo), 8):
                chunk = todo[start : start + 8]
                results.extend(checker.check_many([t[1] for t in chunk], [t[2] for t in chunk]))
                advance(len(chunk))
        return results

    def _lm(self, ctx: ScoringContext) -> Any:
        """The configured language model behind the run cache (loaded lazily, once per scorer)."""
        if self.lm is None:
            return None
        from harness.grounding.lm import CachedLikelihood, likelihood_from_spec

        if self._likelihood is None:
            self._likelihood = likelihood_from_spec(self.lm)
        store = _CacheStore(ctx.cache) if ctx.cache is not None else None
        return CachedLikelihood(self._likelihood, store)


class _CacheStore:
    """PMI values in the run's SQLite cache (namespace ``lm_pmi``)."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def get_many(self, keys: Sequence[str]) -> dict[str, float]:
        return {k: float(v) for k, v in self.cache.get_many_json("lm_pmi", keys).items()}

    def put_many(self, items: dict[str, float]) -> None:
        self.cache.put_many_json("lm_pmi", items)


@SCORERS.register("groundedness")
def groundedness(n_passages: int = 5, threshold: float | None = None, lm: str | None = None) -> GroundednessScorer:
    return GroundednessScorer(n_passages=n_passages, threshold=threshold, lm=lm)
