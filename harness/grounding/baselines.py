"""The two baselines the groundedness method is measured against, on the same examples.

* :func:`token_overlap`: share of the response's content tokens (lower-cased, stopwords removed,
  Porter stems) found anywhere in the context;
* :func:`max_cosine`: mean over response sentences of the max embedding cosine to a context
  sentence, over the same candidate sentences the method embeds.

Their balanced-accuracy thresholds were tuned on the dev splits with the model
(:func:`harness.grounding.fit.fit_weights`) and are frozen here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.grounding.claims import split_sentences
from harness.grounding.evidence import analyze_claim, build_context, content_stems, lexical_rank, tokens
from harness.grounding.scorer import MAX_UNITS, EmbedFn
from harness.grounding.sets import as_passages

BASELINE_THRESHOLDS: dict[str, float] = {"token_overlap": 0.6802, "max_cosine": 0.6875}


def token_overlap(responses: Sequence[str], contexts: Sequence[str | list[str]]) -> np.ndarray:
    """Share of response content stems present in the context (1.0 for a response with none)."""
    out = []
    for response, context in zip(responses, contexts, strict=True):
        claim = set(content_stems(tokens(response)))
        ctx = set(content_stems(tokens("\n".join(as_passages(context)))))
        out.append(len(claim & ctx) / len(claim) if claim else 1.0)
    return np.array(out)


def max_cosine(responses: Sequence[str], contexts: Sequence[str | list[str]], embed: EmbedFn) -> np.ndarray:
    """Mean over response sentences of the max cosine to a context sentence.

    Contexts longer than MAX_UNITS sentences use the same lexical candidate filter as the method
    (top sentences by IDF-weighted overlap with each response sentence), so both see the same text.
    """
    plans = []
    texts: list[str] = []
    for response, context in zip(responses, contexts, strict=True):
        sents = split_sentences(response) or [response]
        ctx = build_context(as_passages(context))
        cands = list(range(len(ctx.sentences)))
        if len(cands) > MAX_UNITS:
            per = max(8, MAX_UNITS // len(sents))
            chosen: set[int] = set()
            for s in sents:
                chosen.update(lexical_rank(analyze_claim(s), ctx)[:per])
            cands = sorted(chosen)
        units = [ctx.sentences[i] for i in cands]
        plans.append((sents, units))
        texts.extend(sents)
        texts.extend(units)
    unique = list(dict.fromkeys(texts))
    vec = dict(zip(unique, embed(unique), strict=True)) if unique else {}
    out = []
    for sents, units in plans:
        if not units:
            out.append(0.0)
            continue
        u = np.stack([vec[t] for t in units])
        out.append(float(np.mean([np.max(u @ vec[s]) for s in sents])))
    return np.array(out)
