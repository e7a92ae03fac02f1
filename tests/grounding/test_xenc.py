"""The cross-encoder of harness.grounding.xenc: training moves the loss, the stored file round-trips
and leaves the frozen word embeddings out, loading fails closed, logits are deterministic.

All on a tiny model (1 layer, seeded random init, the bundled MiniLM's word embeddings and tokenizer)
so the file runs in seconds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors import safe_open
from safetensors.torch import save

from harness.errors import HarnessError, IntegrityError
from harness.grounding import xenc
from harness.grounding.claims import split_sentences

PASSAGE = (
    "The bridge over the Arno was completed in 1887 by the engineer Carlo Rossi. "
    "It carried trains between Florence and Pisa for ninety years. "
    "A flood damaged its eastern pier in 1966. "
    "The city rebuilt the pier in steel two years later. "
    "Today the bridge is a footpath with a small museum."
)
SUPPORTED = [
    ("The bridge was completed in 1887 by Carlo Rossi.", 1),
    ("A flood damaged the eastern pier in 1966.", 1),
    ("The city rebuilt the pier in steel.", 1),
    ("Today the bridge is a footpath.", 1),
]
EDITED = [
    ("The bridge was completed in 1901 by Carlo Rossi.", 0),
    ("A flood did not damage the eastern pier in 1966.", 0),
    ("The city rebuilt the pier in wood.", 0),
    ("Today the bridge is a motorway.", 0),
]


@dataclass(frozen=True)
class Pair:
    claim: str
    context: str
    label: int
    edit: str
    source: str
    doc_id: str


def _examples() -> list[tuple[str, str, int]]:
    return [(c, PASSAGE, y) for c, y in SUPPORTED + EDITED]


def _tiny(seed: int) -> xenc.CrossEncoder:
    return xenc.new_cross_encoder(seed=seed, num_layers=1, pretrained=False, max_length=48,
                                  config_overrides={"intermediate_size": 128})


@pytest.fixture(scope="module")
def trained() -> tuple[xenc.CrossEncoder, xenc.TrainReport]:
    model = _tiny(0)
    report = xenc.train(model, _examples(), seed=0, epochs=25, batch_size=8, lr=2e-3, warmup=0.05)
    return model, report


def test_loss_falls_and_the_training_pairs_separate(trained: tuple[xenc.CrossEncoder, xenc.TrainReport]) -> None:
    model, report = trained
    assert report.steps == 25
    assert np.mean(report.losses[-5:]) < 0.5 * np.mean(report.losses[:5])
    logits = model.logits([(c, PASSAGE) for c, _ in SUPPORTED + EDITED])
    assert logits[:4].min() > logits[4:].max()


def test_frozen_word_embeddings_stay_the_base_ones(trained: tuple[xenc.CrossEncoder, xenc.TrainReport]) -> None:
    model, _ = trained
    base, _ = xenc._base_word_embeddings(model.base)
    emb = model.net.bert.embeddings.word_embeddings.weight
    assert not emb.requires_grad
    assert bool((emb.detach() == base).all())


def test_save_load_round_trip_gives_equal_logits_without_the_embeddings(
    trained: tuple[xenc.CrossEncoder, xenc.TrainReport], tmp_path: Path
) -> None:
    model, _ = trained
    path = tmp_path / "m.safetensors"
    model.info = {"seed": 0}
    model.save(path)
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
        dtypes = {f.get_slice(k).get_dtype() for k in keys}
    assert not any("word_embeddings" in k for k in keys)
    assert "head.weight" in keys and dtypes == {"F16"}
    assert meta["format"] == xenc.FORMAT and json.loads(meta["info"]) == {"seed": 0}
    # 1 layer + position embeddings in fp16: far below the 23 MB the word embeddings would add alone
    assert path.stat().st_size < 5_000_000
    loaded = xenc.load_cross_encoder(path)
    assert loaded is not None and loaded.num_layers == 1 and loaded.max_length == 48
    pairs = [(c, PASSAGE) for c, _ in SUPPORTED + EDITED] + [("unrelated words here", "")]
    np.testing.assert_allclose(loaded.logits(pairs), model.logits(pairs), rtol=0, atol=1e-6)


def test_absent_file_is_none_and_a_bad_file_fails_closed(
    trained: tuple[xenc.CrossEncoder, xenc.TrainReport], tmp_path: Path
) -> None:
    assert xenc.load_cross_encoder(tmp_path / "nope.safetensors") is None
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    with pytest.raises(HarnessError, match=r"junk\.safetensors"):
        xenc.load_cross_encoder(junk)
    model, _ = trained
    good = tmp_path / "good.safetensors"
    model.save(good)
    with safe_open(str(good), framework="pt") as f:
        meta = dict(f.metadata())
    state = model.stored_state()
    wrong = tmp_path / "wrong.safetensors"
    wrong.write_bytes(save(state, metadata={**meta, "word_embeddings_sha256": "0" * 64}))
    with pytest.raises(IntegrityError, match="word embeddings"):
        xenc.load_cross_encoder(wrong)
    other = tmp_path / "other.safetensors"
    other.write_bytes(save(state, metadata={**meta, "format": "something-else"}))
    with pytest.raises(HarnessError, match="format"):
        xenc.load_cross_encoder(other)


def test_logits_are_deterministic_and_training_is_reproducible() -> None:
    def run() -> np.ndarray:
        model = _tiny(3)
        xenc.train(model, _examples(), seed=3, epochs=3, batch_size=4, lr=1e-3)
        pairs = [(c, PASSAGE) for c, _ in SUPPORTED + EDITED]
        first = model.logits(pairs)
        np.testing.assert_array_equal(first, model.logits(pairs))  # eval mode: no dropout
        # batching does not change a pair's logit beyond float noise
        np.testing.assert_allclose(first, model.logits(pairs, batch_size=3), rtol=0, atol=1e-5)
        return first

    np.testing.assert_allclose(run(), run(), rtol=0, atol=1e-5)


def test_claim_logits_use_each_claims_best_window(trained: tuple[xenc.CrossEncoder, xenc.TrainReport]) -> None:
    model, _ = trained
    passages = [PASSAGE, "Rossi later designed a dam. The dam failed in 1901."]
    window = xenc.best_window("The flood damaged the eastern pier in 1966.", passages)
    assert "A flood damaged its eastern pier in 1966." in window and "dam failed" not in window
    # windows never cross passages; a claim matching the second passage gets a window from it alone
    assert xenc.best_window("The dam failed.", passages) == "Rossi later designed a dam. The dam failed in 1901."
    assert xenc.best_window("anything", []) == ""
    claims = ["The city rebuilt the pier in steel.", "The dam failed in 1901."]
    got = model.claim_logits(claims, passages)
    want = model.logits([(c, xenc.best_window(c, passages)) for c in claims])
    np.testing.assert_array_equal(got, want)
    assert model.claim_logits([], passages).shape == (0,)


def test_training_examples_hold_the_source_sentence_and_documents_stay_apart() -> None:
    pairs = [
        Pair(c, PASSAGE, y, "none" if y else "number", "t", f"d{i % 3}")
        for i, (c, y) in enumerate(SUPPORTED + EDITED)
    ]
    a = xenc.training_examples(pairs, seed=0, no_evidence_rate=1.0)
    assert a == xenc.training_examples(pairs, seed=0, no_evidence_rate=1.0)
    kinds = {e[3] for e in a}
    assert "no_evidence" in kinds
    sentences = split_sentences(PASSAGE)
    source = {SUPPORTED[0][0]: sentences[0], SUPPORTED[1][0]: sentences[2], SUPPORTED[2][0]: sentences[3],
              SUPPORTED[3][0]: sentences[4]}
    for claim, window, label, kind in a:
        if kind == "no_evidence":
            assert label == 0 and source[claim] not in window
    # the supported "A flood damaged ..." claim's window holds its sentence unless it is a no_evidence one
    flood = [e for e in a if e[0].startswith("A flood damaged") and e[3] != "no_evidence"]
    assert flood and all("A flood damaged its eastern pier in 1966." in e[1] for e in flood)
    train_idx, held_idx = xenc.split_documents(pairs, seed=0, held_out=0.34)
    assert held_idx and train_idx and not set(train_idx) & set(held_idx)
    docs = lambda idx: {pairs[i].doc_id for i in idx}  # noqa: E731
    assert not docs(train_idx) & docs(held_idx)


def test_auroc_by_kind_against_the_scipy_oracle() -> None:
    from scipy.stats import mannwhitneyu

    ex = [("c", "w", 1, "none")] * 3 + [("c", "w", 0, "number")] * 2 + [("c", "w", 0, "entity")] * 2
    logits = np.array([3.0, 2.0, 0.5, 1.0, 0.0, 4.0, -1.0])
    table = xenc.auroc_by_kind(ex, logits)
    u = mannwhitneyu(logits[:3], logits[3:5]).statistic
    assert table["number"] == (pytest.approx(u / 6), 2)
    assert table["entity"][1] == 2 and table["pooled"][1] == 7
