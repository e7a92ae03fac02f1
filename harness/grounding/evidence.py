"""Evidence features for one claim against its context: lexical, numeric, entity, negation, embedding.

Every feature is cheap, deterministic and explainable; :mod:`harness.grounding.scorer` turns them
into a support probability with a frozen logistic regression. The features follow what the
faithfulness literature found to matter when no NLI model is at hand:

* content-token recall of the claim in the context, globally and in the best local window of 1-3
  sentences (the lexical core of SummaC's sentence-level alignment, Laban et al. 2022, without NLI);
* the count of novel content tokens (an edited summary usually adds one or two words that the
  source never says, SummEdits, Laban et al. 2023);
* content-bigram recall (word order: "A beat B" vs "B beat A" shares unigrams, not bigrams);
* coverage of numbers (with number words mapped to digits), capitalised names and quoted strings:
  a number or a name absent from every passage is the most common hallucination in RAG answers
  (Ji et al. 2023 survey; QAGS, Wang et al. 2020, asks questions about exactly these spans);
* negation mismatch between the claim and its best lexical window;
* the maximum MiniLM cosine between the claim and context sentences and 2-3 sentence windows (a
  paraphrase signal that lexical recall misses).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.grounding.claims import split_sentences, windows

__all__ = [
    "FEATURE_NAMES",
    "LOCAL_FEATURE_NAMES",
    "ClaimText",
    "Context",
    "analyze_claim",
    "build_context",
    "content_stems",
    "lexical_features",
    "local_features",
]

STOPWORDS = frozenset(
    str.split(
        """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just let me
    more most my myself of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves s t d ll m re ve y o wa ha doe thi one ones may might must shall us
    said says say according"""
    )
)
NEGATIONS = frozenset(
    str.split(
        "not no never none nobody nothing neither nor without cannot cant dont doesnt didnt isnt wasnt arent "
        "werent wont wouldnt couldnt shouldnt hasnt havent hadnt n't nt"
    )
)
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000",
    "million": "1000000", "billion": "1000000000", "first": "1", "second": "2", "third": "3",
    "fourth": "4", "fifth": "5", "sixth": "6", "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10",
    "twice": "2", "half": "0.5", "dozen": "12",
}
_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+(?:'[^\W\d_]+)?")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_CAPITALISED = re.compile(r"\b[A-Z][\w&'-]*")
_QUOTED = re.compile(r"[\"“]([^\"”]{3,80})[\"”]")
_NON_WORD = re.compile(r"\W+")

FEATURE_NAMES: tuple[str, ...] = (
    "recall_context",  # share of claim content stems found anywhere in the context
    "recall_local",  # best share found inside one window of 1-3 sentences
    "bigram_recall",  # share of adjacent content-stem pairs found in the context
    "novel_log",  # log(1 + number of claim content stems absent from the context)
    "number_missing",  # share of the claim's numbers absent from the context (0 if none)
    "entity_missing",  # share of the claim's capitalised names absent from the context (0 if none)
    "quote_missing",  # 1 if a quoted string of the claim is absent from the context
    "negation_mismatch",  # 1 if claim and its best window disagree on containing a negation
    "length_log",  # log(1 + number of claim content stems)
    "cos_sentence",  # max MiniLM cosine, claim vs context sentences
    "cos_window",  # max MiniLM cosine, claim vs 2-3 sentence windows around the best sentences
    # local-edit features: the claim against its aligned window (its best embedding window and its best
    # lexical window), not the whole context (see local_features)
    "number_displaced",  # share of the claim's numbers present in the context but not in the aligned window
    "entity_displaced",  # the same for capitalised names
    "stem_displaced",  # log(1 + claim content stems present in the context but not in the aligned window)
    "negation_local",  # 1 if claim and its best aligned sentence disagree on containing a negation
    "order_discord",  # share of discordant pairs in the order of the claim's names/numbers vs the window
    "antonym_conflict",  # 1 if a claim word is absent from the window and its antonym is present
)
LOCAL_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES[-6:]


@functools.cache
def _porter() -> Any:
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


@functools.lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    """Porter stem (NLTK's implementation, pure Python, no data files); short words stay as they are."""
    return str(_porter().stem(word)) if len(word) > 3 else word


def tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens; apostrophes are folded ("don't" -> "dont")."""
    return [t.replace("'", "") for t in _TOKEN.findall(text.lower().replace("’", "'"))]


def content_stems(toks: list[str]) -> list[str]:
    """Porter stems of the non-stopword tokens, in order (numbers kept as they are)."""
    out = []
    for tok in toks:
        if tok in STOPWORDS or tok in NEGATIONS:
            continue
        out.append(_stem(tok) if tok.isalpha() else _normalize_number(tok))
    return out


def _normalize_number(tok: str) -> str:
    tok = tok.replace(",", "")
    if "." in tok and ":" not in tok:
        tok = tok.rstrip("0").rstrip(".") if re.fullmatch(r"\d+\.\d+", tok) else tok
    return tok


def numbers_in(text: str) -> set[str]:
    """Numbers in ``text``, normalized ("1,000" -> "1000", "3.50" -> "3.5"), number words as digits."""
    found = {_normalize_number(m) for m in _NUMBER.findall(text)}
    for tok in tokens(text):
        if tok in _NUMBER_WORDS:
            found.add(_NUMBER_WORDS[tok])
    return found


def _number_variants(num: str) -> set[str]:
    """Forms under which a claimed number counts as present: 1500000 is also "1.5" (million)."""
    out = {num}
    if re.fullmatch(r"\d+", num):
        value = int(num)
        for scale in (1_000_000_000, 1_000_000, 1000):
            if value >= scale and value % (scale // 10) == 0:
                out.add(_normalize_number(f"{value / scale:.1f}"))
    return out


def entities_in(text: str) -> set[str]:
    """Lower-cased capitalised words that are not sentence-initial stopwords: a cheap name detector."""
    found = set()
    for match in _CAPITALISED.finditer(text):
        word = match.group(0).lower().replace("'s", "").replace("’s", "").strip("'-")
        if len(word) < 2 or word in STOPWORDS or word in NEGATIONS or word in _NUMBER_WORDS:
            continue
        found.add(word)
    return found


def _normalize_text(text: str) -> str:
    return " " + _NON_WORD.sub(" ", text.lower()).strip() + " "


@dataclass
class ClaimText:
    """A claim, pre-analysed once: its tokens, content stems, numbers, names and quotes."""

    text: str
    stems: list[str]
    stem_set: set[str]
    bigrams: set[tuple[str, str]]
    numbers: set[str]
    entities: set[str]
    quotes: list[str]
    negated: bool


def analyze_claim(text: str) -> ClaimText:
    toks = tokens(text)
    stems = content_stems(toks)
    return ClaimText(
        text=text,
        stems=stems,
        stem_set=set(stems),
        bigrams=set(itertools.pairwise(stems)),
        numbers=numbers_in(text),
        entities=entities_in(text),
        quotes=[q for q in _QUOTED.findall(text) if len(q.split()) >= 2],
        negated=any(t in NEGATIONS for t in toks),
    )


@dataclass
class Context:
    """All passages of one answer, split into sentence units, with lexical indexes built once."""

    passages: list[str]
    sentences: list[str]
    passage_of: list[int]
    sentence_stems: list[set[str]]
    sentence_negated: list[bool]
    window_spans: list[tuple[int, int]]
    stem_set: set[str]
    token_set: set[str]
    bigrams: set[tuple[str, str]]
    numbers: set[str]
    normalized: str
    doc_freq: dict[str, int] = field(default_factory=dict)

    def window_text(self, span: tuple[int, int]) -> str:
        return " ".join(self.sentences[span[0] : span[1]])


@dataclass(frozen=True)
class _PassageIndex:
    """One passage's sentences and their lexical indexes, shared by every context that shows it."""

    sentences: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # windows, relative to the passage's first sentence
    sentence_stems: tuple[set[str], ...]  # never mutated by a context
    negated: tuple[bool, ...]
    stem_set: frozenset[str]
    token_set: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    numbers: frozenset[str]
    doc_freq: tuple[tuple[str, int], ...]


@functools.lru_cache(maxsize=16_384)
def _passage_index(passage: str) -> _PassageIndex:
    """The per-passage half of :func:`build_context`, memoized: a run shows the same corpus passages to many
    answers, and splitting and stemming them once per answer was most of the groundedness scorer's time."""
    sents = split_sentences(passage)
    stems_of: list[set[str]] = []
    negated: list[bool] = []
    stem_set: set[str] = set()
    token_set: set[str] = set()
    bigrams: set[tuple[str, str]] = set()
    doc_freq: dict[str, int] = {}
    for sentence in sents:
        toks = tokens(sentence)
        stems = content_stems(toks)
        unique = set(stems)
        stems_of.append(unique)
        negated.append(any(t in NEGATIONS for t in toks))
        stem_set |= unique
        token_set.update(toks)
        bigrams.update(itertools.pairwise(stems))
        for s in unique:
            doc_freq[s] = doc_freq.get(s, 0) + 1
    return _PassageIndex(sentences=tuple(sents), spans=tuple(windows(sents)), sentence_stems=tuple(stems_of),
                         negated=tuple(negated), stem_set=frozenset(stem_set), token_set=frozenset(token_set),
                         bigrams=frozenset(bigrams), numbers=frozenset(numbers_in(passage)),
                         doc_freq=tuple(doc_freq.items()))


def build_context(passages: list[str]) -> Context:
    """Split passages into sentences (windows never cross a passage boundary) and index them.

    Each passage is indexed once (:func:`_passage_index`) and the context is the union of its passages'
    indexes: no token, number or sentence spans the line break that joins two passages, so the union is
    what indexing the joined text gives."""
    sentences: list[str] = []
    passage_of: list[int] = []
    spans: list[tuple[int, int]] = []
    sentence_stems: list[set[str]] = []
    negated: list[bool] = []
    stem_set: set[str] = set()
    token_set: set[str] = set()
    bigrams: set[tuple[str, str]] = set()
    numbers: set[str] = set()
    doc_freq: dict[str, int] = {}
    for p, passage in enumerate(passages):
        idx = _passage_index(passage)
        offset = len(sentences)
        sentences.extend(idx.sentences)
        passage_of.extend([p] * len(idx.sentences))
        spans.extend((offset + a, offset + b) for a, b in idx.spans)
        sentence_stems.extend(idx.sentence_stems)
        negated.extend(idx.negated)
        stem_set |= idx.stem_set
        token_set |= idx.token_set
        bigrams |= idx.bigrams
        numbers |= idx.numbers
        for s, n in idx.doc_freq:
            doc_freq[s] = doc_freq.get(s, 0) + n
    full = "\n".join(passages)
    return Context(
        passages=passages,
        sentences=sentences,
        passage_of=passage_of,
        sentence_stems=sentence_stems,
        sentence_negated=negated,
        window_spans=spans,
        stem_set=stem_set,
        token_set=token_set,
        bigrams=bigrams,
        numbers=numbers,
        normalized=_normalize_text(full),
        doc_freq=doc_freq,
    )


def lexical_rank(claim: ClaimText, ctx: Context) -> list[int]:
    """Sentence indices ordered by IDF-weighted stem overlap with the claim (best first, stable)."""
    n = max(len(ctx.sentences), 1)
    weights = {s: math.log(1 + n / ctx.doc_freq.get(s, 1)) for s in claim.stem_set}
    scores = [sum(weights[s] for s in claim.stem_set & stems) for stems in ctx.sentence_stems]
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


@dataclass
class LexicalEvidence:
    values: dict[str, float]
    reasons: list[str]
    best_span: tuple[int, int] | None


def _best_local(claim: ClaimText, ctx: Context) -> tuple[float, tuple[int, int] | None]:
    if not claim.stem_set:
        return 1.0, None
    best, best_span = -1.0, None
    size = len(claim.stem_set)
    spans = [(i, i + 1) for i in range(len(ctx.sentences))] + ctx.window_spans
    for span in spans:
        hit = set().union(*ctx.sentence_stems[span[0] : span[1]]) & claim.stem_set
        score = len(hit) / size
        if score > best + 1e-12:
            best, best_span = score, span
    return max(best, 0.0), best_span


def lexical_features(claim: ClaimText, ctx: Context) -> LexicalEvidence:
    """The lexical, numeric, name, quote and negation features of one claim, with readable reasons."""
    reasons: list[str] = []
    n_stems = len(claim.stem_set)
    missing = sorted(claim.stem_set - ctx.stem_set)
    recall = 1.0 - len(missing) / n_stems if n_stems else 1.0
    local, span = _best_local(claim, ctx)
    bigram_recall = len(claim.bigrams & ctx.bigrams) / len(claim.bigrams) if claim.bigrams else recall

    missing_numbers = sorted(
        num for num in claim.numbers if not (_number_variants(num) & ctx.numbers) and f" {num} " not in ctx.normalized
    )
    for num in missing_numbers:
        reasons.append(f"number {num} not found in any passage")
    number_missing = len(missing_numbers) / len(claim.numbers) if claim.numbers else 0.0

    missing_entities = sorted(
        e for e in claim.entities if e not in ctx.token_set and _stem(e) not in ctx.stem_set
        and f" {e} " not in ctx.normalized
    )
    for ent in missing_entities:
        reasons.append(f"name {ent!r} not found in any passage")
    entity_missing = len(missing_entities) / len(claim.entities) if claim.entities else 0.0

    quote_missing = 0.0
    for quote in claim.quotes:
        if _normalize_text(quote) not in ctx.normalized:
            quote_missing = 1.0
            reasons.append(f"quote {quote!r} not found verbatim")

    negation_mismatch = 0.0
    if span is not None:
        window_negated = any(ctx.sentence_negated[span[0] : span[1]])
        if window_negated != claim.negated:
            negation_mismatch = 1.0
            reasons.append("negation differs from the closest passage text")
    missing_words = [m for m in missing if not m[0].isdigit()]
    if missing_words and len(missing_words) <= 5:
        reasons.append("words not in any passage: " + ", ".join(missing_words))
    elif missing_words:
        reasons.append(f"{len(missing_words)} of {n_stems} content words not in any passage")

    values = {
        "recall_context": recall,
        "recall_local": local,
        "bigram_recall": bigram_recall,
        "novel_log": math.log1p(len(missing)),
        "number_missing": number_missing,
        "entity_missing": entity_missing,
        "quote_missing": quote_missing,
        "negation_mismatch": negation_mismatch,
        "length_log": math.log1p(n_stems),
    }
    return LexicalEvidence(values=values, reasons=reasons, best_span=span)


def max_cosine(claim_vec: np.ndarray, unit_vecs: np.ndarray) -> tuple[float, int]:
    """Largest cosine of a normalized claim vector against rows of normalized unit vectors."""
    if unit_vecs.shape[0] == 0:
        return 0.0, -1
    sims = unit_vecs @ claim_vec
    idx = int(np.argmax(sims))
    return float(sims[idx]), idx


_ANTONYM_PAIRS = (
    ("increas", "decreas"), ("increas", "reduc"), ("higher", "lower"), ("high", "low"), ("larger", "smaller"),
    ("greater", "smaller"), ("greater", "less"), ("more", "less"), ("more", "fewer"), ("most", "few"),
    ("all", "some"), ("posit", "neg"), ("before", "after"), ("maximum", "minimum"), ("earlier", "later"),
    ("older", "younger"), ("improv", "worsen"), ("upregul", "downregul"), ("won", "lost"), ("rose", "fell"),
    ("rise", "fall"), ("strong", "weak"), ("longer", "shorter"), ("north", "south"), ("east", "west"),
    ("inhibit", "promot"), ("success", "failur"), ("first", "last"), ("earli", "late"), ("accept", "reject"),
    ("signific", "insignific"), ("includ", "exclud"), ("presenc", "absenc"), ("present", "absent"),
    ("common", "rare"), ("benign", "malign"), ("gain", "loss"), ("profit", "loss"), ("buy", "sell"),
    ("agre", "disagre"), ("support", "oppos"), ("start", "end"), ("open", "close"), ("win", "lose"),
)
_ANTONYMS: dict[str, set[str]] = {}
for _a, _b in _ANTONYM_PAIRS:
    _ANTONYMS.setdefault(_a, set()).add(_b)
    _ANTONYMS.setdefault(_b, set()).add(_a)
_KEY_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[A-Z][\w&'-]*")


def _word_stem(tok: str) -> str:
    return _stem(tok) if tok.isalpha() else _normalize_number(tok)


def local_features(
    claim: ClaimText, ctx: Context, spans: list[tuple[int, int] | None]
) -> tuple[dict[str, float], list[str]]:
    """Local-edit features of a claim against its aligned window: the union of ``spans`` (sentence
    ranges of the context, e.g. the best embedding window and the best lexical window).

    A minimal edit moves a number, name or word from elsewhere in the document into the claim (or
    swaps two of them, flips a negation or an antonym): every token is still somewhere in the context,
    so whole-context checks pass, but the window the claim is about does not say it."""
    idx = sorted({i for span in spans if span is not None for i in range(span[0], span[1])})
    values = dict.fromkeys(LOCAL_FEATURE_NAMES, 0.0)
    reasons: list[str] = []
    if not idx:
        return values, reasons
    text = " ".join(ctx.sentences[i] for i in idx)
    norm = _normalize_text(text)
    win_numbers = numbers_in(text)
    win_tokens = tokens(text)
    win_token_set = set(win_tokens)
    win_stems = set().union(*(ctx.sentence_stems[i] for i in idx))

    present_numbers = [n for n in claim.numbers if (_number_variants(n) & ctx.numbers) or f" {n} " in ctx.normalized]
    displaced_n = sorted(n for n in present_numbers if not (_number_variants(n) & win_numbers) and f" {n} " not in norm)
    if claim.numbers:
        values["number_displaced"] = len(displaced_n) / len(claim.numbers)
    for num in displaced_n:
        reasons.append(f"number {num} is in the passages but not where the claim's evidence is")

    def in_ctx(e: str) -> bool:
        return e in ctx.token_set or _stem(e) in ctx.stem_set or f" {e} " in ctx.normalized

    def in_win(e: str) -> bool:
        return e in win_token_set or _stem(e) in win_stems or f" {e} " in norm

    displaced_e = sorted(e for e in claim.entities if in_ctx(e) and not in_win(e))
    if claim.entities:
        values["entity_displaced"] = len(displaced_e) / len(claim.entities)
    for ent in displaced_e:
        reasons.append(f"name {ent!r} is in the passages but not where the claim's evidence is")

    displaced_s = (claim.stem_set & ctx.stem_set) - win_stems
    values["stem_displaced"] = math.log1p(len(displaced_s))

    # negation against the single aligned sentence that shares most content stems with the claim
    best = max(idx, key=lambda i: (len(ctx.sentence_stems[i] & claim.stem_set), -i))
    if ctx.sentence_negated[best] != claim.negated:
        values["negation_local"] = 1.0
        reasons.append("negation differs from the aligned passage sentence")

    # order of the claim's names and numbers in the window (a role swap reverses a pair)
    keys = [_word_stem(t.lower().replace("'", "")) for t in _KEY_TOKEN.findall(claim.text)]
    keys = [k for k in dict.fromkeys(keys) if k not in STOPWORDS and len(k) > 1]
    win_seq = [_word_stem(t) for t in win_tokens]
    pos: list[int] = []
    for k in keys:
        if k in win_seq:
            pos.append(win_seq.index(k))
    if len(pos) >= 2:
        pairs = list(itertools.combinations(pos, 2))
        discord = sum(1 for a, b in pairs if a > b) / len(pairs)
        values["order_discord"] = discord
        if discord >= 0.5:
            reasons.append("names or numbers appear in a different order than in the passage")

    claim_words = {_word_stem(t) for t in tokens(claim.text)}
    win_words = {_word_stem(t) for t in win_tokens}
    for word in sorted(claim_words - win_words):
        flipped = _ANTONYMS.get(word, set()) & win_words
        if flipped and not (_ANTONYMS.get(word, set()) & claim_words):
            values["antonym_conflict"] = 1.0
            reasons.append(f"{word!r} where the passage says {sorted(flipped)[0]!r}")
            break
    return values, reasons
