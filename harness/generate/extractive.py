"""The offline, deterministic default generator: answers by extracting from retrieved passages.

It needs no model endpoint, so `make eval` and every test run offline. For each case it splits the
top passages into sentences (Punkt), scores each sentence by the IDF-weighted overlap of its content
words with the query (plus a small prior for higher-ranked passages), keeps the best ones within the
contract's word budget, and then fills the output contract: a JSON object with answer and citations,
markdown with inline ``[id]`` citations, or one plain sentence. Formatting instructions it can satisfy
mechanically (case, commas, title, bullets, highlights, end phrase, quotation, word limits) are
applied; content instructions are not faked.

It never reads the rendered prompt messages (they are not part of its cache key either): a change
of prompt wording leaves every extractive answer as it was. To evaluate a prompt, pin a generator
that reads it (``openai`` at any compatible endpoint). What it does read (the passages it is shown,
the contract, the instructions, its own ``max_sentences``) changes its answers.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

from harness.generate.base import GENERATORS, GenerationRequest

_STOP_WORDS = (
    "a an and are as at be by can do does for from how i if in is it its of on or that the this to was what when "
    "where which who why will with you your my we our should would could there their they them whose"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z0-9][a-z0-9_.-]*[a-z0-9]|[a-z0-9]")


def _stem(tok: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(tok) > len(suffix) + 3 and tok.endswith(suffix):
            return tok[: -len(suffix)]
    return tok


def content_tokens(text: str) -> list[str]:
    return [_stem(t) for t in _WORD.findall(text.lower()) if t not in _STOP]


def _truncate_words(text: str, max_words: int) -> str:
    words = text.split()
    if len(words) <= max_words:
        return text
    return " ".join(words[:max_words]).rstrip(",;:") + "."


class ExtractiveGenerator:
    spec: dict[str, Any]

    def __init__(self, max_sentences: int = 3, rank_prior: float = 0.15) -> None:
        self.max_sentences = max_sentences
        self.rank_prior = rank_prior

    def identity(self) -> dict[str, Any]:
        return {"kind": "extractive", "version": 2, "max_sentences": self.max_sentences,
                "rank_prior": self.rank_prior}

    def request_key_parts(self, req: GenerationRequest) -> dict[str, Any]:
        return {"query": req.query, "passages": [[p.get("id"), p.get("text")] for p in req.passages],
                "contract": req.contract, "instructions": list(req.instructions)}

    def select(self, query: str, passages: tuple[dict[str, Any], ...], budget: int) -> list[tuple[str, str]]:
        """(doc id, sentence) pairs, best first, within ``budget`` words."""
        from harness.instructions.text import split_sentences

        sents: list[tuple[int, int, str, str]] = []  # rank, position, doc id, sentence
        for rank, p in enumerate(passages):
            for pos, s in enumerate(split_sentences(str(p.get("text", "")))):
                if s.strip():
                    sents.append((rank, pos, str(p.get("id")), s.strip()))
        if not sents:
            return []
        toks = [set(content_tokens(s)) for *_, s in sents]
        df = Counter(t for ts in toks for t in ts)
        n = len(sents)
        q = set(content_tokens(query))
        scored = []
        for (rank, pos, doc_id, s), ts in zip(sents, toks, strict=True):
            overlap = sum(math.log(1 + n / df[t]) for t in q & ts)
            norm = math.sqrt(len(ts) + 1)
            scored.append((overlap / norm + self.rank_prior / (1 + rank) - 0.01 * pos, rank, pos, doc_id, s))
        scored.sort(key=lambda x: (-x[0], x[1], x[2]))
        chosen: list[tuple[int, int, str, str]] = []
        words = 0
        for _, rank, pos, doc_id, s in scored:
            w = len(s.split())
            if chosen and (words + w > budget or len(chosen) >= self.max_sentences):
                break
            chosen.append((rank, pos, doc_id, s))
            words += w
        chosen.sort()
        return [(d, s) for _, _, d, s in chosen]

    async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int]]:
        return self.generate(req), {}

    def generate(self, req: GenerationRequest) -> str:
        contract = req.contract or {}
        fmt = contract.get("format", "text")
        budget = int(contract.get("max_words") or 60)
        instr: dict[str, Any] = {str(i.get("id")): i.get("kwargs") or {} for i in req.instructions}
        limit = instr.get("length_constraints:number_words")
        if limit and limit.get("relation") == "less than":
            budget = max(1, min(budget, int(limit["num_words"]) - 8))
        if fmt == "text":
            picked = self.select(req.query, req.passages, budget)[:1]
        else:
            picked = self.select(req.query, req.passages, budget)
        if not picked:
            picked = [("", "The retrieved passages do not contain the answer.")]
        if fmt == "json":
            answer = self._style(" ".join(s for _, s in picked), instr, budget)
            cites = list(dict.fromkeys(d for d, _ in picked if d))
            return json.dumps({"answer": answer, "citations": cites}, ensure_ascii=False)
        if fmt == "markdown":
            return self._markdown(picked, instr, budget)
        plain = re.sub(r"[`*_#>]+", "", picked[0][1]).strip()
        return self._style(_truncate_words(plain, budget), instr, budget)

    def _markdown(self, picked: list[tuple[str, str]], instr: dict[str, Any], budget: int) -> str:
        parts = [f"{s} [{d}]" if d else s for d, s in picked]
        bullets = instr.get("detectable_format:number_bullet_lists")
        highlights = int((instr.get("detectable_format:number_highlighted_sections") or {}).get("num_highlights", 0))
        for i in range(min(highlights, len(parts))):
            parts[i] = f"*{parts[i]}*"
        if highlights > len(parts):
            parts += ["*See the cited passages.*"] * (highlights - len(parts))
        if bullets:
            n = int(bullets["num_bullets"])
            parts = (parts + ["See the cited passages for details."] * n)[:n]
            body = "\n".join(f"* {p}" for p in parts)
        else:
            body = " ".join(parts)
        if "detectable_format:title" in instr:
            body = "<<Answer>>\n\n" + body
        return self._style(body, instr, budget, truncate=False)

    @staticmethod
    def _style(text: str, instr: dict[str, Any], budget: int, truncate: bool = True) -> str:
        if truncate:
            text = _truncate_words(text, budget)
        if "punctuation:no_comma" in instr:
            text = text.replace(",", "")
        if "change_case:english_lowercase" in instr:
            text = text.lower()
        if "change_case:english_capital" in instr:
            text = text.upper()
        end = instr.get("startend:end_checker")
        if end:
            text = f"{text.rstrip()} {end['end_phrase']}"
        if "startend:quotation" in instr:
            text = f'"{text}"'
        return text


@GENERATORS.register("extractive")
def extractive(max_sentences: int = 3, rank_prior: float = 0.15) -> ExtractiveGenerator:
    return ExtractiveGenerator(max_sentences=max_sentences, rank_prior=rank_prior)
