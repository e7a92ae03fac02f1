"""The ``llm_judge`` scorer measured on labelled (response, context) pairs, beside the method.

Same prompt, claim split, verdict parser and generator machinery as the scorer
(:mod:`harness.scorers.judge`); ``make bench grounding`` reports it as the ``judge`` column when
GROUNDING_JUDGE names a judge.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.cache import Cache
from harness.errors import HarnessError
from harness.grounding.sets import as_passages

if TYPE_CHECKING:
    from harness.generate import Generator

JUDGE_MAX_CHARS = 24_000  # per request: passages beyond this are cut (the count is reported)


def judge_spec_from_env() -> dict[str, Any] | None:
    """The judge to measure, from GROUNDING_JUDGE: a generator spec as JSON, or a model name for the
    ``openai`` generator (endpoint and key from OPENAI_BASE_URL / OPENAI_API_KEY). None when unset."""
    value = os.environ.get("GROUNDING_JUDGE", "").strip()
    if not value:
        return None
    if not value.startswith("{"):
        return {"name": "openai", "model": value, "temperature": 0}
    try:
        spec = json.loads(value)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"GROUNDING_JUDGE: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(spec, dict):
        raise HarnessError("GROUNDING_JUDGE: a JSON value must be a generator spec object")
    return spec


def judge_cache(path: Path | None) -> Cache:
    """The judge's call cache: ``path`` or GROUNDING_JUDGE_CACHE if given, else in memory for this run."""
    if path is None and os.environ.get("GROUNDING_JUDGE_CACHE"):
        path = Path(os.environ["GROUNDING_JUDGE_CACHE"])
    return Cache(path if path is not None else ":memory:")


def _judge_passages(context: str | list[str], max_chars: int) -> tuple[list[str], bool]:
    """Passages labelled [1], [2], ... and cut to ``max_chars`` in total; True when cut."""
    out: list[str] = []
    left = max_chars
    for i, passage in enumerate(as_passages(context), 1):
        text = passage[:left]
        if text:
            out.append(f"[{i}] {text}")
        left -= len(text)
        if len(text) < len(passage):
            return out, True
    return out, False


def judge_scores(
    generator: Generator,
    responses: Sequence[str],
    contexts: Sequence[str | list[str]],
    cache: Cache,
    *,
    concurrency: int = 8,
    max_chars: int = JUDGE_MAX_CHARS,
    timeout_s: float = 120.0,
    max_retries: int = 3,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``llm_judge`` scorer's verdicts on (response, context) pairs: per response, the share of
    its claims the judge finds supported. ``generator`` is the judge's, from
    :func:`harness.scorers.judge.judge_generator`.

    The same prompt, verdict parser and generator machinery as the scorer (cached by content in
    ``cache``, retried, bounded concurrency). A failed call or an unparseable reply scores 0 (never
    a pass) and is counted in ``errors``; a response with no sentence of 3+ words is judged as one
    claim.
    """
    from harness.generate import GenerationRequest, generate_all
    from harness.scorers.judge import judge_claims, judge_messages, read_verdicts

    claims_of: list[list[str]] = []
    requests = []
    truncated = 0
    for i, (response, context) in enumerate(zip(responses, contexts, strict=True)):
        claims = judge_claims(response) or [response.strip()]
        passages, cut = _judge_passages(context, max_chars)
        truncated += cut
        claims_of.append(claims)
        requests.append(GenerationRequest(case_id=str(i), messages=judge_messages(passages, claims)))
    results = generate_all(
        generator, requests, cache, concurrency=concurrency, timeout_s=timeout_s, max_retries=max_retries
    )
    scores = np.zeros(len(requests))
    errors: Counter[str] = Counter()
    for r in results:
        i = int(r.case_id)
        verdicts, _ = read_verdicts(r, len(claims_of[i]))
        if verdicts is None:
            errors["unparseable reply" if r.text is not None else f"call failed: {r.error_kind or 'error'}"] += 1
        else:
            scores[i] = sum(bool(v["supported"]) for v in verdicts) / len(verdicts)
    info = {
        "errors": errors.total(),
        "error_kinds": dict(errors),
        "truncated_contexts": truncated,
        "calls_cached": sum(r.cache_hit for r in results),
    }
    return scores, info
