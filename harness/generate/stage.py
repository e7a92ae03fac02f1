"""Generation stage: (case, ranking) -> rendered messages -> answer, through the one cache.

The generator artifact's params name a registered generator and its arguments; the engine knobs
(``concurrency``, ``timeout_s``, ``max_retries``, ``n_passages``) are split off because they do
not change outputs. The cache key is the generator's identity plus the rendered request (see
:mod:`harness.generate.engine`), so a prompt-only change re-runs generation and scoring but never
embedding or retrieval, and an unchanged manifest makes no calls.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from harness.cache import Cache
from harness.contracts import ContractSet
from harness.errors import ManifestError
from harness.progress import NULL_PROGRESS, Progress
from harness.prompts import PromptTemplate
from harness.types import CaseError, CorpusDoc, Frozen, GoldenCase, RankedDoc

ENGINE_KEYS = ("concurrency", "timeout_s", "max_retries", "n_passages", "name")


class EngineConfig(Frozen):
    name: str
    concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    n_passages: int = Field(default=5, ge=0)


@dataclass
class GenerationOutcome:
    answers: dict[str, str | None]
    errors: dict[str, CaseError]
    messages: dict[str, list[dict[str, str]]]
    passages_shown: dict[str, list[str]]
    latency_s: dict[str, float]
    cache_hit: dict[str, bool]
    attempts: dict[str, int]
    stats: dict[str, float]
    finish_reason: dict[str, str | None] = field(default_factory=dict)  # case id -> what the endpoint said


@dataclass(frozen=True)
class GenerationInputs:
    """What the generation stage needs, resolved once by :func:`harness.pipeline.stage_inputs`: the loaded
    prompt template, the engine knobs (with the generator's registered name), the generator's own
    arguments and the output contracts (None: the project has no validators)."""

    template: PromptTemplate
    engine: EngineConfig
    args: dict[str, Any]
    contracts: ContractSet | None


class GenerationStage:
    def __init__(self, inputs: GenerationInputs, cache: Cache, progress: Progress = NULL_PROGRESS) -> None:
        from harness.generate import GENERATORS

        self.engine = inputs.engine
        self.generator: Any = GENERATORS.build(self.engine.name, inputs.args)
        self.template = inputs.template
        self.contracts = inputs.contracts
        self.cache = cache
        self.progress = progress

    def requests(self, cases: Sequence[GoldenCase], rankings: dict[str, list[RankedDoc]],
                 docs: Mapping[str, CorpusDoc]) -> list[Any]:
        from harness.generate import GenerationRequest

        reqs = []
        for c in cases:
            passages = []
            for rank, d in enumerate(rankings[c.id][: self.engine.n_passages], 1):
                doc = docs.get(d.doc_id)
                if doc is not None:
                    passages.append({"id": doc.id, "title": doc.title, "text": doc.text, "score": d.score,
                                     "rank": rank})
            contract = self.contracts.get(c.contract) if self.contracts is not None else None
            if c.contract is not None and contract is None:
                raise ManifestError(f"golden case {c.id!r} names contract {c.contract!r}, "
                                    "which the validators artifact does not define")
            messages = self.template.render(c, passages, contract)
            reqs.append(GenerationRequest(
                case_id=c.id,
                query=c.query,
                messages=tuple(messages),
                passages=tuple(passages),
                contract=None if contract is None else contract.model_dump(mode="json", by_alias=True),
                instructions=tuple({"id": i.id, "kwargs": i.kwargs} for i in c.instructions),
            ))
        return reqs

    def run(self, cases: Sequence[GoldenCase], rankings: dict[str, list[RankedDoc]],
            docs: Mapping[str, CorpusDoc]) -> GenerationOutcome:
        from harness.generate import generate_all

        reqs = self.requests(cases, rankings, docs)
        t0 = time.perf_counter()
        results = generate_all(self.generator, reqs, self.cache, concurrency=self.engine.concurrency,
                               progress=self.progress, timeout_s=self.engine.timeout_s,
                               max_retries=self.engine.max_retries)
        elapsed = time.perf_counter() - t0
        return GenerationOutcome(
            answers={r.case_id: r.text for r in results},
            errors={r.case_id: CaseError(stage="generate", kind=r.error_kind or "generate", message=r.error)
                    for r in results if r.error},
            messages={q.case_id: [dict(m) for m in q.messages] for q in reqs},
            passages_shown={q.case_id: [str(p["id"]) for p in q.passages] for q in reqs},
            latency_s={r.case_id: r.latency_s for r in results},
            cache_hit={r.case_id: r.cache_hit for r in results},
            attempts={r.case_id: r.attempts for r in results},
            stats={"generated": float(sum(1 for r in results if not r.cache_hit)), "seconds": elapsed,
                   "errors": float(sum(1 for r in results if r.error)),
                   "truncated": float(sum(1 for r in results if r.ok and r.truncated))},
            finish_reason={r.case_id: r.finish_reason for r in results if r.ok},
        )
