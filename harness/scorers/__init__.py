"""Scorers: per-case scores first, aggregates second (DESIGN principle 2).

A scorer turns (case, output) pairs into :class:`~harness.types.Score` values, one per case and
metric, and declares the metrics it produces with their direction. Scorers register in
:data:`SCORERS` and are rebuilt from ``{"name", "args"}`` specs stored in runs. What they may need
beyond the case and its output (document texts, contracts, an embedder, a judge) comes in one
:class:`ScoringContext`, so no scorer reaches for files or models on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from harness.metrics import MetricInfo
from harness.registry import Registry
from harness.types import CaseOutput, CorpusDoc, GoldenCase, MetricRole, Score


@dataclass
class ScoringContext:
    docs: Mapping[str, CorpusDoc] = field(default_factory=dict)  # a run's passage store (harness.corpus)
    contracts: Any = None  # harness.contracts.ContractSet | None
    embed: Callable[[list[str]], np.ndarray] | None = None
    cache: Any = None  # harness.cache.Cache | None
    progress: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def passages(self, output: CaseOutput, n: int) -> list[CorpusDoc]:
        """The passages the generator was shown (recorded per case), else those supplied outputs gave as
        texts, else the top ``n`` retrieved."""
        if output.generation is None and output.contexts:
            return list(output.contexts)
        shown = output.generation
        ids = list(shown.passages_shown) if shown is not None else [d.doc_id for d in output.ranking[:n]]
        return [self.docs[i] for i in ids if i in self.docs]


class Scorer(Protocol):
    spec: dict[str, Any]

    def metrics(self) -> list[MetricInfo]: ...

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        ...


SCORERS: Registry[Scorer] = Registry("scorer", builtins_module="harness.scorers.builtin")
_WORDLESS = re.compile(r"[\W_]*")  # no letter or digit in any script


def generation_error(out: CaseOutput | None) -> str | None:
    """Why a case has no answer to score (no output, a generation error, no text, an empty or
    whitespace-only text), or None. A scorer scores such a case 0 (1 on failure rates) or leaves it
    unscored with this reason; an answer that says nothing is never a vacuous pass."""
    if out is None:
        return "no output for this case"
    if out.error is not None:
        what = {"retrieve": "retrieval failed", "generate": "generation failed", "outputs": "no output"}
        return f"{what[out.error.stage]}: {out.error.message}"
    if out.answer is None:
        return "generation failed: no answer"
    if not out.answer.strip():
        return "empty_response: the answer is empty (nothing to score)"
    if _WORDLESS.fullmatch(out.answer):
        return "the answer has no words (only punctuation or symbols): nothing to score"
    return None


def empty_content(text: str) -> str | None:
    """Why the text scorers read (e.g. a JSON contract's answer field) has no content, or None."""
    if not text.strip():
        return "the answer has no content (its answer text is empty)"
    if _WORDLESS.fullmatch(text):
        return "the answer has no words (only punctuation or symbols): nothing to score"
    return None


def info(name: str, greater_is_better: bool, description: str, *, role: MetricRole = "quality",
         label: str | None = None) -> MetricInfo:
    """MetricInfo for an answer-level metric (no cutoff); ``role`` and ``label`` as in :class:`MetricInfo`."""
    return MetricInfo(name=name, base=name, cutoff=None, greater_is_better=greater_is_better, description=description,
                      role=role, label=label)


__all__ = ["SCORERS", "Scorer", "ScoringContext", "empty_content", "generation_error", "info"]
