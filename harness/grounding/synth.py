"""Synthetic minimal-edit training pairs from unlabelled passages (the FactCC recipe).

Kryscinski et al. 2020 (FactCC) train a consistency checker on sentences of a source document:
the sentence itself is supported by the document; the same sentence with one rule-based edit
(an entity, number or date swapped, a negation inserted or removed, ...) is not. This module is
that generator, deterministic under a seed and with no model in the loop:

* **Passages** (:func:`unlabelled_passages`): unlabelled text only, never a labelled set: the
  SciFact corpus abstracts, HotpotQA dev context paragraphs, the amnesty_qa contexts (``../shared/data``)
  and the project's bundled example corpus (``golden/corpus.jsonl``). None of the faithfulness sets
  the bench reports or fits on is read.
* **Pairs** (:func:`synth_pairs`): for each chosen sentence one positive (label 1) and one negative
  (label 0) built from the *same* sentence, so a pair differs only by the edit.
* **Edits** (label 0, ``edit`` = kind): ``entity`` (a capitalised name or acronym replaced by another
  mention of the same type from the same document when there is one, so the wrong name is present in
  the context and only local reading catches it; else from the same source), ``number`` (another
  number of the same form from the document, else a perturbation), ``date`` (year or month),
  ``negation`` (auxiliary + "not" inserted, or "not"/"n't"/"never"/"no" removed), ``quantifier``
  (all/some/most/few/none/more/less), ``antonym`` (increase/decrease, higher/lower, ... from a small
  list) and ``swap`` (two names or two numbers of the sentence exchanged: a role swap).
* **Meaning-preserving positives** (label 1, ``edit`` = kind): the trivial-learning trap of
  FactCC-style data is that positives are verbatim copies, so "any token or form absent from the
  context" alone would separate the classes; real consistent summaries paraphrase (SummEdits).
  With probability ``transform_rate`` a positive is rewritten by one entailment-preserving rule:
  ``drop_parenthetical`` ("(n = 12)" removed), ``drop_clause`` (a trailing ", which/while/..."
  clause or a leading "However," removed: the rest is still entailed), ``number_format``
  ("12%" -> "12 percent", "3" -> "three", "1,500" -> "1500"). Negatives get the same rules at the same
  rate before their edit, so a rewritten form is no cue for either label.

Every negative differs from its sentence and does not occur verbatim in its passage (checked, not
assumed); a sentence with no applicable edit yields no pair, so labels stay balanced.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.grounding.claims import split_sentences

__all__ = [
    "EDIT_KINDS",
    "POSITIVE_KINDS",
    "SOURCES",
    "SynthError",
    "SynthPair",
    "candidate_edits",
    "mentions",
    "synth_pairs",
    "unlabelled_passages",
]

EDIT_KINDS: tuple[str, ...] = ("entity", "number", "date", "negation", "quantifier", "antonym", "swap")
POSITIVE_KINDS: tuple[str, ...] = ("none", "drop_parenthetical", "drop_clause", "number_format")
SOURCES: tuple[str, ...] = ("scifact", "hotpotqa", "amnesty_qa", "example")
EXAMPLE_CORPUS = Path(__file__).resolve().parents[2] / "golden" / "corpus.jsonl"

MIN_WORDS, MAX_WORDS = 6, 60


class SynthError(HarnessError):
    """A passage source that cannot be read (missing file, malformed line)."""


@dataclass(frozen=True)
class SynthPair:
    """One synthetic (claim, context) example."""

    claim: str  # a sentence of the passage (label 1, maybe rewritten) or that sentence with ONE edit (label 0)
    context: str  # the full passage the sentence came from
    label: int  # 1 supported, 0 not
    edit: str  # "none", a positive rewrite kind (POSITIVE_KINDS) or an edit kind (EDIT_KINDS)
    source: str  # corpus name: "scifact", "hotpotqa", "amnesty_qa", "example"
    doc_id: str
    detail: str  # human-readable, e.g. "'Paris' -> 'Lyon'"


# ---------------------------------------------------------------------------------------------------
# Passages


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        raise SynthError(f"{path}: passage source not found", hint="the shared data folder is ../shared/data")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SynthError(f"{path}:{n}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise SynthError(f"{path}:{n}: expected a JSON object")
            rows.append(row)
    return rows


def _field(row: dict[str, object], name: str, path: Path, n: int) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise SynthError(f"{path}:{n}: field '{name}' must be a string")
    return value


def _source_passages(source: str, data_root: Path, example_corpus: Path) -> list[tuple[str, str]]:
    """(doc_id, text) of one source, in file order, duplicates (same text) dropped."""
    out: list[tuple[str, str]] = []
    if source == "scifact":
        path = data_root / "scifact" / "corpus.jsonl"
        for n, row in enumerate(_read_jsonl(path), 1):
            out.append((_field(row, "_id", path, n), _field(row, "text", path, n)))
    elif source == "hotpotqa":
        path = data_root / "hotpotqa" / "dev_500.jsonl"
        for n, row in enumerate(_read_jsonl(path), 1):
            contexts = row.get("contexts")
            if not isinstance(contexts, list):
                raise SynthError(f"{path}:{n}: field 'contexts' must be a list")
            for j, ctx in enumerate(contexts):
                if not isinstance(ctx, dict) or not isinstance(ctx.get("paragraph_text"), str):
                    raise SynthError(f"{path}:{n}: contexts[{j}].paragraph_text must be a string")
                title = str(ctx.get("title") or j)
                out.append((f"{title}", str(ctx["paragraph_text"])))
    elif source == "amnesty_qa":
        path = data_root / "amnesty_qa" / "amnesty_qa.jsonl"
        for n, row in enumerate(_read_jsonl(path), 1):
            contexts = row.get("context")
            if not isinstance(contexts, list):
                raise SynthError(f"{path}:{n}: field 'context' must be a list")
            out.extend((f"{n}:{j}", str(c)) for j, c in enumerate(contexts))
    elif source == "example":
        path = example_corpus
        for n, row in enumerate(_read_jsonl(path), 1):
            out.append((_field(row, "id", path, n), _field(row, "text", path, n)))
    else:
        raise SynthError(f"unknown passage source {source!r}", hint=f"one of {', '.join(SOURCES)}")
    seen: set[str] = set()
    unique = []
    for doc_id, text in out:
        key = " ".join(text.split())
        if key and key not in seen:
            seen.add(key)
            unique.append((doc_id, text))
    return unique


def unlabelled_passages(
    data_root: Path,
    *,
    seed: int,
    limit_per_source: int | None = None,
    sources: Sequence[str] = SOURCES,
    example_corpus: Path = EXAMPLE_CORPUS,
) -> list[tuple[str, str, str]]:
    """``(source, doc_id, text)`` of the unlabelled passages, each source seeded-shuffled and cut to
    ``limit_per_source``. ``data_root`` is the shared data folder (``../shared/data``)."""
    if not data_root.is_dir():
        raise SynthError(f"{data_root}: data folder not found")
    out: list[tuple[str, str, str]] = []
    for source in sources:
        docs = _source_passages(source, data_root, example_corpus)
        order = list(range(len(docs)))
        random.Random(f"{seed}:{source}").shuffle(order)
        if limit_per_source is not None:
            order = order[:limit_per_source]
        out.extend((source, docs[i][0], docs[i][1]) for i in order)
    return out


# ---------------------------------------------------------------------------------------------------
# Mentions: names, acronyms, numbers, dates


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    text: str
    kind: str  # "name", "acronym", "int", "decimal", "percent", "numword", "year", "month"

    @property
    def family(self) -> str:
        """The edit family: entity, number or date."""
        if self.kind in ("name", "acronym"):
            return "entity"
        if self.kind in ("year", "month"):
            return "date"
        return "number"


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_WEEKDAYS = frozenset(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
_NUMWORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
             "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "billion")
_NUMWORD_VALUE = {w: i for i, w in enumerate(_NUMWORDS[:11], start=2)}
_SPAN_STOP = frozenset(
    str.split(
        """The A An This That These Those In On At Of For With By From To And Or But As It Its Their Our We
    He She They His Her Is Are Was Were If When While After Before Although However Here There Both Each
    All Some Most No Not I"""
    )
)
_CONNECT = frozenset(["of", "de", "la", "von", "van", "the", "and", "&"])
_NAME = re.compile(r"\b[A-Z][a-zA-Z'’-]*[a-z][a-zA-Z'’-]*(?:\s+(?:of|de|la|von|van|the|and|&)?\s*[A-Z][a-zA-Z'’-]+)*")
_ACRONYM = re.compile(r"\b[A-Z][A-Z0-9-]*[A-Z0-9](?:s)?\b")
_PERCENT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?%")
_DECIMAL = re.compile(r"(?<![\w.,])\d+\.\d+(?![\w.]*\d)")
_INT = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?![\w,.]*\d)|(?<![\w.,])\d+(?![\w.,]*\d)")
_YEAR = re.compile(r"(?<![\w.,])(1[6-9]\d\d|20[0-4]\d)(?![\w.,]*\d)")
_MONTH = re.compile(r"\b(" + "|".join(_MONTHS) + r")\b")
_NUMWORD = re.compile(r"\b(" + "|".join(_NUMWORDS) + r")\b", re.IGNORECASE)


def _overlaps(a: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(a[0] < b[1] and b[0] < a[1] for b in taken)


def mentions(sentence: str) -> list[Mention]:
    """Names (capitalised spans that are not the sentence's first word), acronyms, numbers (integers,
    decimals, percentages, number words) and dates (years, months) of a sentence, non-overlapping,
    in order. A heuristic: no NER model is installed."""
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, kind: str) -> None:
        if start < end and not _overlaps((start, end), taken):
            taken.append((start, end))
            found.append(Mention(start, end, sentence[start:end], kind))

    for m in _PERCENT.finditer(sentence):
        add(m.start(), m.end(), "percent")
    for m in _YEAR.finditer(sentence):
        add(m.start(), m.end(), "year")
    for m in _MONTH.finditer(sentence):
        add(m.start(), m.end(), "month")
    for m in _DECIMAL.finditer(sentence):
        add(m.start(), m.end(), "decimal")
    for m in _INT.finditer(sentence):
        add(m.start(), m.end(), "int")
    for m in _NUMWORD.finditer(sentence):
        add(m.start(), m.end(), "numword")
    first_word = re.match(r"\W*\w+", sentence)
    first_end = first_word.end() if first_word else 0
    for m in _ACRONYM.finditer(sentence):
        text = m.group(0)
        if len(text.rstrip("s")) >= 2 and not text.isdigit() and not re.fullmatch(r"[IVXL]+", text):
            add(m.start(), m.end(), "acronym")
    for m in _NAME.finditer(sentence):
        start, text = m.start(), m.group(0)
        words = text.split()
        # strip leading/trailing function words ("The United States", "Paris and")
        while words and (words[0] in _SPAN_STOP or words[0].lower() in _CONNECT):
            start += len(words[0])
            start += len(sentence[start:]) - len(sentence[start:].lstrip())
            words = words[1:]
        while words and words[-1].lower() in _CONNECT:
            words = words[:-1]
        if not words:
            continue
        if start < first_end and len(words) == 1:
            continue  # the sentence's first word: capitalised for grammar, not a name
        if len(words) == 1 and (words[0] in _WEEKDAYS or words[0] in _MONTHS):
            continue
        end = start + len(" ".join(words)) if sentence[start:].startswith(" ".join(words)) else start + len(words[0])
        text = sentence[start:end]
        text = re.sub(r"(?:'s|’s|['’])$", "", text)
        add(start, start + len(text), "name")
    found.sort(key=lambda x: x.start)
    return found


def _kind_pool(texts: Iterable[str]) -> dict[str, list[str]]:
    """Distinct mention texts by kind, in first-seen order."""
    pool: dict[str, list[str]] = {}
    for text in texts:
        for sent in split_sentences(text):
            for m in mentions(sent):
                lst = pool.setdefault(m.kind, [])
                if m.text not in lst:
                    lst.append(m.text)
    return pool


# ---------------------------------------------------------------------------------------------------
# Edits


def _norm(text: str) -> str:
    return re.sub(r"[\s,]+", "", text.lower()).rstrip("%").replace("percent", "")


def _replace(sentence: str, m: Mention, new: str) -> str:
    return sentence[: m.start] + new + sentence[m.end :]


def _perturb_number(m: Mention, rng: random.Random) -> str | None:
    text = m.text
    if m.kind == "numword":
        low = text.lower()
        if low in _NUMWORD_VALUE:
            options = [w for w, v in _NUMWORD_VALUE.items() if v != _NUMWORD_VALUE[low]]
        else:
            options = [w for w in ("hundred", "thousand", "million", "billion") if w != low]
        new = rng.choice(options)
        return new.capitalize() if text[0].isupper() else new
    if m.kind == "percent":
        num = re.match(r"\d+(?:\.\d+)?", text)
        assert num is not None
        value = float(num.group(0))
        new_value = value + rng.choice([-7, -5, -3, 3, 5, 9]) if value > 10 else value * rng.choice([2, 3]) + 1
        digits = len(num.group(0).split(".")[1]) if "." in num.group(0) else 0
        return f"{max(new_value, 0.0):.{digits}f}" + text[num.end() :]
    if m.kind == "decimal":
        whole, frac = text.split(".")
        chars = list(frac)
        pos = rng.randrange(len(chars))
        chars[pos] = rng.choice([d for d in "123456789" if d != chars[pos]])
        return whole + "." + "".join(chars)
    if m.kind == "int":
        value = int(text.replace(",", ""))
        if value == 0:
            new_int = rng.choice([1, 2, 5])
        elif value < 10:
            new_int = rng.choice([v for v in (value - 1, value + 1, value + 2, value * 2) if v > 0 and v != value])
        else:
            new_int = value + rng.choice([-1, 1]) * max(1, round(value * rng.choice([0.1, 0.2, 0.5])))
            new_int = max(new_int, 1)
        return f"{new_int:,}" if "," in text else str(new_int)
    if m.kind == "year":
        return str(int(text) + rng.choice([-3, -2, -1, 1, 2, 3]))
    if m.kind == "month":
        return rng.choice([x for x in _MONTHS if x != text])
    return None


def _value_edits(sentence: str, doc_pool: dict[str, list[str]], source_pool: dict[str, list[str]],
                 rng: random.Random) -> list[tuple[str, str, str]]:
    """Entity / number / date replacements: another mention of the same kind from the document, else
    from the source (names) or a perturbation (numbers, dates)."""
    out = []
    sent_texts = {m.text.lower() for m in mentions(sentence)}
    for m in mentions(sentence):
        family = m.family
        candidates = [t for t in doc_pool.get(m.kind, []) if _norm(t) != _norm(m.text) and t.lower() not in sent_texts]
        origin = "document"
        if family == "entity":
            if not candidates:
                pool = source_pool.get(m.kind, [])
                draws = [pool[rng.randrange(len(pool))] for _ in range(8)] if pool else []
                candidates = [t for t in draws if _norm(t) != _norm(m.text) and t.lower() not in sent_texts]
                origin = "source"
            if not candidates:
                continue
            new = rng.choice(candidates)
        else:
            if candidates and rng.random() < 0.7:
                new = rng.choice(candidates)
            else:
                perturbed = _perturb_number(m, rng)
                if perturbed is None or _norm(perturbed) == _norm(m.text):
                    continue
                new, origin = perturbed, "perturbed"
        out.append((family, _replace(sentence, m, new), f"{m.text!r} -> {new!r} ({m.kind}, {origin})"))
    return out


def _swap_edits(sentence: str) -> list[tuple[str, str, str]]:
    """Two names (or two numbers of the same form) of the sentence exchanged."""
    ms = mentions(sentence)
    out = []
    for i, a in enumerate(ms):
        for b in ms[i + 1 :]:
            same = a.kind == b.kind and a.family in ("entity", "number")
            if not same or a.text.lower() == b.text.lower() or _norm(a.text) == _norm(b.text):
                continue
            new = sentence[: a.start] + b.text + sentence[a.end : b.start] + a.text + sentence[b.end :]
            out.append(("swap", new, f"{a.text!r} <-> {b.text!r}"))
    return out


_AUX = re.compile(r"\b(is|are|was|were|can|could|will|would|should|may|might|must)\b(?!\s+(?:not|no|never)\b)")
_PERFECT = re.compile(r"\b(has|have|had)\b(?=\s+(?:been|\w+ed|\w+en)\b)(?!\s+not\b)")
_NEGATED = [
    (re.compile(r"\b(is|are|was|were|can|could|will|would|should|may|might|must|has|have|had|does|do|did) not\b"),
     lambda m: m.group(1), "remove 'not'"),
    (re.compile(r"\bcannot\b"), lambda m: "can", "'cannot' -> 'can'"),
    (re.compile(r"\b(is|are|was|were|does|do|did|has|have|had|could|would|should)n['’]t\b"),
     lambda m: m.group(1), "remove n't"),
    (re.compile(r"\b(ca|wo)n['’]t\b"), lambda m: {"ca": "can", "wo": "will"}[m.group(1)], "remove n't"),
    (re.compile(r"\bnever\s+"), lambda m: "", "remove 'never'"),
    (re.compile(r"\bno\s+(?=[a-z])"), lambda m: "some ", "'no' -> 'some'"),
]


def _negation_edits(sentence: str) -> list[tuple[str, str, str]]:
    out = []
    for pattern in (_AUX, _PERFECT):
        for m in pattern.finditer(sentence):
            new = sentence[: m.end()] + " not" + sentence[m.end() :]
            out.append(("negation", new, f"insert 'not' after {m.group(0)!r}"))
    for pattern, repl, what in _NEGATED:
        for m in pattern.finditer(sentence):
            new = sentence[: m.start()] + repl(m) + sentence[m.end() :]
            out.append(("negation", new, what))
    return out


_QUANTIFIERS = {
    "all": "some", "some": "all", "most": "few", "few": "most", "many": "few", "every": "no", "none": "all",
    "more": "less", "less": "more", "fewer": "more", "majority": "minority", "minority": "majority",
    "always": "rarely", "often": "rarely", "rarely": "often", "only": "also",
}
def _antonym_table() -> dict[str, str]:
    """Word -> antonym, inflected forms listed out (a small fixed list; one-way where the reverse is ambiguous)."""
    two_way = [
        ("increase", "decrease"), ("increased", "decreased"), ("increases", "decreases"),
        ("increasing", "decreasing"), ("higher", "lower"), ("high", "low"), ("larger", "smaller"),
        ("large", "small"), ("positive", "negative"), ("positively", "negatively"), ("before", "after"),
        ("maximum", "minimum"), ("earlier", "later"), ("older", "younger"), ("improve", "worsen"),
        ("improved", "worsened"), ("improves", "worsens"), ("upregulated", "downregulated"),
        ("up-regulated", "down-regulated"), ("won", "lost"), ("rose", "fell"), ("rise", "fall"),
        ("strong", "weak"), ("stronger", "weaker"), ("longer", "shorter"), ("north", "south"),
        ("east", "west"), ("inhibits", "promotes"), ("inhibited", "promoted"), ("inhibit", "promote"),
        ("success", "failure"), ("successful", "unsuccessful"), ("first", "last"), ("early", "late"),
        ("accepted", "rejected"), ("significant", "insignificant"), ("included", "excluded"),
        ("presence", "absence"), ("present", "absent"), ("common", "rare"), ("benign", "malignant"),
        ("sensitive", "resistant"), ("agonist", "antagonist"),
    ]
    one_way = [
        ("greater", "smaller"), ("reduce", "increase"), ("reduced", "increased"), ("reduces", "increases"),
        ("reducing", "increasing"), ("reduction", "increase"), ("enhanced", "reduced"), ("elevated", "reduced"),
        ("gain", "loss"), ("gained", "lost"), ("decline", "rise"), ("declined", "rose"),
    ]
    table = {a: b for a, b in two_way} | {b: a for a, b in two_way}
    table.update({a: b for a, b in one_way})
    return table


_ANTONYM = _antonym_table()
_WORD = re.compile(r"[A-Za-z][A-Za-z-]*")


def _match_case(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    return new.capitalize() if old[0].isupper() else new


def _word_edits(sentence: str) -> list[tuple[str, str, str]]:
    """Quantifier changes and antonyms from small fixed lists."""
    out = []
    for m in _WORD.finditer(sentence):
        word = m.group(0)
        low = word.lower()
        table, kind = (_QUANTIFIERS, "quantifier") if low in _QUANTIFIERS else (_ANTONYM, "antonym")
        if low in table:
            new = _match_case(table[low], word)
            out.append((kind, sentence[: m.start()] + new + sentence[m.end() :], f"{word!r} -> {new!r}"))
    return out


def candidate_edits(sentence: str, doc_pool: dict[str, list[str]], source_pool: dict[str, list[str]],
                    rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """Every applicable edit of ``sentence`` by kind: ``{kind: [(edited sentence, detail), ...]}``."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    edits = (_value_edits(sentence, doc_pool, source_pool, rng) + _negation_edits(sentence)
             + _word_edits(sentence) + _swap_edits(sentence))
    for kind, new, detail in edits:
        if new != sentence:
            by_kind.setdefault(kind, []).append((new, detail))
    return by_kind


# ---------------------------------------------------------------------------------------------------
# Meaning-preserving rewrites (positives, and the base of some negatives)

_PAREN = re.compile(r"\s*\([^()]{1,80}\)")
_TRAILING = re.compile(r",\s+(?:which|while|whereas|although|though|but|as well as|including|and|with)\b[^,;]*[.!?]?$")
_LEADING = re.compile(r"^(?:However|Moreover|Furthermore|In addition|Additionally|Therefore|Thus|Consequently|"
                      r"In contrast|Overall|Finally|Notably|Importantly|Similarly|Also|Here|Indeed|In conclusion|"
                      r"In summary|Together),\s+")
_SMALL = {str(v): w for w, v in _NUMWORD_VALUE.items()}


def _rewrites(sentence: str) -> list[tuple[str, str, str]]:
    out = []
    for m in _PAREN.finditer(sentence):
        new = sentence[: m.start()] + sentence[m.end() :]
        out.append(("drop_parenthetical", new, f"dropped {m.group(0).strip()!r}"))
    m2 = _TRAILING.search(sentence)
    if m2 and len(sentence[: m2.start()].split()) >= MIN_WORDS:
        end = sentence[-1] if sentence[-1] in ".!?" else ""
        out.append(("drop_clause", sentence[: m2.start()] + end, f"dropped {m2.group(0).strip()!r}"))
    m3 = _LEADING.match(sentence)
    if m3:
        rest = sentence[m3.end() :]
        out.append(("drop_clause", rest[:1].upper() + rest[1:], f"dropped {m3.group(0).strip()!r}"))
    for men in mentions(sentence):
        if men.kind == "percent":
            out.append(("number_format", _replace(sentence, men, men.text.rstrip("%").rstrip() + " percent"),
                        f"{men.text!r} -> 'percent'"))
        elif men.kind == "int" and "," in men.text:
            out.append(("number_format", _replace(sentence, men, men.text.replace(",", "")),
                        f"{men.text!r} without commas"))
        elif men.kind == "int" and men.text in _SMALL and men.start > 0:
            out.append(("number_format", _replace(sentence, men, _SMALL[men.text]),
                        f"{men.text!r} -> {_SMALL[men.text]!r}"))
    m4 = re.search(r"(\d+(?:\.\d+)?) percent\b", sentence)
    if m4:
        out.append(("number_format", sentence[: m4.start()] + m4.group(1) + "%" + sentence[m4.end() :],
                    "'percent' -> '%'"))
    return [(k, n, d) for k, n, d in out if n != sentence and len(n.split()) >= MIN_WORDS]


# ---------------------------------------------------------------------------------------------------
# Pairs


def _usable(sentence: str) -> bool:
    words = sentence.split()
    if not (MIN_WORDS <= len(words) <= MAX_WORDS):
        return False
    if not sentence[0].isalpha() or sentence.count("(") != sentence.count(")"):
        return False
    return sum(ch.isalpha() for ch in sentence) >= 0.6 * len(sentence)


def synth_pairs(
    passages: Iterable[tuple[str, str, str]],
    *,
    seed: int,
    per_passage: int = 2,
    transform_rate: float = 0.5,
) -> list[SynthPair]:
    """Labelled pairs from ``(source, doc_id, text)`` passages: per passage, ``per_passage // 2``
    sentences (at least one), each giving one positive and one negative from the same sentence.

    Deterministic: a passage's pairs depend only on ``seed``, the passage and the other passages of its
    source (the fallback pool of names), not on the order of sources."""
    if per_passage < 1:
        raise SynthError(f"per_passage must be >= 1, got {per_passage}")
    if not 0.0 <= transform_rate <= 1.0:
        raise SynthError(f"transform_rate must be in [0, 1], got {transform_rate}")
    items = list(passages)
    by_source: dict[str, list[str]] = {}
    for source, _doc, text in items:
        by_source.setdefault(source, []).append(text)
    source_pools = {s: _kind_pool(sorted(set(texts))) for s, texts in by_source.items()}
    n_sentences = max(1, per_passage // 2)
    out: list[SynthPair] = []
    for source, doc_id, text in items:
        rng = random.Random(f"{seed}:{source}:{doc_id}:{len(text)}")
        sentences = [s for s in split_sentences(text) if _usable(s)]
        if not sentences:
            continue
        doc_pool = _kind_pool([text])
        order = list(range(len(sentences)))
        rng.shuffle(order)
        made = 0
        for i in order:
            if made >= n_sentences:
                break
            pair = _pair_for(sentences[i], text, source, doc_id, doc_pool, source_pools[source], rng, transform_rate)
            if pair is not None:
                out.extend(pair)
                made += 1
    return out


def _pair_for(sentence: str, text: str, source: str, doc_id: str, doc_pool: dict[str, list[str]],
              source_pool: dict[str, list[str]], rng: random.Random,
              transform_rate: float) -> tuple[SynthPair, SynthPair] | None:
    # negative: maybe rewrite first (so a rewrite is no cue), then one edit
    base, base_note = sentence, ""
    rewrites = _rewrites(sentence)
    if rewrites and rng.random() < transform_rate:
        _k, base, base_note = rng.choice(rewrites)
        base_note = f"; after rewrite: {base_note}"
    by_kind = candidate_edits(base, doc_pool, source_pool, rng)
    if not by_kind and base != sentence:
        base, base_note = sentence, ""
        by_kind = candidate_edits(base, doc_pool, source_pool, rng)
    kinds = [k for k in EDIT_KINDS if k in by_kind]
    rng.shuffle(kinds)
    negative: SynthPair | None = None
    for kind in kinds:
        options = [(n, d) for n, d in by_kind[kind] if n != sentence and n not in text]
        if options:
            new, detail = rng.choice(options)
            negative = SynthPair(new, text, 0, kind, source, doc_id, detail + base_note)
            break
    if negative is None:
        return None
    assert negative.claim != sentence and negative.claim not in text
    # positive: the sentence, or a meaning-preserving rewrite of it
    if rewrites and rng.random() < transform_rate:
        kind, new, detail = rng.choice(rewrites)
        positive = SynthPair(new, text, 1, kind, source, doc_id, detail)
    else:
        positive = SynthPair(sentence, text, 1, "none", source, doc_id, "verbatim sentence")
    return positive, negative
