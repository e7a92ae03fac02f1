"""Split answers into claims and passages into sentence units.

A claim is one sentence of the answer: the unit a reader checks against the sources (FActScore,
Min et al. 2023, goes further and splits into atomic facts with an LLM; offline we stop at the
sentence, which is also the unit of QAGS, WiCE and AttributionBench labels).

The splitter is a deterministic regular expression, not Punkt: several corpora we score are
lower-cased (QAGS) or tokenized with spaces before punctuation (BEGIN), and Punkt's orthographic
heuristics then refuse to break. Rules: break at line breaks (dropping list markers and heading
marks at the start of a line); break after ``.``, ``!`` or ``?``
(optionally followed by closing quotes/brackets) when whitespace follows and the word before the
period is not a known abbreviation, an initial or a number like "No."; very long sentences (run-on
transcripts) are cut into pieces of at most ``max_words`` words so that no unit exceeds what the
embedding model reads (256 word pieces for MiniLM).
"""

from __future__ import annotations

import re

__all__ = ["split_claims", "split_sentences", "windows"]

_ABBREVIATIONS = frozenset(
    str.split(
        """mr mrs ms dr prof sr jr st mt ft vs etc inc ltd co corp dept univ gen col lt sgt capt gov sen rep
    rev fig figs eq no nos vol pp approx est jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e
    u.s u.k u.n a.m p.m al cf ca"""
    )
)
_BOUNDARY = re.compile(r"""[.!?]+["'”’)\]]*\s+""")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•·#>]+|\d{1,2}[.)])\s+")
_CITATION = re.compile(r"\s*\[\d+(?:\s*[,-]\s*\d+)*\]")
_WORD = re.compile(r"\S+")


def _is_abbreviation(chunk: str) -> bool:
    """True if the text before a candidate boundary ends with an abbreviation or an initial."""
    match = re.search(r"(\S+)$", chunk)
    if match is None:
        return False
    word = match.group(1).rstrip(".!?\"'”’)]").lstrip("(\"'“‘[")
    low = word.lower()
    if low in _ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # an initial: "J. K. Rowling"
    return bool(re.fullmatch(r"(?:[a-z]\.)+[a-z]", low))  # "U.S", "e.g"


def _split_line(line: str) -> list[str]:
    out: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(line):
        end = match.end()
        piece = line[start : match.start() + 1]
        rest = line[end:]
        if _is_abbreviation(piece) or not rest:
            continue
        if rest[0].islower() and "." in match.group(0) and re.search(r"\b[a-z]\.$", piece):
            continue  # "e.g. something", "approx. five"
        out.append(line[start:end].strip())
        start = end
    tail = line[start:].strip()
    if tail:
        out.append(tail)
    return out


def _cap_words(sentence: str, max_words: int) -> list[str]:
    words = _WORD.findall(sentence)
    if len(words) <= max_words:
        return [sentence]
    pieces = re.split(r"(?<=[;:])\s+", sentence)
    out: list[str] = []
    for piece in pieces:
        ws = _WORD.findall(piece)
        for i in range(0, len(ws), max_words):
            out.append(" ".join(ws[i : i + max_words]))
    return out


def split_sentences(text: str, max_words: int = 60) -> list[str]:
    """Sentences of ``text`` (see the module docstring for the rules); empty pieces are dropped."""
    sentences: list[str] = []
    for raw_line in text.splitlines():
        line = _LIST_MARKER.sub("", raw_line).strip()
        if not line:
            continue
        for sentence in _split_line(line):
            sentences.extend(s for s in _cap_words(sentence, max_words) if s.strip())
    return sentences


def split_claims(answer: str, min_words: int = 3) -> list[str]:
    """Claims of an answer: its sentences, without list markers or citation marks like ``[1]``.

    A fragment shorter than ``min_words`` words (a heading, "Yes.", a dangling list number) is
    merged into the next sentence (or the previous one at the end) so that it is still checked but
    is not scored on its own.
    """
    sentences = []
    for sentence in split_sentences(answer):
        cleaned = _CITATION.sub("", sentence).strip()
        if cleaned:
            sentences.append(cleaned)
    claims: list[str] = []
    pending = ""
    for sentence in sentences:
        text = f"{pending} {sentence}".strip() if pending else sentence
        if len(_WORD.findall(text)) < min_words:
            pending = text
            continue
        claims.append(text)
        pending = ""
    if pending:
        if claims:
            claims[-1] = f"{claims[-1]} {pending}"
        else:
            claims.append(pending)
    return claims


def windows(sentences: list[str], sizes: tuple[int, ...] = (2, 3)) -> list[tuple[int, int]]:
    """Half-open index ranges ``(start, end)`` of all sliding windows of the given sizes.

    A claim often fuses two adjacent source sentences ("He was born in X. He studied Y." -> "X-born
    Y student"), so support is also looked for in windows of 2-3 consecutive sentences.
    """
    spans: list[tuple[int, int]] = []
    n = len(sentences)
    for size in sizes:
        if n < size:
            continue
        spans.extend((i, i + size) for i in range(n - size + 1))
    return spans
