"""Combine evidence features into a support probability per claim and a groundedness score per answer.

Support of a claim is ``sigmoid(b + w . x)`` over the features of
:data:`harness.grounding.evidence.FEATURE_NAMES`. The weights are a sign-constrained logistic
regression fit on the two dev splits only (AttributionBench ``dev_id`` and WiCE ``claim_dev``),
then frozen here as a :class:`GroundingModel` (weights, intercept, threshold);
:func:`harness.grounding.fit.fit_weights` refits it and prints the values to paste.

An answer's score aggregates its claims' log-odds, weighted by each claim's number of content
words (``aggregate="weighted"``, the default): every content word of the answer counts once, so a
three-word fragment ("Yes, it was.") neither sinks nor carries a long answer. This aggregate was
chosen over ``"min"`` (strictest: the weakest claim decides) and ``"mean"`` (plain mean support)
on multi-sentence sets that the bench does not report (QAGS CNN/DM whole summaries, FaithBench);
all three are available.

Embedding calls are batched: for a batch of answers, one call embeds every claim and every
candidate context sentence (each unique text once). The 2-3 sentence windows around each claim's
best sentences are, by default, the word-count-weighted mean of their sentence vectors (MiniLM
mean-pools tokens, so this approximates the window's own embedding at no model cost; a second call
embeds any neighbour sentence not yet embedded). ``window_mode="embed"`` embeds real windows in a
second call instead. Contexts longer than ``max_units`` sentences are pre-filtered
to the sentences with the highest IDF-weighted word overlap with some claim, which bounds the cost
on 100k-character web pages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field, FiniteFloat

from harness.grounding.claims import split_claims
from harness.grounding.evidence import (
    FEATURE_NAMES,
    ClaimText,
    Context,
    analyze_claim,
    build_context,
    lexical_features,
    lexical_rank,
    local_features,
)
from harness.grounding.lm import LM_FEATURE_NAMES, ClaimLikelihood
from harness.types import Frozen

__all__ = [
    "AGGREGATES",
    "DEFAULT_MODEL",
    "LM_MODEL",
    "MAX_UNITS",
    "ClaimSupport",
    "EmbedFn",
    "GroundednessChecker",
    "GroundednessResult",
    "GroundingModel",
    "aggregate_supports",
    "claim_weight",
]

EmbedFn = Callable[[list[str]], np.ndarray]

MAX_UNITS = 32
"""Candidate context sentences embedded per answer (the checker's default and the max-cosine baseline's)."""


class GroundingModel(Frozen):
    """A frozen logistic model: claim support = ``sigmoid(intercept + sum(weights[f] * x[f]))``.

    ``threshold`` is where a support (or an answer score) counts as ``supported``. A feature the
    weights do not name weighs 0.
    """

    weights: dict[str, FiniteFloat]
    intercept: FiniteFloat
    threshold: float = Field(ge=0.0, le=1.0)


# Fit on AttributionBench dev_id + WiCE claim_dev only (sign-constrained, L2 0.1 chosen by
# leave-one-source-out; docs/grounding.md); the threshold maximises balanced accuracy of answer
# scores on the dev splits. Refit: `python -m harness.grounding.fit` (from the project root).
DEFAULT_MODEL = GroundingModel(
    weights={
        "recall_context": 0.1271,
        "recall_local": 1.1686,
        "bigram_recall": 0.8495,
        "novel_log": -0.0902,
        "number_missing": -1.2674,
        "entity_missing": -0.0328,
        "quote_missing": -0.4156,
        "negation_mismatch": 0.0,
        "length_log": 0.0228,
        "cos_sentence": 1.1368,
        "cos_window": 1.4811,
    },
    intercept=-2.7417,
    threshold=0.5002,
)

# The same model with the language-model feature (``lm_pmi``, :mod:`harness.grounding.lm`, Gemma 3
# 270M), used when the checker is given an ``lm``; fit the same way on the same dev splits
# (sign-constrained, L2 0.3 chosen by leave-one-source-out). Refit: `python -m harness.grounding.fit --lm`.
LM_MODEL = GroundingModel(
    weights={
        "recall_context": 0.2676,
        "recall_local": 0.6986,
        "bigram_recall": 0.522,
        "novel_log": -0.0873,
        "number_missing": -0.7074,
        "entity_missing": -0.0546,
        "quote_missing": -0.2685,
        "negation_mismatch": 0.0,
        "length_log": 0.0337,
        "cos_sentence": 0.8558,
        "cos_window": 0.9955,
        "lm_pmi": 0.1966,
    },
    intercept=-2.2638,
    threshold=0.4674,
)


@dataclass(frozen=True)
class ClaimSupport:
    """One claim's verdict: support probability, the best passage snippet, and why it may fail."""

    text: str
    support: float
    supported: bool
    evidence: str
    reasons: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GroundednessResult:
    """An answer's groundedness: the aggregate score over its claims and the per-claim verdicts.

    An answer with no claims (empty text, only citation marks) scores 0.0 and is not supported:
    it asserts nothing that the passages could support, and an empty answer must never pass.
    """

    score: float
    supported: bool
    claims: list[ClaimSupport]


@dataclass
class _Prepared:
    claims: list[ClaimText]
    ctx: Context
    candidates: list[int]


AGGREGATES = ("weighted", "min", "mean")


def lm_context(ctx: Context, candidates: Sequence[int]) -> str:
    """The text the language model reads: candidate sentences in order, passages split by a blank line."""
    parts: list[str] = []
    prev = -1
    for i in candidates:
        if parts:
            parts.append("\n\n" if ctx.passage_of[i] != ctx.passage_of[prev] else " ")
        parts.append(ctx.sentences[i])
        prev = i
    return "".join(parts)


def claim_weight(features: dict[str, float]) -> float:
    """A claim's weight in the answer score: its number of content words (at least 1)."""
    return max(1.0, math.expm1(features["length_log"]))


def aggregate_supports(supports: Sequence[float], weights: Sequence[float], how: str = "weighted") -> float:
    """Answer score from claim supports: content-word-weighted mean log-odds, min, or mean (0.0 for
    no claims: nothing is supported)."""
    if not supports:
        return 0.0
    if how == "min":
        return float(min(supports))
    if how == "mean":
        return float(np.mean(supports))
    p = np.clip(np.asarray(supports, dtype=np.float64), 1e-12, 1 - 1e-12)
    logit = float(np.average(np.log(p / (1 - p)), weights=np.asarray(weights, dtype=np.float64)))
    return _sigmoid(logit)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


class GroundednessChecker:
    """Offline, deterministic groundedness scorer (lexical + entity/number + MiniLM evidence).

    ``embed`` maps a list of texts to an ``(n, d)`` array of L2-normalized vectors; pass a cached
    embedder, texts are sent once per batch and unique. ``model`` is the logistic model (default
    :data:`DEFAULT_MODEL`, or :data:`LM_MODEL` with an ``lm``); ``threshold`` overrides its
    threshold for ``supported`` (claims and answers).
    """

    def __init__(
        self,
        embed: EmbedFn,
        threshold: float | None = None,
        *,
        aggregate: str = "weighted",
        max_units: int = MAX_UNITS,
        top_sentences: int = 2,
        batch_size: int = 64,
        window_mode: str = "mean",
        model: GroundingModel | None = None,
        lm: ClaimLikelihood | None = None,
    ) -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        if model is None:
            model = LM_MODEL if lm is not None else DEFAULT_MODEL
        if threshold is None:
            threshold = model.threshold
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if window_mode not in ("embed", "mean"):
            raise ValueError(f"window_mode must be 'embed' or 'mean', got {window_mode!r}")
        self.embed = embed
        self.window_mode = window_mode
        self.threshold = threshold
        self.aggregate = aggregate
        self.max_units = max_units
        self.top_sentences = top_sentences
        self.batch_size = batch_size
        self.lm = lm
        self.feature_names: tuple[str, ...] = FEATURE_NAMES + (LM_FEATURE_NAMES if lm is not None else ())
        unknown = set(model.weights) - set(self.feature_names)
        if unknown:
            raise ValueError(f"unknown feature weights {sorted(unknown)}; features are {list(self.feature_names)}")
        self._w = np.array([model.weights.get(name, 0.0) for name in self.feature_names], dtype=np.float64)
        self._b = model.intercept

    # -- public API -------------------------------------------------------------------------------

    def check(self, answer: str, passages: str | Sequence[str]) -> GroundednessResult:
        """Score one answer against its passages."""
        return self.check_many([answer], [passages])[0]

    def check_many(
        self, answers: Sequence[str], contexts: Sequence[str | Sequence[str]]
    ) -> list[GroundednessResult]:
        """Score many answers; embedding is batched over ``batch_size`` answers at a time."""
        if len(answers) != len(contexts):
            raise ValueError(f"{len(answers)} answers but {len(contexts)} contexts; they must align")
        results: list[GroundednessResult] = []
        for start in range(0, len(answers), self.batch_size):
            chunk = self._featurize(answers[start : start + self.batch_size], contexts[start : start + self.batch_size])
            results.extend(self._verdict(rows) for rows in chunk)
        return results

    def score_pairs(self, responses: Sequence[str], contexts: Sequence[str | Sequence[str]]) -> np.ndarray:
        """One groundedness score per response (the ``score`` of :meth:`check`), as a float array."""
        return np.array([r.score for r in self.check_many(responses, contexts)], dtype=np.float64)

    def feature_matrix(
        self, responses: Sequence[str], contexts: Sequence[str | Sequence[str]]
    ) -> list[np.ndarray]:
        """Raw features per response, shape ``(n_claims, n_features)``; used to (re)fit the weights."""
        out: list[np.ndarray] = []
        for start in range(0, len(responses), self.batch_size):
            chunk = self._featurize(
                responses[start : start + self.batch_size], contexts[start : start + self.batch_size]
            )
            for rows in chunk:
                feats = [[row[1][name] for name in self.feature_names] for row in rows]
                out.append(np.array(feats, dtype=np.float64).reshape(len(rows), len(self.feature_names)))
        return out

    # -- internals --------------------------------------------------------------------------------

    def support(self, features: dict[str, float]) -> float:
        """Support probability of one claim from its feature values."""
        x = np.array([features[name] for name in self.feature_names], dtype=np.float64)
        return _sigmoid(float(self._b + self._w @ x))

    def _verdict(self, rows: list[tuple[str, dict[str, float], str, list[str]]]) -> GroundednessResult:
        claims = []
        for text, feats, evidence, reasons in rows:
            p = self.support(feats)
            claims.append(ClaimSupport(text, p, p >= self.threshold, evidence, reasons, feats))
        if not claims:
            return GroundednessResult(score=0.0, supported=False, claims=[])
        score = aggregate_supports(
            [c.support for c in claims], [claim_weight(c.features) for c in claims], self.aggregate
        )
        return GroundednessResult(score=score, supported=score >= self.threshold, claims=claims)

    def _prepare(self, answer: str, passages: str | Sequence[str]) -> _Prepared:
        plist = [passages] if isinstance(passages, str) else [str(p) for p in passages]
        ctx = build_context(plist)
        claims = [analyze_claim(c) for c in split_claims(answer)]
        n = len(ctx.sentences)
        if n <= self.max_units or not claims:
            candidates = list(range(n))
        else:
            per_claim = max(8, self.max_units // len(claims))
            chosen: set[int] = set()
            for claim in claims:
                chosen.update(lexical_rank(claim, ctx)[:per_claim])
            candidates = sorted(chosen)
        return _Prepared(claims, ctx, candidates)

    def _window_vector(self, ctx: Context, span: tuple[int, int], vecs: dict[str, np.ndarray]) -> np.ndarray:
        if self.window_mode == "embed":
            return vecs[ctx.window_text(span)]
        sents = ctx.sentences[span[0] : span[1]]
        total = sum(max(len(s.split()), 1) * vecs[s] for s in sents)
        norm = float(np.linalg.norm(total))
        return np.asarray(total / norm if norm > 0 else total)

    def _embed_unique(self, texts: list[str]) -> dict[str, np.ndarray]:
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        vecs = np.asarray(self.embed(unique), dtype=np.float32)
        if vecs.shape[0] != len(unique):
            raise ValueError(f"embed returned {vecs.shape[0]} vectors for {len(unique)} texts")
        return dict(zip(unique, vecs, strict=True))

    def _featurize(
        self, answers: Sequence[str], contexts: Sequence[str | Sequence[str]]
    ) -> list[list[tuple[str, dict[str, float], str, list[str]]]]:
        prepared = [self._prepare(a, c) for a, c in zip(answers, contexts, strict=True)]
        first: list[str] = []
        for prep in prepared:
            first.extend(c.text for c in prep.claims)
            first.extend(prep.ctx.sentences[i] for i in prep.candidates)
        vec = self._embed_unique(first)

        # Per claim: cosine to candidate sentences, then windows around the best ones.
        plans: list[list[tuple[float, int, list[tuple[int, int]]]]] = []
        second: list[str] = []
        for prep in prepared:
            ctx = prep.ctx
            cand_vecs = (
                np.stack([vec[ctx.sentences[i]] for i in prep.candidates])
                if prep.candidates
                else np.zeros((0, 1), dtype=np.float32)
            )
            plan = []
            for claim in prep.claims:
                if cand_vecs.shape[0]:
                    sims = cand_vecs @ vec[claim.text]
                    order = np.argsort(-sims, kind="stable")[: self.top_sentences]
                    best_sent = float(sims[order[0]])
                    best_idx = prep.candidates[int(order[0])]
                    tops = {prep.candidates[int(j)] for j in order}
                else:
                    best_sent, best_idx, tops = 0.0, -1, set()
                spans = [s for s in ctx.window_spans if any(s[0] <= t < s[1] for t in tops)]
                if self.window_mode == "embed":
                    second.extend(ctx.window_text(s) for s in spans)
                else:
                    second.extend(ctx.sentences[i] for s in spans for i in range(*s) if ctx.sentences[i] not in vec)
                plan.append((best_sent, best_idx, spans))
            plans.append(plan)
        wvec = self._embed_unique(second)
        if self.window_mode == "mean":
            wvec.update(vec)

        out: list[list[tuple[str, dict[str, float], str, list[str]]]] = []
        for prep, plan in zip(prepared, plans, strict=True):
            ctx = prep.ctx
            rows = []
            for claim, (best_sent, best_idx, spans) in zip(prep.claims, plan, strict=True):
                lex = lexical_features(claim, ctx)
                feats = dict(lex.values)
                evidence = ctx.sentences[best_idx] if best_idx >= 0 else ""
                best_win = best_sent
                cvec = vec[claim.text]
                for span in spans:
                    sim = float(self._window_vector(ctx, span, wvec) @ cvec)
                    if sim > best_win:
                        best_win, evidence = sim, ctx.window_text(span)
                feats["cos_sentence"] = best_sent
                feats["cos_window"] = best_win
                # aligned = the claim's most similar sentence by embedding and by IDF-weighted overlap
                lex_best = lexical_rank(claim, ctx)[:1] if ctx.sentences else []
                aligned = [(best_idx, best_idx + 1) if best_idx >= 0 else None, *((i, i + 1) for i in lex_best)]
                local, local_reasons = local_features(claim, ctx, aligned)
                feats.update(local)
                reasons = list(lex.reasons) + local_reasons
                if best_idx < 0:
                    reasons.insert(0, "no passage text to check against")
                rows.append((claim.text, feats, evidence, reasons))
            if self.lm is not None and rows:
                pmis = self.lm.claim_pmi(lm_context(ctx, prep.candidates), [r[0] for r in rows])
                for row, pmi in zip(rows, pmis, strict=True):
                    row[1]["lm_pmi"] = float(pmi)
            out.append(rows)
        return out
