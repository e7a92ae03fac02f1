"""Groundedness: is each claim of an answer supported by the retrieved passages?

Offline and deterministic: lexical, number/name/quote and MiniLM-embedding evidence combined by a
logistic regression frozen from dev data (a :class:`GroundingModel`; see docs/grounding.md for the
method and its numbers).

    checker = GroundednessChecker(embed=embed_fn)
    result = checker.check(answer, passages)   # result.score, result.claims[i].support / reasons
    scores = checker.score_pairs(responses, contexts)

Modules: ``claims`` (splitting), ``evidence`` (features), ``lm`` (the optional LM feature),
``scorer`` (the checker and the frozen :class:`GroundingModel`). Measuring and refitting it:
``sets`` (the labelled faithfulness sets), ``baselines``, ``measures`` (AUROC, balanced accuracy),
``embedder`` (the bench's cached MiniLM), ``judge`` (the LLM judge on the same pairs), ``synth``
(FactCC-style synthetic minimal-edit pairs from unlabelled passages) and ``fit``
(``python -m harness.grounding.fit``, ``--synthetic`` for the issue-16 decision);
``bench/bench_grounding.py`` only assembles the report.
"""

from __future__ import annotations

from harness.grounding.claims import split_claims, split_sentences
from harness.grounding.evidence import FEATURE_NAMES
from harness.grounding.scorer import (
    DEFAULT_MODEL,
    LM_MODEL,
    ClaimSupport,
    EmbedFn,
    GroundednessChecker,
    GroundednessResult,
    GroundingModel,
)

__all__ = [
    "DEFAULT_MODEL",
    "FEATURE_NAMES",
    "LM_MODEL",
    "ClaimSupport",
    "EmbedFn",
    "GroundednessChecker",
    "GroundednessResult",
    "GroundingModel",
    "split_claims",
    "split_sentences",
]
