"""An optional LLM judge for claim support, through the generator interface and its cache.

Opt-in (DESIGN principle 11): add ``{name = "llm_judge", args = {generator = {name = "openai",
model = "...", temperature = 0}}}`` to the manifest's ``scorers``. Each answer is split into
sentences (claims); the judge sees the retrieved passages and the numbered claims and must reply
with JSON verdicts. Calls go through :func:`harness.generate.generate_all`, so they are cached under
the judge's identity and the exact messages, retried, and counted: a re-run or a diff never re-judges.
Verdicts are stored in the run (``Score.details``). A judge call that fails, or a reply that does not
parse, leaves the case unscored with the reason; it is never read as a pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from harness.contracts import ParsedAnswer, strip_code_fence
from harness.generate.base import GenerationResult
from harness.metrics import MetricInfo
from harness.redact import redact
from harness.scorers import SCORERS, ScoringContext, generation_error, info
from harness.types import CaseOutput, GoldenCase, Score

SYSTEM = (
    "You verify answers against sources. For each numbered claim, decide whether the passages state or "
    "directly imply it. Reply with only JSON: {\"verdicts\": [{\"claim\": <number>, \"supported\": true|false, "
    "\"reason\": \"<short reason>\"}]} with one verdict per claim."
)
PROMPT_VERSION = 1


def judge_claims(text: str) -> list[str]:
    """The claims a judge rules on: the answer's sentences of 3+ words, citation markers removed."""
    from harness.instructions.text import split_sentences

    out = []
    for s in split_sentences(text):
        s = re.sub(r"\s*\[[\w.:/-]+\]", "", s).strip()
        if len(s.split()) >= 3:
            out.append(s)
    return out


def judge_messages(passages: Sequence[str], claims: Sequence[str]) -> tuple[dict[str, str], ...]:
    """The judge's chat messages: the system rules, then the passages (each already labelled, e.g.
    ``"[doc-1] Title\ntext"``) and the numbered claims."""
    user = "Passages:\n" + "\n".join(passages)
    user += "\n\nClaims:\n" + "\n".join(f"{i}. {cl}" for i, cl in enumerate(claims, 1))
    return {"role": "system", "content": SYSTEM}, {"role": "user", "content": user}


def read_verdicts(result: GenerationResult, n_claims: int) -> tuple[list[dict[str, Any]] | None, str]:
    """A judge call's verdicts, or None and why not: a failed call or an unparseable reply is never a pass."""
    if result.error or result.text is None:
        return None, redact(f"judge call failed: {result.error}")
    try:
        return parse_verdicts(result.text, n_claims), ""
    except ValueError as exc:  # json.JSONDecodeError included
        return None, f"judge reply unparseable: {exc}"


def parse_verdicts(text: str, n_claims: int) -> list[dict[str, Any]]:
    """Verdicts in claim order; raises ValueError when the reply is not the JSON asked for."""
    data = json.loads(strip_code_fence(text))
    verdicts = data.get("verdicts") if isinstance(data, dict) else None
    if not isinstance(verdicts, list):
        raise ValueError("no 'verdicts' list")
    by_claim: dict[int, dict[str, Any]] = {}
    for v in verdicts:
        if not isinstance(v, dict) or not isinstance(v.get("supported"), bool):
            raise ValueError("a verdict lacks a boolean 'supported'")
        claim = v.get("claim", len(by_claim) + 1)
        if not isinstance(claim, int | str) or not str(claim).strip().isdigit():
            raise ValueError(f"verdict has a bad claim number {claim!r}")
        by_claim[int(claim)] = v
    missing = [i for i in range(1, n_claims + 1) if i not in by_claim]
    if missing:
        raise ValueError(f"no verdict for claim(s) {missing}")
    return [by_claim[i] for i in range(1, n_claims + 1)]


def judge_generator(spec: dict[str, Any]) -> Any:
    """The judge's generator from its spec, e.g. ``{"name": "openai", "model": "...", "temperature": 0}``."""
    from harness.generate import GENERATORS

    args = dict(spec)
    name = args.pop("name", None)
    if not name:
        from harness.errors import HarnessError

        raise HarnessError("llm_judge: args.generator needs a 'name' (e.g. 'openai')")
    return GENERATORS.build(name, args)


class JudgeScorer:
    spec: dict[str, Any]

    def __init__(self, generator: dict[str, Any], n_passages: int = 5, concurrency: int = 8,
                 max_retries: int = 3, timeout_s: float = 60.0) -> None:
        self.generator: Any = judge_generator(generator)
        self.n_passages = n_passages
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s

    def metrics(self) -> list[MetricInfo]:
        return [
            info("judge_support", True, "fraction of answer claims the LLM judge finds supported by the passages"),
            info("judge_unsupported_claims", False, "number of answer claims the LLM judge finds unsupported"),
        ]

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        from harness.generate import GenerationRequest, generate_all

        by_id = {o.case_id: o for o in outputs}
        scores: list[Score] = []
        requests = []
        claims_by_case: dict[str, list[str]] = {}
        for c in cases:
            out = by_id.get(c.id)
            err = generation_error(out)
            if err is not None or out is None or out.answer is None:
                scores += [Score(case_id=c.id, metric="judge_support", value=0.0, explanation=err),
                           Score(case_id=c.id, metric="judge_unsupported_claims", value=None, explanation=err)]
                continue
            contract = ctx.contracts.get(c.contract) if ctx.contracts is not None else None
            claims = judge_claims(ParsedAnswer(out.answer, contract).answer_text())
            if not claims:
                scores += [Score(case_id=c.id, metric=m.name, value=None, explanation="no claims in the answer")
                           for m in self.metrics()]
                continue
            claims_by_case[c.id] = claims
            passages = [f"[{d.id}] {d.title}\n{d.text}" for d in ctx.passages(out, self.n_passages)]
            requests.append(GenerationRequest(case_id=c.id, query=c.query, messages=judge_messages(passages, claims)))
        results = generate_all(self.generator, requests, ctx.cache, concurrency=self.concurrency,
                               timeout_s=self.timeout_s, max_retries=self.max_retries) if requests else []
        for r in results:
            claims = claims_by_case[r.case_id]
            verdicts, why = read_verdicts(r, len(claims))
            if verdicts is None:
                raw = {"raw": redact(r.text[:2000])} if r.text is not None else None
                scores += [Score(case_id=r.case_id, metric=m.name, value=None, explanation=why, details=raw)
                           for m in self.metrics()]
                continue
            supported = [bool(v["supported"]) for v in verdicts]
            details = {"claims": [{"claim": cl, "supported": v["supported"], "reason": str(v.get("reason", ""))}
                                  for cl, v in zip(claims, verdicts, strict=True)],
                       "cached": r.cache_hit}
            unsupported = [cl for cl, ok in zip(claims, supported, strict=True) if not ok]
            why = "all claims supported" if not unsupported else "unsupported: " + " | ".join(unsupported)
            scores += [Score(case_id=r.case_id, metric="judge_support", value=sum(supported) / len(supported),
                             explanation=why, details=details),
                       Score(case_id=r.case_id, metric="judge_unsupported_claims", value=float(len(unsupported)))]
        return scores


@SCORERS.register("llm_judge")
def llm_judge(generator: dict[str, Any], n_passages: int = 5, concurrency: int = 8, max_retries: int = 3,
              timeout_s: float = 60.0) -> JudgeScorer:
    return JudgeScorer(generator, n_passages, concurrency, max_retries, timeout_s)
