"""Answer normalization shared by the answer scorers.

SQuAD/HotpotQA normalization (Rajpurkar et al., 2016; Yang et al., 2018): lower-case, remove
punctuation, remove the articles a/an/the, collapse whitespace.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_NO_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_NO_PUNCT)).split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> tuple[float, float, float]:
    """HotpotQA's official F1: (f1, precision, recall); yes/no/noanswer must match exactly."""
    return token_f1_normalized(normalize_answer(prediction), normalize_answer(truth))


def token_f1_normalized(pred: str, gold: str) -> tuple[float, float, float]:
    """:func:`token_f1` on already normalized strings (normalize each answer once per case)."""
    special = ("yes", "no", "noanswer")
    if (pred in special or gold in special) and pred != gold:
        return 0.0, 0.0, 0.0
    p_toks, g_toks = pred.split(), gold.split()
    common = Counter(p_toks) & Counter(g_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0, 0.0, 0.0
    precision, recall = same / len(p_toks), same / len(g_toks)
    return 2 * precision * recall / (precision + recall), precision, recall


def contains(haystack: str, needle: str) -> bool:
    """Normalized, token-boundary containment ("8 GB" is in "needs 8 GB of RAM", not in "18 GB")."""
    return contains_normalized(normalize_answer(haystack), needle)


def contains_normalized(haystack_norm: str, needle: str) -> bool:
    """:func:`contains` with the haystack already normalized."""
    n = normalize_answer(needle)
    return bool(n) and f" {n} " in f" {haystack_norm} "
