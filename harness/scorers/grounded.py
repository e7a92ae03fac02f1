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

Verdicts are cached in the project cache (namespace ``groundedness``) under the checker's identity (the
grounding code's own source, the frozen model, the checker's settings, the embedding model's pin, the
stemmer's and numpy's versions), the answer text checked and its passages in order: a second run over the
same answers (a warm ``harness run``, a replay's candidate that answers as the baseline did) checks nothing
again. A row that fails its checksum or its shape is recomputed. Without an embedding identity in the
scoring context (``extras["embed_identity"]``), or with a language model, nothing is cached.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
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
        results = self._cached_check(checker, todo, ctx)
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

    def _cached_check(self, checker: Any, todo: list[tuple[str, str, list[str]]], ctx: ScoringContext
                      ) -> list[Any]:
        """:meth:`_check` behind the project cache: verdicts found are reused, the others computed and stored."""
        identity = ctx.extras.get("embed_identity")
        if ctx.cache is None or self.lm is not None or not isinstance(identity, str) or not todo:
            return self._check(checker, todo, ctx)
        from harness.hashing import sha256_parts

        who = checker_identity(checker, identity)
        keys = [sha256_parts("groundedness-v1", who, text, *passages) for _, text, passages in todo]
        found = ctx.cache.get_many_json("groundedness", keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        fresh = self._check(checker, [todo[i] for i in missing], ctx)
        results: list[Any] = [None] * len(todo)
        for i, res in zip(missing, fresh, strict=True):
            results[i] = res
        if fresh:
            ctx.cache.put_many_json("groundedness", {keys[i]: _verdict_json(res) for i, res in zip(missing, fresh,
                                                                                                    strict=True)})
        for i, k in enumerate(keys):
            if results[i] is None:
                results[i] = _verdict_from_json(found[k])
        return results

    def _check(self, checker: Any, todo: list[tuple[str, str, list[str]]], ctx: ScoringContext) -> list[Any]:
        """Check the answers; with a language model (about a second per claim) in small steps with progress."""
        if not todo:
            return []
        pause = ctx.extras.get("pause")
        if self.lm is None and callable(pause):
            # in the checker's own batches (the same batches check_many makes), with the caller's pause after
            # each: a replay scores its baseline beside the candidate's calls and leaves their thread the GIL
            out: list[Any] = []
            step = checker.batch_size
            for start in range(0, len(todo), step):
                chunk = todo[start : start + step]
                t0 = time.perf_counter()
                out.extend(checker.check_many([t[1] for t in chunk], [t[2] for t in chunk]))
                pause(time.perf_counter() - t0)
            return out
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


@functools.cache
def _code_hash() -> str:
    """The grounding code's own identity: the source of the modules that split, featurize and judge."""
    import harness.grounding.claims as claims
    import harness.grounding.evidence as evidence
    import harness.grounding.scorer as scorer
    from harness.hashing import sha256_parts

    return sha256_parts(*(Path(str(m.__file__)).read_text("utf-8") for m in (claims, evidence, scorer)),
                        Path(__file__).read_text("utf-8"))


def checker_identity(checker: Any, embed_identity: str) -> str:
    """Everything a verdict depends on besides the answer and the passages (see the module docstring)."""
    from importlib.metadata import version

    import numpy as np

    from harness.grounding.scorer import DEFAULT_MODEL
    from harness.hashing import sha256_json

    return sha256_json({"code": _code_hash(), "model": DEFAULT_MODEL.model_dump(), "w": checker._w.tolist(),
                        "b": checker._b, "threshold": checker.threshold, "aggregate": checker.aggregate,
                        "max_units": checker.max_units, "top_sentences": checker.top_sentences,
                        "batch_size": checker.batch_size, "window_mode": checker.window_mode,
                        "features": list(checker.feature_names), "embed": embed_identity,
                        "nltk": version("nltk"), "numpy": np.__version__})


def _verdict_json(res: Any) -> dict[str, Any]:
    return {"score": res.score, "supported": bool(res.supported),
            "claims": [[c.text, c.support, bool(c.supported), c.evidence, list(c.reasons)] for c in res.claims]}


def _verdict_from_json(value: dict[str, Any]) -> Any:
    from harness.grounding.scorer import ClaimSupport, GroundednessResult

    claims = [ClaimSupport(text, float(support), supported, evidence, list(reasons))
              for text, support, supported, evidence, reasons in value["claims"]]
    return GroundednessResult(score=float(value["score"]), supported=value["supported"], claims=claims)


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
