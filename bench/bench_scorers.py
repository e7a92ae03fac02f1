"""Deterministic answer scorers (correctness, facts, format, instructions) on 1,000 answers.

Target: well under a second for all four together. The answers are the bundled example's extractive
answers, repeated to 1,000 cases with fresh ids; the reference point printed beside it is one pass of
SQuAD normalization over the same answers (the floor any answer scorer pays).
"""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_scorers(n: int = 1000) -> dict[str, float]:
    from harness.contracts import load_contracts
    from harness.generate import GenerationRequest
    from harness.generate.extractive import ExtractiveGenerator
    from harness.golden import load_corpus, load_golden
    from harness.scorers import SCORERS, ScoringContext
    from harness.scorers.text import normalize_answer
    from harness.types import CaseOutput, RankedDoc

    corpus = load_corpus(ROOT / "golden" / "corpus.jsonl")
    docs = {d.id: d for d in corpus}
    golden = load_golden(ROOT / "golden" / "cases.jsonl", frozenset(docs))
    contracts = load_contracts(ROOT / "validators")
    gen = ExtractiveGenerator()
    cases, outputs = [], []
    for i in range(n):
        c = golden[i % len(golden)]
        rel = sorted(c.relevance, key=lambda d: -c.relevance[d])[:3]
        passages = tuple({"id": d, "title": docs[d].title, "text": docs[d].text} for d in rel)
        contract = contracts.get(c.contract)
        req = GenerationRequest(case_id=c.id, query=c.query, messages=(), passages=passages,
                                contract=None if contract is None else contract.model_dump(mode="json", by_alias=True),
                                instructions=tuple({"id": x.id, "kwargs": x.kwargs} for x in c.instructions))
        cid = f"{c.id}-{i}"
        cases.append(c.model_copy(update={"id": cid}))
        outputs.append(CaseOutput(case_id=cid, answer=gen.generate(req),
                                  ranking=tuple(RankedDoc(doc_id=d, score=1.0) for d in rel)))
    ctx = ScoringContext(docs=docs, contracts=contracts)
    scorers = [SCORERS.build(name, {}) for name in ("correctness", "facts", "format", "instructions")]
    for s in scorers:  # warm imports and compiled patterns, as a real run has by the time it scores
        s.score(cases[:5], outputs[:5], ctx)
    per: dict[str, float] = {}
    n_scores = 0
    for name, s in zip(("correctness", "facts", "format", "instructions"), scorers, strict=True):
        t0 = time.perf_counter()
        n_scores += len(s.score(cases, outputs, ctx))
        per[f"{name}_s"] = time.perf_counter() - t0
    elapsed = sum(per.values())
    t0 = time.perf_counter()
    for o in outputs:
        normalize_answer(o.answer or "")
    floor = time.perf_counter() - t0
    return {"answers": float(n), "scores": float(n_scores), "seconds": elapsed, **per, "normalize_pass_s": floor,
            "ratio_to_normalize_pass": elapsed / floor if floor else float("inf")}
