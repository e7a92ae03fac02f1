"""FAISS indexes built from a recipe, stored content-addressed, checked before loading.

An index's key is the hash of (corpus pin, model pin, recipe, document-text settings): exactly what
determines its content. It is stored under that key with its doc-id map and build metadata; the
metadata records the sha256 of both files and is written last, so a half-built index is never
found, and a corrupted or truncated file is reported before FAISS reads it.

Building is split so that an engine can spread it: :func:`empty_index` (the recipe's FAISS layout),
:func:`train_index` (on :func:`train_sample`, a seeded sample fixed by the corpus size and the recipe,
the same whichever engine trains), then adding vectors in document order, here or by shards merged in
order (:func:`merge_shards`): the index, and so its key, does not depend on where it was built. Vectors are
added a batch at a time as they stream from the embedding cache (:func:`fill`); a layout whose bytes depend on
how its vectors are split into adds (HNSW, pre-transforms: :func:`batch_exact` false) is filled in the fixed
batches of :data:`FILL_RULE` on one thread, a rule named in its key and in its stored metadata.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError, IntegrityError, RecipeError
from harness.hashing import sha256_file, sha256_json
from harness.storage import atomic_write_bytes, atomic_write_json, atomic_writer

RECIPE_TYPES = ("flat", "hnsw", "ivf", "factory")
_RECIPE_KEYS = {
    "flat": {"type", "metric"},
    "hnsw": {"type", "metric", "M", "ef_construction", "ef_search"},
    "ivf": {"type", "metric", "nlist", "nprobe"},
    "factory": {"type", "metric", "factory", "nprobe", "ef_search"},
}


# (default, lowest, highest) of each integer knob; FAISS aborts the process or exhausts memory outside them.
_INT_BOUNDS: dict[str, tuple[int, int, int]] = {
    "M": (32, 2, 512),
    "ef_construction": (200, 1, 1 << 16),
    "ef_search": (128, 1, 1 << 16),
    "nlist": (100, 1, 1 << 20),
    "nprobe": (10, 1, 1 << 20),
}
_FACTORY_MAX_NUMBER = 1 << 20
"""Largest number a factory string may hold (IVF lists, PQ sub-quantizers, HNSW links): bounded memory."""


def _bounded_int(recipe: dict[str, Any], key: str) -> int:
    default, lo, hi = _INT_BOUNDS[key]
    value = recipe.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(f"expected an integer, got {value!r}", key)
    if not lo <= value <= hi:
        raise RecipeError(f"{key} = {value} is out of range: expected {lo} to {hi}", key)
    return value


def check_factory(factory: str, dim: int, n_docs: int | None = None) -> None:
    """RecipeError (field ``factory``) unless FAISS builds an empty index from ``factory`` for ``dim``-wide
    vectors: a typo or a layout that does not fit the dimension is bad input, not a crash mid-run. With
    ``n_docs``, an IVF layout with more lists than documents to train them on is refused too."""
    import re

    import faiss

    numbers = [int(n) for n in re.findall(r"\d+", factory)]
    if any(n > _FACTORY_MAX_NUMBER for n in numbers):
        raise RecipeError(f"factory {factory!r}: a number above {_FACTORY_MAX_NUMBER} is not accepted", "factory")
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except Exception as exc:  # FAISS raises RuntimeError with its C++ message
        raise RecipeError(f"factory {factory!r} is not a FAISS index for {dim}-dimensional vectors: "
                          f"{faiss_reason(exc)}", "factory",
                          hint="see the FAISS wiki 'The index factory', e.g. 'IVF256,Flat' or 'HNSW32'") from None
    if n_docs is not None:
        try:
            nlist = int(faiss.extract_index_ivf(index).nlist)
        except Exception:  # not an IVF index
            nlist = 0
        if nlist > n_docs:
            raise RecipeError(f"factory {factory!r} has {nlist} inverted lists but the corpus has only {n_docs} "
                              "documents to train them on", "factory", hint="use fewer lists (IVFn with n <= the "
                              "number of documents; FAISS recommends 39 documents per list)")


def faiss_reason(exc: BaseException) -> str:
    """FAISS's own reason from a RuntimeError (its message starts with the C++ function and source line)."""
    text = " ".join(str(exc).split())
    reason = text.rsplit("Error: ", 1)[-1] if "Error: " in text else text.rsplit(": ", 1)[-1]
    return reason[:200] or type(exc).__name__


def normalize_recipe(recipe: dict[str, Any], dim: int | None = None) -> dict[str, Any]:
    """Fill defaults, reject unknown keys and out-of-range values (RecipeError naming the key), so equal
    recipes hash equally and FAISS is never handed a value it aborts on. With ``dim`` a factory string is
    checked by building an empty index."""
    kind = recipe.get("type", "flat")
    if kind not in RECIPE_TYPES:
        raise RecipeError(f"index recipe: unknown type {kind!r}; expected one of {', '.join(RECIPE_TYPES)}", "type")
    unknown = set(recipe) - _RECIPE_KEYS[kind]
    if unknown:
        raise RecipeError(f"index recipe ({kind}): unknown keys {sorted(unknown)}; "
                          f"allowed: {sorted(_RECIPE_KEYS[kind])}", sorted(unknown)[0])
    metric = recipe.get("metric", "ip")
    if metric != "ip":
        raise RecipeError("index recipe: only metric = 'ip' (inner product over normalized vectors) is supported",
                          "metric")
    out: dict[str, Any] = {"type": kind, "metric": metric}
    if kind == "hnsw":
        out |= {k: _bounded_int(recipe, k) for k in ("M", "ef_construction", "ef_search")}
    elif kind == "ivf":
        out |= {k: _bounded_int(recipe, k) for k in ("nlist", "nprobe")}
        if out["nprobe"] > out["nlist"]:
            raise RecipeError(f"nprobe = {out['nprobe']} is more than nlist = {out['nlist']}", "nprobe")
    elif kind == "factory":
        if "factory" not in recipe:
            raise RecipeError("index recipe (factory): needs a 'factory' string, e.g. 'IVF256,PQ32'", "factory")
        if not isinstance(recipe["factory"], str) or not recipe["factory"].strip():
            raise RecipeError(f"expected a FAISS factory string such as 'IVF256,Flat', got {recipe['factory']!r}",
                              "factory")
        out["factory"] = recipe["factory"]
        for k in ("nprobe", "ef_search"):
            if k in recipe:
                out[k] = _bounded_int(recipe, k)
        if dim is not None:
            check_factory(out["factory"], dim)
    return out


def load_recipe_file(path: Path) -> dict[str, Any]:
    from harness.config import read_config

    return read_config(path, "index recipe")[0]


SEARCH_PARAMS = ("nprobe", "ef_search")


def build_params(recipe: dict[str, Any]) -> dict[str, Any]:
    """The part of a recipe that decides the index's content (search-time knobs left out)."""
    return {k: v for k, v in recipe.items() if k not in SEARCH_PARAMS}


TRAIN_SEED = 0
"""Seed of the training sample of trained layouts (IVF lists, PQ codebooks)."""
TRAIN_POINTS_PER_LIST = 256
"""Training vectors per inverted list (FAISS's own k-means cap, max_points_per_centroid)."""
TRAIN_MIN_POINTS = 65_536
"""At least this many training vectors when the corpus has them (256 x 256: a PQ codebook's k-means cap)."""
TRAIN_RULE = "seeded-sample-v1"
"""Names the training rule in the keys of trained layouts: a changed rule builds anew, never reuses."""


ADD_BATCH = 16_384
"""Vectors per ``add`` of a layout whose content depends on how its vectors are split into adds (an HNSW graph
links each batch's vectors level by level; a pre-transform's matrix product rounds by batch under threads): a
constant of the build, never the embedding batch, the engine or the memory at hand, so every path that fills
such an index (one array, a stream of the cache, either engine) adds the same batches and builds the same bytes."""
FILL_RULE = f"add-batches-{ADD_BATCH}-one-thread-v1"
"""Names that fill (:data:`ADD_BATCH` vectors per add, one FAISS thread) in the keys of the layouts it applies to
(:func:`batch_exact` false): an index one add filled (the rule before it) is never found under the new key."""
INDEX_FORMAT = 2
"""The stored index's ``meta.json`` format: 2 records ``fill`` (the fill rule, or ``one-add-exact``)."""
_EXACT_PART = re.compile(r"IVF\d+|Flat|IDMap2?|PQ\d+(x\d+)?(fs|fsr|np)?|SQ(4|6|8|fp16|bf16)|RFlat")
"""Factory components whose batched adds give the bytes of one add (checked with FAISS 1.15 on one and two
threads, tests/test_index_streaming.py): flat and IVF coarse quantizers, flat, PQ (fast-scan included) and SQ
codes. Anything else (HNSW, NSG, PCA, OPQ, RR, ITQ, LSH, ...) is filled by :data:`FILL_RULE`: fail closed."""


def batch_exact(recipe: dict[str, Any]) -> bool:
    """Whether the recipe's index is the same bytes however its vectors are split into adds (and on any number
    of FAISS threads): flat, IVF, and factory strings made only of :data:`_EXACT_PART` components. Layouts that
    are not are filled by :data:`FILL_RULE`, whose name is part of their key."""
    if recipe["type"] in ("flat", "ivf"):
        return True
    if recipe["type"] == "hnsw":
        return False
    return all(_EXACT_PART.fullmatch(part.strip()) for part in str(recipe["factory"]).split(","))


@contextlib.contextmanager
def faiss_threads(recipe: dict[str, Any]) -> Iterator[None]:
    """One FAISS (OpenMP) thread while a layout of :data:`FILL_RULE` is trained and filled (a PCA's matrix, and
    so every vector it maps, rounds differently on two threads than on one: measured), the default otherwise."""
    if batch_exact(recipe):
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def add_batches(batches: Iterable[np.ndarray], size: int | None = None) -> Iterator[np.ndarray]:
    """``batches`` (vectors in order, of any sizes) cut and joined into consecutive batches of exactly ``size``
    (default :data:`ADD_BATCH`) rows, the last one shorter: the adds of :data:`FILL_RULE`, whatever batches the
    vectors came in."""
    size = ADD_BATCH if size is None else size
    held: list[np.ndarray] = []
    count = 0
    for batch in batches:
        start = 0
        while start < len(batch):
            take = min(size - count, len(batch) - start)
            held.append(batch[start:start + take])
            count += take
            start += take
            if count == size:
                yield held[0] if len(held) == 1 else np.concatenate(held)
                held, count = [], 0
    if count:
        yield held[0] if len(held) == 1 else np.concatenate(held)


def fill(index: Any, batches: Iterable[np.ndarray], recipe: dict[str, Any]) -> Any:
    """``index`` (trained, empty) filled with ``batches`` in order: as they come for a :func:`batch_exact`
    layout, else in :func:`add_batches` on one thread (:data:`FILL_RULE`)."""
    exact = batch_exact(recipe)
    with faiss_threads(recipe):
        for vectors in (batches if exact else add_batches(batches)):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def trained_layout(recipe: dict[str, Any]) -> bool:
    """Whether the recipe's index is trained (IVF, PQ, ...) before vectors are added."""
    return recipe["type"] in ("ivf", "factory")


def index_key(corpus_pin: str, model_pin: str, recipe: dict[str, Any], doc_text: dict[str, Any]) -> str:
    """Hash of what the stored index's content depends on: changing nprobe or ef_search re-searches
    (rankings are keyed by the whole recipe) but never rebuilds. Never the engine that builds it."""
    spec: dict[str, Any] = {"v": 1, "corpus": corpus_pin, "model": model_pin, "recipe": build_params(recipe),
                            "doc_text": doc_text}
    if trained_layout(recipe):
        spec["train"] = TRAIN_RULE
    if not batch_exact(recipe):
        spec["fill"] = FILL_RULE
    return sha256_json(spec)


def _ivf_lists(index: Any) -> int:
    import faiss

    try:
        return int(faiss.extract_index_ivf(index).nlist)
    except Exception:  # not an IVF index
        return 0


def empty_index(dim: int, n: int, recipe: dict[str, Any]) -> Any:
    """The recipe's FAISS index for ``n`` vectors of width ``dim``, untrained and empty."""
    import faiss

    kind = recipe["type"]
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, recipe["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = recipe["ef_construction"]
        return index
    if kind == "ivf":
        nlist = max(1, min(recipe["nlist"], n // 39 or 1))
        return faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    return faiss.index_factory(dim, recipe["factory"], faiss.METRIC_INNER_PRODUCT)


def train_sample(n: int, recipe: dict[str, Any], index: Any) -> np.ndarray | None:
    """Row numbers (ascending) of the vectors ``index`` is trained on: all ``n`` when they are few enough,
    else a sample of ``max(256 x lists, 65,536)`` drawn with :data:`TRAIN_SEED`; None: nothing to train."""
    if index.is_trained:
        return None
    cap = max(TRAIN_POINTS_PER_LIST * _ivf_lists(index), TRAIN_MIN_POINTS)
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(TRAIN_SEED)
    return np.sort(rng.choice(n, size=cap, replace=False)).astype(np.int64)


def train_index(index: Any, vectors: np.ndarray, recipe: dict[str, Any]) -> Any:
    """``index`` trained on :func:`train_sample` of ``vectors`` (a no-op for untrained layouts)."""
    rows = train_sample(len(vectors), recipe, index)
    if rows is None:
        return index
    sample = vectors if len(rows) == len(vectors) else np.ascontiguousarray(vectors[rows])
    return train_on(index, sample, recipe, len(vectors))


def train_on(index: Any, sample: np.ndarray, recipe: dict[str, Any], n: int) -> Any:
    """``index`` trained on ``sample`` (:func:`train_sample`'s rows of the ``n`` corpus vectors, in order); a
    factory layout FAISS cannot train is a :class:`RecipeError` naming it."""
    try:
        with faiss_threads(recipe):
            index.train(sample)
    except RuntimeError as exc:  # e.g. fewer training vectors than a quantizer's centroids
        if recipe["type"] != "factory":
            raise
        raise RecipeError(f"factory {recipe['factory']!r} cannot be trained on this corpus ({n} "
                          f"documents): {faiss_reason(exc)}", "factory") from None
    return index


def mergeable(index: Any) -> bool:
    """Whether shards of ``index`` (filled apart from copies of it once trained) merge, in order, into the very
    index one add builds (checked byte for byte in the tests): flat, IVF-Flat, IVF-PQ and IVF-SQ; others (graphs,
    fast-scan's packed blocks, pre-transforms) are filled in one place."""
    import faiss

    exact = (faiss.IndexFlat, faiss.IndexIVFFlat, faiss.IndexIVFPQ, faiss.IndexIVFScalarQuantizer)
    return isinstance(index, exact) and not isinstance(index, faiss.IndexIVFFastScan)


def merge_shards(trained: Any, shards: Sequence[Any]) -> Any:
    """``trained`` (empty) filled with ``shards`` (copies of it, each filled with the next rows in order)."""
    import faiss

    for shard in shards:
        if isinstance(trained, faiss.IndexFlat):
            trained.merge_from(shard)
        else:
            trained.merge_from(shard, trained.ntotal)
    return trained


def _build_faiss(vectors: np.ndarray, recipe: dict[str, Any]) -> Any:
    n, dim = vectors.shape
    index = train_index(empty_index(dim, n, recipe), vectors, recipe)
    return fill(index, (vectors,), recipe)



def _apply_search_params(index: Any, recipe: dict[str, Any]) -> None:
    import faiss

    if "nprobe" in recipe:
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", recipe["nprobe"])
    if "ef_search" in recipe:
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", recipe["ef_search"])


class StoredIndex:
    """A loaded index with its doc-id map."""

    def __init__(self, index: Any, doc_ids: list[str], meta: dict[str, Any]) -> None:
        self.index = index
        self.doc_ids = doc_ids
        self.meta = meta

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k per query, ties broken by doc id descending (trec_eval's order), also at the cutoff:
        the search goes deeper while the k-th score ties with the last one retrieved, so which of several
        equally scored documents makes the cut is decided by the tie rule, not by FAISS."""
        n = len(self.doc_ids)
        k_eff = min(k, n)
        if k_eff == 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        q = np.ascontiguousarray(queries, dtype=np.float32)
        depth = min(n, k_eff + 8)
        while True:
            scores, ids = self.index.search(q, depth)
            kth, last = scores[:, k_eff - 1], scores[:, depth - 1]
            if depth >= n or not np.any((kth == last) & (ids[:, depth - 1] >= 0)):
                break
            depth = min(n, depth * 2)
        out: list[list[tuple[str, float]]] = []
        for srow, irow in zip(scores.tolist(), ids.tolist(), strict=True):
            hits = [(self.doc_ids[i], s) for s, i in zip(srow, irow, strict=True) if i >= 0]
            hits.sort(key=lambda h: h[0], reverse=True)
            hits.sort(key=lambda h: h[1], reverse=True)
            out.append(hits[:k_eff])
        return out


class IndexStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return (self.folder(key) / "meta.json").is_file()

    def save(self, key: str, vectors: np.ndarray, doc_ids: list[str], recipe: dict[str, Any],
             info: dict[str, Any]) -> StoredIndex:

        t0 = time.perf_counter()
        index = _build_faiss(vectors, recipe)
        return self.save_index(key, index, doc_ids, recipe, info, time.perf_counter() - t0)

    def save_index(self, key: str, index: Any, doc_ids: list[str], recipe: dict[str, Any], info: dict[str, Any],
                   build_s: float) -> StoredIndex:
        """Store ``index`` (built and filled, its rows in ``doc_ids``' order) under ``key``."""
        import hashlib

        import faiss

        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        try:
            # streamed into the file (and its hash) as FAISS writes it: never a serialized copy in memory
            with atomic_writer(folder / "index.faiss") as fh:
                def write(chunk: bytes) -> int:
                    digest.update(chunk)
                    return fh.write(chunk)

                writer = faiss.PyCallbackIOWriter(write)  # type: ignore[attr-defined]
                faiss.write_index(index, writer)
                del writer  # flushes its buffer
        except OSError as exc:
            raise HarnessError(f"cannot write {folder / 'index.faiss'}: {exc.strerror or exc}") from None
        ids_blob = json.dumps(doc_ids).encode("utf-8")
        atomic_write_bytes(folder / "ids.json", ids_blob)

        meta = {
            "format": INDEX_FORMAT,
            "fill": "one-add-exact" if batch_exact(recipe) else FILL_RULE,
            "key": key,
            "recipe": recipe,
            "ntotal": int(index.ntotal),
            "dim": int(index.d),
            "index_sha256": digest.hexdigest(),
            "ids_sha256": hashlib.sha256(ids_blob).hexdigest(),
            "build_seconds": build_s,
            "faiss_version": faiss.__version__,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **info,
        }
        atomic_write_json(folder / "meta.json", meta, indent=2)
        _apply_search_params(index, recipe)
        return StoredIndex(index, doc_ids, meta)

    def load(self, key: str, recipe: dict[str, Any] | None = None) -> StoredIndex:
        """Load and verify a stored index; ``recipe``'s search-time parameters apply (default: the build's).

        Whatever is wrong with the stored files (unreadable or tampered metadata, a file that fails its
        sha256, a FAISS blob that does not load, a doc-id map that does not match the index) is an
        :class:`IntegrityError` naming the folder and how to rebuild it, never a crash."""
        import faiss

        folder = self.folder(key)
        meta = self._meta(folder)
        if meta.get("format", 1) not in (1, INDEX_FORMAT):
            raise _damaged(folder, f"index {folder}: unknown metadata format {meta.get('format')!r}")
        try:
            exact = batch_exact(meta["recipe"])
        except (KeyError, TypeError, AttributeError):
            raise _damaged(folder, f"index {folder}: damaged metadata (its recipe has no type)") from None
        if not exact and meta.get("fill") != FILL_RULE:
            raise _damaged(folder, f"index {folder} was filled by rule {meta.get('fill', 'one add')!r}, not "
                                   f"{FILL_RULE!r}: its graph or transform is not the one this version builds")
        for name, field in (("index.faiss", "index_sha256"), ("ids.json", "ids_sha256")):
            path = folder / name
            actual = sha256_file(path) if path.is_file() else "missing"
            if actual != meta.get(field):
                raise _damaged(folder, f"index file {path} is corrupted or truncated: sha256 {actual}, "
                                       f"expected {meta.get(field)}")
        try:
            index = faiss.read_index(str(folder / "index.faiss"))  # from the file: no copy of its bytes in memory
            _apply_search_params(index, recipe if recipe is not None else meta["recipe"])
        except Exception as exc:  # FAISS raises RuntimeError for anything it cannot read
            raise _damaged(folder, f"index {folder / 'index.faiss'} does not load: "
                                   f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        try:
            doc_ids = json.loads((folder / "ids.json").read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise _damaged(folder, f"index doc-id map {folder / 'ids.json'} does not decode ({type(exc).__name__})") \
                from None
        if not isinstance(doc_ids, list) or not all(isinstance(d, str) for d in doc_ids):
            raise _damaged(folder, f"index doc-id map {folder / 'ids.json'} is not a list of document ids")
        if len(doc_ids) != int(index.ntotal):
            raise _damaged(folder, f"index {folder} holds {index.ntotal} vectors but {len(doc_ids)} document ids")
        return StoredIndex(index, doc_ids, meta)

    @staticmethod
    def _meta(folder: Path) -> dict[str, Any]:
        try:
            meta = json.loads((folder / "meta.json").read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise _damaged(folder, f"index {folder}: unreadable metadata ({type(exc).__name__}: {exc})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("recipe"), dict):
            raise _damaged(folder, f"index {folder}: damaged metadata (no recipe)")
        return meta

    def quality(self, key: str, quality_key: str) -> dict[str, Any] | None:
        """The recall of index ``key`` measured for ``quality_key`` (search settings, query sample, k), if stored."""
        try:
            value = json.loads((self.folder(key) / f"quality-{quality_key}.json").read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) and isinstance(value.get("recall@k"), float) else None

    def save_quality(self, key: str, quality_key: str, value: dict[str, Any]) -> None:
        atomic_write_json(self.folder(key) / f"quality-{quality_key}.json", value, indent=2)

    def check(self, key: str) -> str | None:
        """None if the stored index ``key`` loads and verifies, else what is wrong."""
        try:
            self.load(key)
        except IntegrityError as exc:
            return exc.message
        return None


def _damaged(folder: Path, message: str) -> IntegrityError:
    return IntegrityError(message, hint=f"delete {folder} (or run `harness cache clear --indexes`) and run again "
                                        "to rebuild it")
