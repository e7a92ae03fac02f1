"""Retrieval stage: golden cases -> ranked (doc id, score) lists, cached per case.

A case's ranking is cached under the hash of (index key, query prefix, query text, k): an unchanged
manifest retrieves nothing and does not even load the embedding model or the index; a new golden
case retrieves only itself. The score threshold is applied when reading, so changing it re-runs
nothing.

A query whose embedding or search raises is an error of its case (:class:`~harness.types.CaseError`,
stage ``retrieve``), never a crash of the run nor a silently empty ranking: the batch is retried case by
case so the other cases keep their rankings, and the failed case is not cached (the next run tries it
again). Bad input and setup problems (:class:`~harness.errors.HarnessError`) still stop the run.

``RetrievalInputs.engine`` says where the heavy work runs: here, or a Ray cluster (:mod:`harness.engine`)
that embeds the corpus (and golden sets of :data:`QUERY_REMOTE_MIN` queries or more) and fills the index in
shards. It is no part of any key: the same vectors land in the same cache, the same index in the same store.

An approximate recipe (IVF, IVF-PQ, HNSW, any factory layout) reports what it costs: recall@k of its index
against exact search over the same vectors, on a seeded sample of the run's queries
(``stats["index_quality"]``, kept beside the index so a warm run reports it without searching again).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness.cache import Cache
from harness.config import line_of
from harness.corpus import CORPUS_BATCH, Corpus, CorpusSummary, as_corpus
from harness.embed import Embedder
from harness.errors import HarnessError, InputError, RecipeError
from harness.hashing import sha256_json, sha256_parts
from harness.index import (
    SEARCH_PARAMS,
    IndexStore,
    StoredIndex,
    check_factory,
    empty_index,
    fill,
    index_key,
    train_on,
    train_sample,
)
from harness.manifest import HashMemo
from harness.progress import NULL_PROGRESS, Progress
from harness.redact import redact
from harness.types import CaseError, ComputeEngine, CorpusDoc, Frozen, GoldenCase, RankedDoc

if TYPE_CHECKING:
    import numpy as np

    from harness.engine.ray_engine import RayEngine

MAX_K = 100_000
"""Deepest ranking a case may ask for (FAISS allocates k results per query)."""
MAX_DIM = 65_536
"""Widest hashing-encoder vector (a corpus is embedded into n x dim floats)."""
QUERY_REMOTE_MIN = 10_000
"""On the Ray engine, queries to embed from this many on go to the cluster (fewer: here, cheaper than a job)."""
QUALITY_SAMPLE = 200
"""Queries (a seeded sample of the run's) an approximate index's recall is measured on."""
QUALITY_MAX_K = 100
"""Deepest cutoff of that recall (the retriever's k, capped)."""
QUALITY_SEED = 0
REMOTE_CORPUS_BATCH = 131072
"""Documents per corpus-embedding call on a cluster: each call starts its actors (seconds of fixed cost), so a
cluster gets larger batches than :data:`~harness.corpus.CORPUS_BATCH` (about 200 MB of text at SciFact's length)."""


class RetrieverConfig(Frozen):
    k: int = Field(default=100, ge=1, le=MAX_K, strict=True)
    score_threshold: float | None = None
    query_prefix: str = ""
    doc_prefix: str = ""
    text_fields: tuple[str, ...] = Field(default=("title", "text"), min_length=1)
    separator: str = " "


def check_text_fields(cfg: RetrieverConfig, fields: frozenset[str], source: RecipeSource) -> None:
    """InputError (manifest file:line, field ``text_fields``) unless every field named is one of ``fields``,
    those some corpus document has (``title``, ``text`` or a metadata key): a typo would embed every document
    as ''."""
    import difflib

    known = set(fields)
    for i, name in enumerate(cfg.text_fields):
        if name in known or (name == "title" and len(cfg.text_fields) > 1):
            continue  # "title" is optional per document (BEIR corpora often have none)
        close = difflib.get_close_matches(name, sorted(known), n=3)
        raise InputError(source.manifest_path, f"text field {name!r} is not a field of any corpus document",
                         line=line_of(source.manifest_text, ("artifacts", "retriever", "params", "text_fields")),
                         field=f"artifacts.retriever.params.text_fields.{i}",
                         hint=f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                         else f"known: {', '.join(sorted(known)[:20])}")


class EmbeddingConfig(Frozen):
    """Embedding-model params. ``backend = "hashing"`` needs no weights (tests, lexical baseline)."""

    backend: Literal["sentence-transformers", "hashing"] = "sentence-transformers"
    dim: int = Field(default=512, ge=8, le=MAX_DIM, strict=True)
    batch_size: int = Field(default=32, ge=1, strict=True)
    max_seq_length: int | None = Field(default=None, ge=1, strict=True)


def doc_text(doc: CorpusDoc, cfg: RetrieverConfig) -> str:
    """Document text as embedded: chosen fields joined (empty ones skipped), as MTEB/BEIR do."""
    parts = []
    for name in cfg.text_fields:
        value = doc.title if name == "title" else doc.text if name == "text" else str(doc.metadata.get(name, ""))
        if value:
            parts.append(value)
    return cfg.separator.join(parts)


@dataclass(frozen=True)
class RecipeSource:
    """Where the retrieval settings were written, so a problem found later names its file:line and field:
    the manifest and the recipe file (None: the artifact has no path, its params are the recipe), their
    texts as read at the edge (:meth:`read`), and the keys the manifest's ``artifacts.index.params`` set
    over the file. The stage never reads the manifest itself."""

    manifest_path: Path
    recipe_path: Path | None
    keys_in_manifest: frozenset[str]
    manifest_text: str = ""
    recipe_text: str = ""

    @classmethod
    def read(cls, manifest_path: Path, recipe_path: Path | None, keys_in_manifest: frozenset[str]) -> RecipeSource:
        """The source with both files' texts (an unreadable one as '': its errors then carry no line)."""
        def text(path: Path | None) -> str:
            try:
                return path.read_text("utf-8-sig") if path is not None else ""
            except (OSError, UnicodeDecodeError):
                return ""

        return cls(manifest_path, recipe_path, keys_in_manifest, text(manifest_path), text(recipe_path))


@dataclass(frozen=True)
class RetrievalInputs:
    """What the retrieval stage needs, resolved once by :func:`harness.pipeline.stage_inputs`: its config,
    the embedding config, the normalized index recipe and where it was written, the embedding model's
    folder (None for the weightless hashing encoder) and the corpus pin (the index's identity)."""

    config: RetrieverConfig
    embedding: EmbeddingConfig
    recipe: dict[str, Any]
    source: RecipeSource
    model_dir: Path | None
    corpus_pin: str
    engine: ComputeEngine = field(default_factory=ComputeEngine)  # where embedding and indexing run; no identity


def recipe_input_error(source: RecipeSource, exc: RecipeError) -> InputError:
    """A recipe problem found at run time as bad input naming the recipe file (or the manifest) and field."""
    key = exc.key or "factory"
    loc: tuple[str, ...]
    if source.recipe_path is not None and key not in source.keys_in_manifest:
        path, text, loc = source.recipe_path, source.recipe_text, (key,)
    else:
        path, text, loc = source.manifest_path, source.manifest_text, ("artifacts", "index", "params", key)
    return InputError(path, exc.message, line=line_of(text, loc), field=".".join(loc), hint=exc.hint)


def check_inputs(inputs: RetrievalInputs, corpus: CorpusSummary | Corpus | Sequence[CorpusDoc]) -> None:
    """What the retrieval stage will need of the corpus, checked before a run writes anything: the text
    fields exist, and an IVF factory layout has no more lists than there are documents to train them."""
    seen = corpus if isinstance(corpus, CorpusSummary) else as_corpus(corpus)
    check_text_fields(inputs.config, seen.fields, inputs.source)
    if inputs.recipe["type"] == "factory" and inputs.embedding.backend == "hashing":
        try:
            check_factory(inputs.recipe["factory"], inputs.embedding.dim, len(seen))
        except RecipeError as exc:
            raise recipe_input_error(inputs.source, exc) from None


def embedding_pin(cfg: EmbeddingConfig, model_dir: Path | None, cache: Cache) -> str:
    """The model's identity for cache keys: its weights' content hash (or the hashing encoder's settings), not
    the whole pin, so params that do not change vectors (batch_size) reuse the cache."""
    if cfg.backend == "hashing":
        return sha256_json({"backend": "hashing", "dim": cfg.dim})
    assert model_dir is not None, "a sentence-transformers model has a folder"
    return HashMemo(cache).path(model_dir)


def make_embedder(cfg: EmbeddingConfig, model_dir: Path | None, cache: Cache, progress: Progress = NULL_PROGRESS,
                  *, pin: str | None = None) -> Embedder:
    """The embedder of a pinned embedding model (loaded on first use), caching vectors under its pin."""
    return Embedder(model_dir, pin if pin is not None else embedding_pin(cfg, model_dir, cache), cache,
                    batch_size=cfg.batch_size, max_seq_length=cfg.max_seq_length, backend=cfg.backend, dim=cfg.dim,
                    progress=progress)


@dataclass
class RetrievalOutcome:
    rankings: dict[str, list[RankedDoc]]
    latency_s: dict[str, float]
    cache_hit: dict[str, bool]
    stats: dict[str, Any] = field(default_factory=dict)  # counts and seconds; "index_quality": a JSON-able dict
    errors: dict[str, CaseError] = field(default_factory=dict)  # case id -> why it has no ranking


class RetrievalStage:
    def __init__(self, inputs: RetrievalInputs, cache: Cache, store: IndexStore,
                 progress: Progress = NULL_PROGRESS, *, engine: RayEngine | None = None) -> None:
        self.inputs = inputs
        self.cache = cache
        self.store = store
        self.progress = progress
        self.config = inputs.config
        self.emb_config = inputs.embedding
        self.recipe = inputs.recipe
        self.model_pin = embedding_pin(self.emb_config, inputs.model_dir, cache)
        self.corpus_pin = inputs.corpus_pin
        doc_settings = {"fields": list(self.config.text_fields), "separator": self.config.separator,
                        "prefix": self.config.doc_prefix, "max_seq_length": self.emb_config.max_seq_length}
        self.index_key = index_key(self.corpus_pin, self.model_pin, self.recipe, doc_settings)
        self.search_key = sha256_json({k: v for k, v in self.recipe.items() if k in SEARCH_PARAMS})
        self._embedder: Embedder | None = None
        self.engine: RayEngine | None = engine
        self._owns_engine = False  # an engine given is the caller's (a run's, shared with its scoring) to close
        if engine is None and inputs.engine.kind != "local":
            from harness.engine import remote_engine

            self.engine = remote_engine(inputs.engine)  # Ray missing: exit 2 here, before anything runs
            self._owns_engine = True
        self._vectors: np.ndarray | None = None  # the corpus's, when this run built the index

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.emb_config, self.inputs.model_dir, self.cache, self.progress,
                                           pin=self.model_pin)
            self._embedder.remote = self.engine
        return self._embedder

    @property
    def _remote_all(self) -> int | None:
        """``remote_min`` for the corpus: all of it on the cluster when there is one."""
        return 0 if self.engine is not None else None

    def case_key(self, case: GoldenCase) -> str:
        return sha256_parts("ranking-v2", self.index_key, self.search_key, self.config.query_prefix, case.query,
                            str(self.config.k))

    def _index(self, corpus: Corpus) -> tuple[StoredIndex, bool]:
        if self.store.exists(self.index_key):
            return self.store.load(self.index_key, self.recipe), False
        if self.recipe["type"] == "factory" and self.emb_config.backend != "hashing":
            self._check_factory(int(self.embedder._load().get_sentence_embedding_dimension()))
        info = {"corpus_sha256": self.corpus_pin, "model_sha256": self.model_pin, "n_docs": len(corpus)}
        if len(corpus):
            with self.progress.task(f"building {self.recipe['type']} index", 1) as advance:
                try:
                    stored = self._streamed_index(corpus, info)
                except RecipeError as exc:
                    raise recipe_input_error(self.inputs.source, exc) from None
                advance(1)
            return stored, True
        vectors = self._corpus_vectors(corpus)  # an empty corpus: no batch to learn the width from
        self._vectors = vectors
        with self.progress.task(f"building {self.recipe['type']} index", 1) as advance:
            try:
                stored = self.store.save(self.index_key, vectors, corpus.ids(), self.recipe, info)
            except RecipeError as exc:
                raise recipe_input_error(self.inputs.source, exc) from None
            advance(1)
        return stored, True

    def _streamed_index(self, corpus: Corpus, info: dict[str, Any]) -> StoredIndex:
        """The index filled a batch of vectors at a time as the corpus is embedded, so the corpus's vectors are
        never held apart from the index, on either engine and for every layout: an untrained one (flat, HNSW) in
        one pass; a trained one in two, the first keeping only :func:`train_sample`'s rows to train on, the
        second adding (its vectors from the cache). Layouts whose adds append (:func:`~harness.index.batch_exact`:
        flat, IVF-Flat/PQ/SQ, fast-scan) are the very index one add of them all builds (tested byte for byte);
        the others (HNSW graphs, pre-transforms) are filled in :data:`~harness.index.ADD_BATCH` adds on one
        thread (:func:`~harness.index.fill`), a constant of their build named in their key. On a cluster the
        mergeable layouts are filled by shards as the vectors stream past (:meth:`RayEngine.fill_index`)."""
        import numpy as np

        n = len(corpus)
        size = REMOTE_CORPUS_BATCH if self.engine is not None else CORPUS_BATCH
        passes = self._vector_batches(corpus, size)
        _, first = next(passes)
        dim = int(first.shape[1])
        index = empty_index(dim, n, self.recipe)
        t_build = 0.0
        rows = train_sample(n, self.recipe, index)
        if rows is not None:
            sample = np.empty((len(rows), dim), dtype=np.float32)
            pos = 0
            for vectors in chain([first], (v for _, v in passes)):
                lo, hi = np.searchsorted(rows, [pos, pos + len(vectors)])
                sample[lo:hi] = vectors[rows[lo:hi] - pos]
                pos += len(vectors)
            t0 = time.perf_counter()
            train_on(index, sample, self.recipe, n)
            t_build += time.perf_counter() - t0
            del sample
            passes = self._vector_batches(corpus, CORPUS_BATCH)  # again: every vector is in the cache now
            _, first = next(passes)
        timed = _Timed(chain([first], (v for _, v in passes)))
        t0 = time.perf_counter()
        if self.engine is not None:
            self.engine.fill_index(index, timed, n, self.recipe)
        else:
            fill(index, timed, self.recipe)
        t_build += time.perf_counter() - t0 - timed.seconds
        if index.ntotal != n:
            raise HarnessError(f"the corpus gave {index.ntotal} documents to embed, {n} expected")
        return self.store.save_index(self.index_key, index, corpus.ids(), self.recipe, info, t_build)

    def _vector_batches(self, corpus: Corpus, size: int) -> Iterator[tuple[list[str], np.ndarray]]:
        """(doc ids, vectors) of the corpus a batch of ``size`` documents at a time, in its order."""
        for docs in corpus.batches(size):
            yield [d.id for d in docs], self.embedder.embed([doc_text(d, self.config) for d in docs],
                                                            self.config.doc_prefix, "embedding corpus",
                                                            remote_min=self._remote_all)

    def _corpus_vectors(self, corpus: Corpus) -> np.ndarray:
        """The corpus's vectors in its order, embedded (or read from the cache) a batch of documents at a time:
        only one batch's texts are in memory (a larger batch on a cluster, whose every call has a fixed cost)."""
        import numpy as np

        size = REMOTE_CORPUS_BATCH if self.engine is not None else CORPUS_BATCH
        out: np.ndarray | None = None
        pos = 0
        for _, vectors in self._vector_batches(corpus, size):
            if out is None:
                out = np.empty((len(corpus), vectors.shape[1]), dtype=np.float32)
            out[pos:pos + len(vectors)] = vectors
            pos += len(vectors)
        if out is None:
            return self.embedder.embed([], self.config.doc_prefix, "embedding corpus")
        if pos != len(out):
            raise HarnessError(f"the corpus gave {pos} documents to embed, {len(out)} expected")
        return out

    def _check_factory(self, dim: int) -> None:
        """A factory string FAISS cannot build for the model's dimension is bad input naming the recipe
        (checked once the model's width is known, before any vector is embedded or index written)."""
        try:
            check_factory(self.recipe["factory"], dim)
        except RecipeError as exc:
            raise recipe_input_error(self.inputs.source, exc) from None

    def run(self, cases: Sequence[GoldenCase], corpus: Corpus | Sequence[CorpusDoc]) -> RetrievalOutcome:
        """Rankings of ``cases`` (from the cache where possible), the index built from ``corpus`` when there
        is none yet: a :class:`~harness.corpus.Corpus` (a run's passage store) or a list of documents. An engine
        this stage made for itself is closed when the call ends; one given to it stays up for the next chunk."""
        try:
            return self._run(cases, as_corpus(corpus))
        finally:
            if self.engine is not None and self._owns_engine:
                self.engine.close()  # only a cluster it started; answers are embedded here afterwards
                if self._embedder is not None:
                    self._embedder.remote = None
            self._vectors = None

    def _run(self, cases: Sequence[GoldenCase], corpus: Corpus) -> RetrievalOutcome:
        keys = {c.id: self.case_key(c) for c in cases}
        cached = self.cache.get_many_json("rankings", keys.values())
        todo = [c for c in cases if keys[c.id] not in cached]
        stats: dict[str, Any] = {"cases_retrieved": float(len(todo)), "index_built": 0.0}
        latency: dict[str, float] = {}
        errors: dict[str, CaseError] = {}
        index: StoredIndex | None = None
        if todo:
            t0 = time.perf_counter()
            index, built = self._index(corpus)
            stats["index_built"] = float(built)
            stats["index_seconds"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            hits, errors = self._search(index, todo)
            per_case = (time.perf_counter() - t1) / len(todo)
            fresh = {keys[c.id]: [[d, s] for d, s in hits[c.id]] for c in todo if c.id in hits}
            self.cache.put_many_json("rankings", fresh)
            cached.update(fresh)
            latency = {c.id: per_case for c in todo}
        if self.recipe["type"] != "flat" and cases and len(corpus):
            stats["index_quality"] = self._quality(cases, corpus, index)
        if self._embedder is not None:
            stats["embedded_texts"] = float(self._embedder.encoded)
            stats["embedded_remote"] = float(self._embedder.encoded_remote)
        thr = self.config.score_threshold
        rankings = {
            c.id: [RankedDoc(doc_id=d, score=s) for d, s in cached.get(keys[c.id], ()) if thr is None or s >= thr]
            for c in cases
        }
        return RetrievalOutcome(
            rankings=rankings,
            latency_s={c.id: latency.get(c.id, 0.0) for c in cases},
            cache_hit={c.id: c.id not in latency for c in cases},
            stats=stats,
            errors=errors,
        )

    def _quality(self, cases: Sequence[GoldenCase], corpus: Corpus,
                 index: StoredIndex | None) -> dict[str, Any]:
        """Recall@k of the recipe's index against exact inner-product search over the same vectors, on
        :func:`quality_sample` of the run's queries, k = the retriever's k capped at :data:`QUALITY_MAX_K`;
        stored beside the index under what it depends on (search settings, the sampled queries, k)."""
        sample = [cases[i].query for i in quality_sample(len(cases))]
        k = min(self.config.k, QUALITY_MAX_K, len(corpus))
        qkey = sha256_json({"v": 1, "search": self.search_key, "prefix": self.config.query_prefix,
                            "queries": sample, "k": k})
        known = self.store.quality(self.index_key, qkey)
        if known is not None:
            return known
        if index is None:
            index, _ = self._index(corpus)
        queries = self.embedder.embed(sample, self.config.query_prefix, "embedding queries",
                                      remote_min=QUERY_REMOTE_MIN)
        parts = ([(index.doc_ids, self._vectors)] if self._vectors is not None
                 else self._vector_batches(corpus, CORPUS_BATCH))
        value = {"recall@k": recall_against(index, exact_hits(parts, queries, k), queries, k), "k": k,
                 "sample": len(sample),
                 "factory": index_layout(index, self.recipe),
                 "search": {p: self.recipe[p] for p in SEARCH_PARAMS if p in self.recipe}}
        self.store.save_quality(self.index_key, qkey, value)
        return value

    def _search(self, index: StoredIndex, cases: Sequence[GoldenCase]
                ) -> tuple[dict[str, list[tuple[str, float]]], dict[str, CaseError]]:
        """(case id -> hits, case id -> error): all queries in one batch; if the batch raises, case by case,
        so a query that cannot be embedded or searched errors alone."""
        prefix, k = self.config.query_prefix, self.config.k
        try:
            vectors = self.embedder.embed([c.query for c in cases], prefix, "embedding queries",
                                          remote_min=QUERY_REMOTE_MIN)
            hits = index.search(vectors, k)
            return {c.id: h for c, h in zip(cases, hits, strict=True)}, {}
        except HarnessError:
            raise
        except Exception as exc:
            batch_error = exc  # which query failed is found below
        found: dict[str, list[tuple[str, float]]] = {}
        errors: dict[str, CaseError] = {}
        for c in cases:
            one, err = self._search_one(index, c)
            found |= one
            errors |= err
        if not found and not self._works(index):
            # no query could be retrieved, nor a plain probe: the stage itself is broken (a model that does not
            # load, a bug), not each case; it is raised, never recorded as case errors --allow-errors accepts
            raise batch_error
        return found, errors

    def _works(self, index: StoredIndex) -> bool:
        """Whether a plain one-word query embeds and searches: tells a broken stage from bad queries."""
        try:
            index.search(self.embedder.embed(["probe"], self.config.query_prefix, "embedding queries"), 1)
        except Exception:
            return False
        return True

    def _search_one(self, index: StoredIndex, case: GoldenCase
                    ) -> tuple[dict[str, list[tuple[str, float]]], dict[str, CaseError]]:
        try:
            (hits,) = index.search(self.embedder.embed([case.query], self.config.query_prefix, "embedding queries"),
                                   self.config.k)
        except HarnessError:
            raise
        except Exception as exc:
            message = redact(f"{type(exc).__name__}: {exc}")
            return {}, {case.id: CaseError(stage="retrieve", kind=type(exc).__name__, message=message)}
        return {case.id: hits}, {}


class _Timed:
    """An iterator of vector batches that counts the seconds spent producing them (reading the cache), so the
    build's time is the index's own."""

    def __init__(self, batches: Iterator[np.ndarray]) -> None:
        self.batches = batches
        self.seconds = 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return next(self.batches)
        finally:
            self.seconds += time.perf_counter() - t0


def quality_sample(n: int) -> list[int]:
    """Positions (ascending) of the queries an index's recall is measured on: all of at most
    :data:`QUALITY_SAMPLE`, else that many drawn with :data:`QUALITY_SEED`."""
    import numpy as np

    if n <= QUALITY_SAMPLE:
        return list(range(n))
    rng = np.random.default_rng(QUALITY_SEED)
    return sorted(int(i) for i in rng.choice(n, size=QUALITY_SAMPLE, replace=False))


def index_recall(index: StoredIndex, vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Mean over ``queries`` of |top-k of ``index`` & exact top-k| / |exact top-k|, exact top-k from a flat
    inner-product index over ``vectors`` (the ones ``index`` holds, in its doc order); the same tie rule
    (:meth:`StoredIndex.search`) decides both cutoffs."""
    return recall_against(index, exact_hits([(index.doc_ids, vectors)], queries, k), queries, k)


def exact_hits(parts: Iterable[tuple[Sequence[str], np.ndarray]], queries: np.ndarray, k: int
               ) -> list[list[tuple[str, float]]]:
    """Exact inner-product top-k of ``queries`` over a corpus given in parts of (doc ids, vectors): each part
    searched by a flat index under :meth:`StoredIndex.search`'s tie rule (score descending, then doc id
    descending), the parts' top-k merged under the same total order, so the result is the top-k of one flat
    index over every part, with one part's vectors in memory at a time."""
    import faiss

    best: list[list[tuple[str, float]]] = [[] for _ in range(len(queries))]
    for ids, vectors in parts:
        flat = faiss.IndexFlatIP(int(vectors.shape[1]))
        flat.add(vectors)
        for i, hits in enumerate(StoredIndex(flat, list(ids), {}).search(queries, k)):
            merged = best[i] + hits
            merged.sort(key=lambda h: h[0], reverse=True)
            merged.sort(key=lambda h: h[1], reverse=True)
            best[i] = merged[:k]
    return best


def recall_against(index: StoredIndex, exact: list[list[tuple[str, float]]], queries: np.ndarray, k: int
                   ) -> float:
    """:func:`index_recall` given the exact top-k (:func:`exact_hits`)."""
    approx = index.search(queries, k)
    shares = [len({d for d, _ in a} & {d for d, _ in e}) / len(e) for a, e in zip(approx, exact, strict=True) if e]
    return float(sum(shares) / len(shares)) if shares else 1.0


def index_layout(index: StoredIndex, recipe: dict[str, Any]) -> str:
    """The index's layout as a FAISS factory string (the recipe's, or what an ``ivf``/``hnsw`` recipe built)."""
    if recipe["type"] == "factory":
        return str(recipe["factory"])
    if recipe["type"] == "ivf":
        return f"IVF{int(index.index.nlist)},Flat"
    if recipe["type"] == "hnsw":
        return f"HNSW{recipe['M']},Flat"
    return "Flat"
