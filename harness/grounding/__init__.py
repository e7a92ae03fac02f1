"""Groundedness: is each claim of an answer supported by the retrieved passages?

Offline and deterministic: lexical, number/name/quote and MiniLM-embedding evidence combined by a
logistic regression frozen from dev data (see docs/grounding.md for the method and its numbers).

    checker = GroundednessChecker(embed=embed_fn)
    result = checker.check(answer, passages)   # result.score, result.claims[i].support / reasons
    scores = checker.score_pairs(responses, contexts)
"""

from __future__ import annotations

from harness.grounding.claims import split_claims, split_sentences
from harness.grounding.evidence import FEATURE_NAMES
from harness.grounding.scorer import (
    DEFAULT_THRESHOLD,
    INTERCEPT,
    WEIGHTS,
    ClaimSupport,
    EmbedFn,
    GroundednessChecker,
    GroundednessResult,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "FEATURE_NAMES",
    "INTERCEPT",
    "WEIGHTS",
    "ClaimSupport",
    "EmbedFn",
    "GroundednessChecker",
    "GroundednessResult",
    "split_claims",
    "split_sentences",
]
