"""The hashing encoder's memoized, bincount form gives the vectors of its definition bit for bit: 1 added to
``blake2b(token) mod dim`` per lower-cased ``\\w+`` token, then L2-normalized (the oracle below is that
definition written token by token). Cached vectors and stored indexes depend on it staying so."""

from __future__ import annotations

import hashlib
import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import embed
from harness.embed import HashingEncoder


def definition(texts: list[str], dim: int) -> np.ndarray:
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for tok in re.findall(r"\w+", text.lower()):
            out[row, int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little") % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)


WORDS = st.text(alphabet=st.sampled_from("abcXYZ_09éßİ中 \t\n.,!-"), max_size=60)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(WORDS, max_size=12), dim=st.sampled_from([1, 7, 64, 384]))
def test_vectors_equal_the_definition(texts: list[str], dim: int) -> None:
    encoder = HashingEncoder(dim)
    first = encoder.encode(texts)
    assert first.dtype == np.float32 and first.shape == (len(texts), dim)
    assert np.array_equal(first, definition(texts, dim))
    assert np.array_equal(encoder.encode(texts), first)  # memo warm


def test_repeated_tokens_and_a_full_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed, "_BUCKETS_MAX", 3)  # emptied again and again
    texts = ["the the the cat", "", "a b c d e f g a b c", "x " * 5000]
    encoder = HashingEncoder(16)
    assert np.array_equal(encoder.encode(texts), definition(texts, 16))
    assert len(encoder._buckets) <= 3
    clone = pickle.loads(pickle.dumps(encoder))  # what a Ray worker receives: the dimension, not the memo
    assert clone.dim == 16 and len(clone._buckets) == 0
    assert np.array_equal(clone.encode(texts), definition(texts, 16))
