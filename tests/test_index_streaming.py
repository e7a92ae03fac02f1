"""Every index layout is filled a batch at a time from the embedding cache, never from the corpus's vectors held
whole (issue 15). Oracles: FAISS itself (one ``add`` of every vector; or, for the layouts whose bytes depend on
how the vectors are split into adds, the same fixed batches added by hand on one thread) and exact search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import harness.index as index_mod
import harness.pipeline as pipeline
from harness.errors import IntegrityError
from harness.hashing import sha256_json
from harness.index import (
    FILL_RULE,
    IndexStore,
    StoredIndex,
    add_batches,
    batch_exact,
    build_params,
    empty_index,
    fill,
    index_key,
    train_index,
)
from harness.storage import Layout
from tests.test_corpus_store import _recipe_project


@pytest.fixture(autouse=True)
def _no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _bytes(index: Any) -> bytes:
    import faiss

    return bytes(faiss.serialize_index(index).tobytes())


def _factory(f: str) -> dict[str, Any]:
    return {"type": "factory", "metric": "ip", "factory": f}


HNSW = {"type": "hnsw", "metric": "ip", "M": 16, "ef_construction": 40, "ef_search": 64}
EXACT = [_factory("IVF16,PQ8x4fs"), _factory("PQ8x4fs"), _factory("IVF16,PQ8x4fsr"), _factory("IVF16,SQ8"),
         _factory("IVF16,PQ8"), _factory("IVF16,Flat"), {"type": "ivf", "metric": "ip", "nlist": 16, "nprobe": 2},
         {"type": "flat", "metric": "ip"}]
BATCHED = [HNSW, _factory("HNSW16"), _factory("HNSW16,SQ8"), _factory("PCA16,IVF16,Flat"),
           _factory("RR32,IVF16,Flat"), _factory("PCA16,Flat")]


def _threads(n: int) -> Any:
    import faiss

    class Threads:
        def __enter__(self) -> None:
            self.before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(n)

        def __exit__(self, *_: object) -> None:
            faiss.omp_set_num_threads(self.before)

    return Threads()


@pytest.mark.parametrize("recipe", EXACT, ids=lambda r: r.get("factory", r["type"]))
@pytest.mark.parametrize("threads", [1, 2])
def test_appending_layouts_filled_in_any_batches_are_the_index_of_one_add(recipe: dict[str, Any],
                                                                           threads: int) -> None:
    """Fast-scan (IVF and plain PQ), IVF-Flat/PQ/SQ and flat: batched adds (uneven, the last one short) give the
    bytes of one FAISS add, on one thread and on two: their key is unchanged by the fill rule."""
    x = _vectors(3_000, 32, 1)
    assert batch_exact(recipe)
    with _threads(threads):
        one = train_index(empty_index(32, len(x), recipe), x, recipe)
        one.add(x)
        trained = train_index(empty_index(32, len(x), recipe), x, recipe)
        batched = fill(trained, (x[a:a + 700] for a in range(0, len(x), 700)), recipe)
    assert _bytes(batched) == _bytes(one)
    assert "fill" not in _spec_of(recipe)


@pytest.mark.parametrize("recipe", BATCHED, ids=lambda r: r.get("factory", r["type"]))
def test_batch_dependent_layouts_are_filled_in_fixed_batches_on_one_thread(recipe: dict[str, Any],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """HNSW graphs and pre-transforms: their bytes depend on the adds' batches (and a PCA's on the threads), so
    they are filled in ADD_BATCH adds on one thread, whatever batches the vectors arrive in and however many
    threads FAISS has: the same bytes as those fixed adds done by hand, and not those of one add."""
    import faiss

    monkeypatch.setattr(index_mod, "ADD_BATCH", 500)
    x = _vectors(2_600, 32, 2)
    assert not batch_exact(recipe)
    builds = []
    for threads, step in ((2, 2_600), (2, 333), (1, 1_000), (2, 7)):
        with _threads(threads):
            index = train_index(empty_index(32, len(x), recipe), x, recipe)
            builds.append(_bytes(fill(index, (x[a:a + step] for a in range(0, len(x), step)), recipe)))
            assert faiss.omp_get_max_threads() == threads  # given back
    assert len(set(builds)) == 1
    with _threads(1):
        by_hand = empty_index(32, len(x), recipe)
        if not by_hand.is_trained:
            by_hand.train(x)
        for a in range(0, len(x), 500):
            by_hand.add(x[a:a + 500])
        assert builds[0] == _bytes(by_hand)
    if recipe in (HNSW, BATCHED[1]):
        with _threads(1):
            one = empty_index(32, len(x), recipe)
            one.add(x)
        assert _bytes(one) != builds[0]  # why the rule is in the key: one add builds another graph


def test_add_batches_cuts_any_stream_into_fixed_batches() -> None:
    x = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
    for cuts in ([23], [1] * 23, [5, 0, 7, 11], [10, 10, 3]):
        parts, pos = [], 0
        for c in cuts:
            parts.append(x[pos:pos + c])
            pos += c
        out = list(add_batches(parts, 10))
        assert [len(b) for b in out] == [10, 10, 3]
        assert np.array_equal(np.concatenate(out), x)
    assert list(add_batches([], 10)) == []


def _spec_of(recipe: dict[str, Any]) -> dict[str, Any]:
    key = index_key("c", "m", recipe, {"f": 1})
    old = {"v": 1, "corpus": "c", "model": "m", "recipe": build_params(recipe), "doc_text": {"f": 1}}
    if recipe["type"] in ("ivf", "factory"):
        old["train"] = index_mod.TRAIN_RULE
    return {} if key == sha256_json(old) else {"fill": FILL_RULE}


def test_a_batch_dependent_layout_has_a_new_key_and_an_old_index_is_refused(tmp_path: Path) -> None:
    """The key of a layout filled by the rule names it (an index one add filled, stored before, is never found
    under it); one stored without the rule under such a key anyway is damaged, not loaded as the new one."""
    for recipe in BATCHED:
        assert _spec_of(recipe) == {"fill": FILL_RULE}
    for recipe in EXACT:
        assert _spec_of(recipe) == {}
    store = IndexStore(tmp_path)
    x = _vectors(300, 16, 3)
    stored = store.save("k", x, [f"d{i}" for i in range(300)], HNSW, {})
    assert stored.meta["format"] == 2 and stored.meta["fill"] == FILL_RULE
    assert store.load("k").meta["fill"] == FILL_RULE
    meta_path = tmp_path / "k" / "meta.json"
    import json

    meta = json.loads(meta_path.read_text())
    meta["format"] = 1
    del meta["fill"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="filled by rule 'one add'"):
        store.load("k")
    meta["format"] = 9
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="unknown metadata format 9"):
        store.load("k")


def _recall(index: Any, x: np.ndarray, q: np.ndarray, k: int) -> float:
    import faiss

    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, want = exact.search(q, k)
    _, got = index.search(q, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got.tolist(), want.tolist(), strict=True)]))


def test_hnsw_in_fixed_batches_searches_as_well_as_one_add(monkeypatch: pytest.MonkeyPatch) -> None:
    """recall@10 against exact search on seeded data: the graph built in fixed batches (10 of them) is within 0.02
    of the graph one add builds, both above 0.9."""
    monkeypatch.setattr(index_mod, "ADD_BATCH", 500)
    x, q = _vectors(5_000, 32, 4), _vectors(200, 32, 5)
    with _threads(1):
        one = empty_index(32, len(x), HNSW)
        one.add(x)
    batched = fill(empty_index(32, len(x), HNSW), (x,), HNSW)
    for index in (one, batched):
        index.hnsw.efSearch = HNSW["ef_search"]
    r_one, r_batched = _recall(one, x, q, 10), _recall(batched, x, q, 10)
    assert r_one > 0.9 and r_batched > 0.9
    assert abs(r_one - r_batched) <= 0.02, (r_one, r_batched)


@pytest.mark.parametrize("recipe", ['type = "hnsw"\nM = 8\nef_construction = 40\nef_search = 32\n',
                                    'type = "factory"\nfactory = "HNSW8"\n',
                                    'type = "factory"\nfactory = "IVF4,PQ8x4fs"\nnprobe = 2\n',
                                    'type = "factory"\nfactory = "PCA16,IVF4,Flat"\nnprobe = 2\n'])
def test_a_run_streams_every_layout_and_builds_the_same_index_whatever_the_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recipe: str) -> None:
    """Through the real stage: the corpus's vectors are never gathered (``_corpus_vectors`` refuses), the index
    is the same bytes with 160 documents in one embedding batch or in 7, is the one-array build
    (:func:`harness.index._build_faiss` over the cached vectors), and the runs agree."""
    monkeypatch.setattr(index_mod, "ADD_BATCH", 50)  # 4 adds for the batch-dependent layouts
    monkeypatch.setattr(index_mod, "TRAIN_MIN_POINTS", 100)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus's vectors were gathered whole")

    monkeypatch.setattr("harness.retrieve.RetrievalStage._corpus_vectors", refuse)
    one_manifest = _recipe_project(tmp_path / "one", recipe)
    one = pipeline.run_manifest(one_manifest).run
    monkeypatch.setattr("harness.retrieve.CORPUS_BATCH", 24)
    manifest = _recipe_project(tmp_path / "seven", recipe)
    seven = pipeline.run_manifest(manifest).run
    (a,) = Layout.for_manifest(one_manifest).index_store.iterdir()
    (b,) = Layout.for_manifest(manifest).index_store.iterdir()
    assert a.name == b.name and (a / "index.faiss").read_bytes() == (b / "index.faiss").read_bytes()
    assert [o.ranking for o in seven.outputs] == [o.ranking for o in one.outputs]
    assert seven.environment["index_quality"] == one.environment["index_quality"]
    loaded: StoredIndex = IndexStore(b.parent).load(b.name)
    from harness.embed import HashingEncoder
    from harness.retrieve import RetrieverConfig, doc_text
    from tests.test_corpus_store import _docs

    docs = [d for d in _docs(160)]
    from harness.types import CorpusDoc

    texts = [doc_text(CorpusDoc.model_validate(d), RetrieverConfig()) for d in docs]
    vectors = HashingEncoder(64).encode(texts)
    assert loaded.doc_ids == [d["id"] for d in docs]
    assert _bytes(index_mod._build_faiss(vectors, loaded.meta["recipe"])) == (b / "index.faiss").read_bytes()
