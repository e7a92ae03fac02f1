"""The FactCC-style minimal-edit generator: deterministic, every negative a real edit, balanced, every kind."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.grounding.claims import split_sentences
from harness.grounding.synth import (
    EDIT_KINDS,
    SynthError,
    SynthPair,
    candidate_edits,
    mentions,
    synth_pairs,
    unlabelled_passages,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

FIXTURE = (
    "The Eiffel Tower in Paris was completed in March 1889 by Gustave Eiffel and his company. "
    "It is 330 metres tall and weighed 7,300 tonnes, about 12% more than planned. "
    "Visitors to the tower increased after the exhibition, and most of them came from France. "
    "The tower was not popular with all artists of the time (Maupassant disliked it). "
    "Lyon and Marseille never built a similar tower, while Paris kept three of its exhibition halls."
)


def _passages(n: int = 6) -> list[tuple[str, str, str]]:
    return [("fixture", f"d{i}", FIXTURE) for i in range(n)]


def test_mentions_types() -> None:
    found = {(m.text, m.kind) for m in mentions(split_sentences(FIXTURE)[0])}
    assert ("Paris", "name") in found and ("Gustave Eiffel", "name") in found
    assert ("1889", "year") in found and ("March", "month") in found
    assert not any(text == "The" for text, _ in found)  # sentence-initial word is not a name
    second = {(m.text, m.kind) for m in mentions(split_sentences(FIXTURE)[1])}
    assert {("330", "int"), ("7,300", "int"), ("12%", "percent")} <= second


def test_every_edit_kind_applies_to_fixture() -> None:
    import random

    rng = random.Random(0)
    kinds: set[str] = set()
    pool = {"name": ["Paris", "Lyon", "Gustave Eiffel", "France"], "year": ["1889", "1900"]}
    for sentence in split_sentences(FIXTURE):
        for kind, edits in candidate_edits(sentence, pool, pool, rng).items():
            kinds.add(kind)
            for new, _detail in edits:
                assert new != sentence
    assert kinds == set(EDIT_KINDS)


def test_fixture_pairs_cover_kinds_and_are_valid() -> None:
    pairs = synth_pairs(_passages(40), seed=3, per_passage=4)
    kinds = Counter(p.edit for p in pairs if p.label == 0)
    assert set(kinds) == set(EDIT_KINDS), kinds
    assert any(p.label == 1 and p.edit != "none" for p in pairs)  # meaning-preserving rewrites occur
    assert any(p.label == 1 and p.edit == "none" for p in pairs)
    for p in pairs:
        assert p.context == FIXTURE
        if p.label == 0:
            assert p.claim not in p.context
        elif p.edit == "none":
            assert p.claim in split_sentences(p.context)


def test_entity_swap_prefers_same_document() -> None:
    pairs = synth_pairs(_passages(40), seed=5, per_passage=4)
    entity = [p for p in pairs if p.edit == "entity"]
    assert entity and all("(name, document)" in p.detail or "(acronym, document)" in p.detail for p in entity)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), per=st.sampled_from([1, 2, 4]), n=st.integers(1, 8))
def test_properties(seed: int, per: int, n: int) -> None:
    passages = _passages(n)
    first = synth_pairs(passages, seed=seed, per_passage=per)
    assert first == synth_pairs(passages, seed=seed, per_passage=per)  # deterministic under a seed
    labels = Counter(p.label for p in first)
    assert labels[0] == labels[1]  # one positive and one negative per chosen sentence
    assert len(first) >= 2 * n
    for p in first:
        assert isinstance(p, SynthPair) and p.label in (0, 1)
        if p.label == 0:
            assert p.claim not in p.context and p.edit in EDIT_KINDS


def test_seed_changes_output() -> None:
    assert synth_pairs(_passages(8), seed=1) != synth_pairs(_passages(8), seed=2)


def test_bad_arguments_fail_closed(tmp_path: Path) -> None:
    with pytest.raises(SynthError):
        synth_pairs(_passages(1), seed=0, per_passage=0)
    with pytest.raises(SynthError):
        unlabelled_passages(tmp_path / "missing", seed=0)
    (tmp_path / "scifact").mkdir()
    (tmp_path / "scifact" / "corpus.jsonl").write_text('{"_id": "1", "text": "ok"}\nnot json\n', encoding="utf-8")
    with pytest.raises(SynthError, match=r"corpus\.jsonl:2"):
        unlabelled_passages(tmp_path, seed=0, sources=["scifact"])


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_real_sources_balanced_and_deterministic() -> None:
    passages = unlabelled_passages(DATA, seed=0, limit_per_source=40)
    assert {s for s, _, _ in passages} == {"scifact", "hotpotqa", "amnesty_qa", "example"}
    assert passages == unlabelled_passages(DATA, seed=0, limit_per_source=40)
    pairs = synth_pairs(passages, seed=0)
    by = Counter((p.source, p.label) for p in pairs)
    for source in ("scifact", "hotpotqa", "example"):
        assert by[(source, 1)] == by[(source, 0)] >= 30
    assert all(p.claim not in p.context for p in pairs if p.label == 0)
