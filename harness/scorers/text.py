"""Answer normalization shared by the answer scorers.

SQuAD/HotpotQA normalization (Rajpurkar et al., 2016; Yang et al., 2018): lower-case, remove
punctuation, remove the articles a/an/the, collapse whitespace.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> tuple[float, float, float]:
    """HotpotQA's official F1: (f1, precision, recall); yes/no/noanswer must match exactly."""
    pred, gold = normalize_answer(prediction), normalize_answer(truth)
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
    n = normalize_answer(needle)
    return bool(n) and f" {n} " in f" {normalize_answer(haystack)} "
