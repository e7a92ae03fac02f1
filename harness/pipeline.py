"""`harness run`: manifest -> verified artifacts -> retrieval -> scores -> stored RunResult.

Each stage is a function of its inputs' hashes and caches under them (see the stage modules);
this module only wires them in one direction and records what happened.
"""

from __future__ import annotations

import contextlib
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness.aggregate import AggregateAccumulator
from harness.cache import Cache
from harness.contracts import ContractSet, load_contracts
from harness.corpus import (
    EMPTY_SUMMARY,
    Corpus,
    CorpusSummary,
    MemoryCorpus,
    open_corpus,
    summarize,
)
from harness.errors import HarnessError, InputError, ManifestError
from harness.generate.stage import ENGINE_KEYS, EngineConfig, GenerationInputs, GenerationOutcome, GenerationStage
from harness.golden import iter_golden, load_golden
from harness.hashing import project_root
from harness.index import IndexStore, load_recipe_file, normalize_recipe
from harness.manifest import HashMemo, LoadedManifest, generator_args, load_manifest, require_verified
from harness.metrics import MetricInfo
from harness.outputs import OutputsConfig, SuppliedOutputs, load_outputs, passages
from harness.progress import NULL_PROGRESS, Progress
from harness.prompts import PromptTemplate
from harness.retrieve import (
    EmbeddingConfig,
    RecipeSource,
    RetrievalInputs,
    RetrievalOutcome,
    RetrievalStage,
    RetrieverConfig,
    check_inputs,
    make_embedder,
)
from harness.runs import RunHeader, RunStore, RunWriter
from harness.scorers import SCORERS, Scorer, ScoringContext
from harness.snapshots import SnapshotSource, snapshot_artifacts
from harness.storage import Layout, check_writable
from harness.types import (
    CaseError,
    CaseOutput,
    ComputeEngine,
    GenerationRecord,
    GoldenCase,
    Manifest,
    RankedDoc,
    RunResult,
    Score,
    ScorerSpec,
)

if TYPE_CHECKING:
    from harness.engine.scoring import RayScoring

DEFAULT_ANSWER_SCORERS = ("correctness", "facts", "instructions", "groundedness", "truncation")
CHUNK_CASES = 4096
"""Cases a run takes through its stages at a time (retrieve, generate, score, write one row group): what a
run holds in memory whatever its size. A run smaller than this is one chunk."""


class RunReport:
    """A stored run: ``path`` (its header file) and ``header`` (ids, counts, stage seconds, aggregates,
    manifest) at once; ``run``, the whole :class:`RunResult`, only when asked for (read from ``path`` on
    first access, then kept: a 1,000,000-case run is gigabytes in memory). ``errors`` is
    :func:`harness.report.console.error_summary` of its outputs, kept while the run streamed."""

    def __init__(self, run: RunResult | None = None, path: Path | None = None, *, header: RunHeader | None = None,
                 errors: dict[str, Any] | None = None, environment: dict[str, Any] | None = None) -> None:
        if path is None:
            raise TypeError("RunReport needs the run's path")
        if header is None:
            if run is None:
                raise TypeError("RunReport needs the run or its header")
            header = RunHeader(format_version=run.format_version, run_id=run.run_id, created_at=run.created_at,
                               manifest_id=run.manifest_id, manifest_path=run.manifest_path, counts=run.counts,
                               stage_seconds=run.stage_seconds, aggregates=run.aggregates, manifest=run.manifest)
        self.path = path
        self._run = run
        self.header: RunHeader = header
        self._errors = errors
        self.environment: dict[str, Any] = environment if environment is not None else (
            run.environment if run is not None else {})

    @property
    def run(self) -> RunResult:
        if self._run is None:
            from harness.runs import load_run

            self._run = load_run(self.path)
        return self._run

    @property
    def loaded(self) -> bool:
        """Whether :attr:`run` is in memory."""
        return self._run is not None

    @property
    def errors(self) -> dict[str, Any]:
        if self._errors is None:
            from harness.report.console import error_summary

            self._errors = error_summary(self.run.outputs)
        return self._errors

    def __repr__(self) -> str:
        return f"RunReport(run_id={self.header.run_id!r}, path={str(self.path)!r})"


def _environment(base_dir: Path) -> dict[str, Any]:
    pkgs: dict[str, str | None] = {}
    for name in ("rag-harness", "sentence-transformers", "faiss-cpu", "torch", "transformers", "numpy"):
        try:
            pkgs[name] = version(name)
        except PackageNotFoundError:
            pkgs[name] = None
    env: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(), "packages": pkgs}
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=base_dir, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            env["git_commit"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return env


def execute(loaded: LoadedManifest, *, progress: Progress = NULL_PROGRESS, layout: Layout | None = None,
            cases: Sequence[GoldenCase] | None = None, scorers: Sequence[ScorerSpec] | None = None,
            concurrency: int | None = None, runs: RunStore | None = None,
            score_contracts: ContractSet | None = None, validated: bool = False,
            engine: ComputeEngine | None = None) -> RunReport:
    """Run the manifest's stages over its golden set and store the run.

    The cases go through the stages :data:`CHUNK_CASES` at a time (retrieve, generate, score, append to the
    run's table), so memory stays flat however many there are; the golden set is read twice, in batches: once
    to check all of it before anything is written, once to run it. Aggregates are accumulated exactly
    (:class:`~harness.aggregate.AggregateAccumulator`). A run that raises leaves nothing stored. The report's
    ``run`` is read back only when asked for.

    The release checks run the same pipeline over other cases: ``cases`` replaces the golden set (logged
    production queries for ``harness replay``; the golden artifact is still verified), ``scorers`` replaces
    the planned scorer list, ``concurrency`` the generator's calls in flight, ``runs`` the store the run
    is saved in (default: the project's run store), and ``score_contracts`` the output contracts answers are
    judged by (default: the manifest's own; a replay judges both sides by the baseline's, the contracts
    production records name, while each side's prompt still shows its own). ``validated``: the caller has
    already checked these ``cases`` with :func:`load_inputs` (the prompt rendered once per case), so the
    render check is not repeated. ``engine`` replaces the manifest's ``[engine]`` (``harness run --engine``)."""
    prep = _prepare(loaded, progress=progress, layout=layout, cases=cases, scorers=scorers, concurrency=concurrency,
                    score_contracts=score_contracts, validated=validated, engine=engine, stream=True)
    try:
        return _stream(prep, runs)
    finally:
        prep.close()


def _stream(prep: _Prepared, runs: RunStore | None) -> RunReport:
    scoring = _ChunkScoring(prep, runs or RunStore(prep.layout.runs))
    try:
        with prep.progress.task("cases", prep.source.count) as advance, \
                prep.progress.task("scoring", prep.source.count) as scored:
            for chunk in prep.source.chunks(CHUNK_CASES):
                scoring.add(chunk, prep.run_stages(chunk), scored)
                advance(len(chunk))
        prep.stage_s["total"] = time.perf_counter() - prep.t_start
        return scoring.commit()
    except BaseException:
        scoring.abort()
        raise


class _ChunkScoring:
    """The one way a run is scored and stored, a chunk at a time (:func:`execute` as it retrieves and generates,
    :meth:`PendingRun.finish` from its spool): :meth:`add` scores a chunk's outputs with the run's scorers,
    accumulates its aggregates exactly (:class:`~harness.aggregate.AggregateAccumulator`), its error summary
    and counts, and appends it to the run's table (the writer opens on the first chunk: its columns are what
    the scorers declare once they have scored); :meth:`commit` writes the header (the caller has set
    ``stage_s["total"]``), :meth:`abort` leaves nothing. Memory: one chunk. The scorers are per case (none
    keeps state across cases but the metrics it declares, read after each chunk and at the end)."""

    def __init__(self, prep: _Prepared, store: RunStore) -> None:
        from harness.report.console import ErrorTally

        self.prep = prep
        self.store = store
        self.built = prep.build_scorers(prep.specs)
        self.acc = AggregateAccumulator()
        self.tally = ErrorTally()
        self.infos: dict[str, MetricInfo] = {}
        self.writer: RunWriter | None = None
        prep.stage_s["score"] = 0.0

    def add(self, chunk: list[GoldenCase], outputs: list[CaseOutput], scored: Callable[[int], None]) -> None:
        prep = self.prep
        t0 = time.perf_counter()
        scores: list[Score] = []
        for scorer in self.built:
            scores.extend(scorer.score(chunk, outputs, prep.ctx))
            self.infos |= {info.name: info for info in scorer.metrics()}
        self.acc.add(chunk, scores)
        prep.stage_s["score"] += time.perf_counter() - t0
        scored(len(chunk))
        prep.count_scores(scores)
        self.tally.add(outputs)
        if self.writer is None:
            self.writer = _open_writer(self.store, prep, self.infos, scores)
        self.writer.append(chunk, outputs, scores)

    def commit(self) -> RunReport:
        prep, loaded, stage_s = self.prep, self.prep.loaded, self.prep.stage_s
        for scorer in self.built:
            self.infos |= {info.name: info for info in scorer.metrics()}
        if self.writer is None:  # no cases at all
            self.writer = _open_writer(self.store, prep, self.infos, [])
        aggregates = self.acc.result(self.infos)
        counts = prep.counts()
        created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        environment = _environment(loaded.base_dir) | prep.index_quality
        path = self.writer.commit(created_at=created_at, manifest=loaded.manifest, manifest_path=str(loaded.path),
                                  environment=environment, scorers=prep.specs, aggregates=aggregates,
                                  stage_seconds=stage_s, counts=counts)
        header = RunHeader(format_version=4, run_id=self.writer.run_id, created_at=created_at,
                           manifest_id=loaded.id, manifest_path=str(loaded.path), counts=counts,
                           stage_seconds=stage_s, aggregates=aggregates, manifest=loaded.manifest)
        return RunReport(path=path, header=header, errors=self.tally.summary(), environment=environment)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def _open_writer(store: RunStore, prep: _Prepared, infos: Mapping[str, MetricInfo],
                 scores: Sequence[Score]) -> RunWriter:
    metrics = list(infos) + sorted({s.metric for s in scores} - set(infos))
    return store.writer(prep.loaded.id, metrics=metrics, tag_keys=prep.source.tag_keys,
                        latency_stages=prep.latency_stages())


class _Spool:
    """A pending run's unscored outputs on disk, one pickled list per chunk in the run's order: an unnamed
    temporary file in the run's folder of the run store (``tempfile.TemporaryFile``: unlinked as it is made,
    so no reader of the store ever sees it and the kernel frees it when the process ends, a SIGKILL included),
    closed by :meth:`remove`. Only this process reads what it wrote."""

    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._fh: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (held open until remove)
        except OSError as exc:
            check_writable(folder / ".pending.spool.tmp")
            raise HarnessError(f"cannot write in {folder}: {exc.strerror or exc}") from None
        self.folder = folder
        self.chunks: list[int] = []  # each chunk's number of outputs

    def write(self, outputs: list[CaseOutput]) -> None:
        pickle.dump(outputs, self._fh, protocol=pickle.HIGHEST_PROTOCOL)
        self._fh.flush()  # the chunk is on disk, not in a buffer
        self.chunks.append(len(outputs))

    def read(self) -> Iterator[list[CaseOutput]]:
        """The chunks, in the order written, one at a time."""
        self._fh.flush()
        self._fh.seek(0)
        for n in self.chunks:
            outputs = pickle.load(self._fh)  # this process's own file, written just before
            assert isinstance(outputs, list) and len(outputs) == n, f"{self.folder}: spool: not the chunk written"
            yield outputs
            del outputs  # not held while the next chunk is read

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()

    @property
    def removed(self) -> bool:
        return self._fh.closed


@dataclass
class PendingRun:
    """A run retrieved and generated but not yet scored nor stored (:func:`execute_unscored`): it holds the
    open cache until :meth:`finish` (which scores, stores and closes it) or :meth:`close`. ``finish`` may run
    in another thread than the one that made it (a replay scores its baseline while the candidate generates);
    the cache connection allows it and nothing else is shared. Its outputs wait on disk (:class:`_Spool`,
    removed by ``finish`` and ``close``), and ``finish`` scores and stores them :data:`CHUNK_CASES` at a time
    through :func:`execute`'s own chunk scoring, so the stored run is the one :func:`execute` stores for the
    same cases; memory holds one chunk of outputs, whatever the number of cases (the cases are the caller's,
    held in memory)."""

    prep: _Prepared
    spool: _Spool
    runs: RunStore
    _closed: bool = False

    @property
    def cases(self) -> list[GoldenCase]:
        assert self.prep.source.cases is not None
        return self.prep.source.cases

    @property
    def loaded(self) -> LoadedManifest:
        return self.prep.loaded

    @property
    def layout(self) -> Layout:
        return self.prep.layout

    @property
    def cache(self) -> Cache:
        return self.prep.cache

    @property
    def progress(self) -> Progress:
        return self.prep.progress

    @property
    def ctx(self) -> ScoringContext:
        return self.prep.ctx

    @property
    def specs(self) -> list[ScorerSpec]:
        return self.prep.specs

    def close(self) -> None:
        """Remove the spool, close the cache (and the scoring engine); again: nothing."""
        if not self._closed:
            self._closed = True
            try:
                self.spool.remove()
            finally:
                self.prep.close()

    def finish(self) -> RunReport:
        """Score the outputs, aggregate, store the run; remove the spool and close the cache whatever happens.
        The report's ``run`` is read back only when asked for."""
        try:
            return self._finish()
        finally:
            self.close()

    def _finish(self) -> RunReport:
        if self._closed:
            raise RuntimeError("this pending run is closed")
        prep = self.prep
        scoring = _ChunkScoring(prep, self.runs)
        try:
            with prep.progress.task("scoring", prep.source.count) as scored:
                chunks = prep.source.chunks(CHUNK_CASES)
                for outputs in self.spool.read():  # not zip: its result tuple would hold a chunk during the next
                    scoring.add(next(chunks), outputs, scored)
                    del outputs
                assert next(chunks, None) is None, "the spool holds every chunk of the run"
            prep.stage_s["total"] = prep.stage_s.pop("_before_score") + prep.stage_s["score"]
            return scoring.commit()
        except BaseException:
            scoring.abort()
            raise


def _index_quality(retrieval: RetrievalOutcome) -> dict[str, Any]:
    """What an approximate index costs, when the retrieval stage measured it (``stats["index_quality"]``:
    recall@k of the recipe's index against exact search on the same corpus, over a seeded query sample)."""
    quality = retrieval.stats.get("index_quality")
    return {"index_quality": quality} if quality else {}


def _embed_identity(embedder: Any) -> str:
    """What the vectors ``embedder.embed(texts, "")`` returns depend on (the key of its per-text cache minus
    the text): the scorers that cache values computed from vectors key them by it."""
    from harness.hashing import sha256_parts

    return sha256_parts("embed", str(embedder.backend), str(embedder.model_pin), str(embedder.max_seq_length), "")


@dataclass(frozen=True)
class CaseSource:
    """A run's cases: held in memory (given cases, or a golden set supplied outputs answer), or the golden
    file, checked whole once and read again in batches by :meth:`chunks`. ``count`` and ``tag_keys`` (sorted)
    are the checking pass's."""

    count: int
    tag_keys: tuple[str, ...]
    cases: list[GoldenCase] | None = None
    path: Path | None = None
    doc_ids: Container[str] | None = None

    def chunks(self, size: int) -> Iterator[list[GoldenCase]]:
        if self.cases is not None:
            for start in range(0, len(self.cases), size):
                yield self.cases[start:start + size]
            return
        assert self.path is not None
        seen = 0
        for chunk in iter_golden(self.path, self.doc_ids, batch=size, checked=True):
            seen += len(chunk)
            yield chunk
        if seen != self.count:
            raise InputError(self.path, f"changed while the run read it: {seen} cases, {self.count} when checked")


@dataclass
class _Prepared:
    """Everything a run's chunks share, set up once: inputs checked, pins verified, the cache open, the
    stages built; and the counts the chunks add to."""

    loaded: LoadedManifest
    layout: Layout
    cache: Cache
    progress: Progress
    source: CaseSource
    corpus: Corpus  # the passage store (harness.corpus): the index reads it in batches, the rest by doc id
    specs: list[ScorerSpec]
    ctx: ScoringContext
    retrieval: RetrievalStage | None
    generation: GenerationStage | None
    supplied: SuppliedOutputs | None
    stage_s: dict[str, float]
    t_start: float
    index_quality: dict[str, Any] = field(default_factory=dict)
    tally: dict[str, int] = field(default_factory=dict)
    remote: RayScoring | None = None  # the Ray engine's scoring (harness.engine.scoring); None: all here

    def build_scorers(self, specs: Sequence[ScorerSpec]) -> list[Scorer]:
        """The run's scorers, in order; on the Ray engine those of
        :data:`harness.engine.scoring.REMOTE_SCORERS` ship their heavy work to the cluster (same scores)."""
        built = [SCORERS.build(spec.name, spec.args) for spec in specs]
        return self.remote.wrap(built) if self.remote is not None else built

    def close(self) -> None:
        """Close the cache and the scoring engine (a Ray cluster only if it started one)."""
        try:
            if self.remote is not None:
                self.remote.close()
        finally:
            try:
                self.corpus.close()
            finally:
                self.cache.close()

    def run_stages(self, cases: list[GoldenCase]) -> list[CaseOutput]:
        """Retrieve and generate ``cases``: their outputs, in their order; the counts and seconds added."""
        stage_s, tally = self.stage_s, self.tally
        t0 = time.perf_counter()
        if self.supplied is not None:
            retrieval = supplied_retrieval(cases, self.supplied)
            encoded = 0
        else:
            assert self.retrieval is not None
            encoded = self.retrieval.embedder.encoded  # what it had encoded before (answers in earlier chunks too)
            retrieval = self.retrieval.run(cases, self.corpus)
        stage_s["retrieve"] = stage_s.get("retrieve", 0.0) + time.perf_counter() - t0
        stats = retrieval.stats
        _add(tally, "retrieved", int(stats.get("cases_retrieved", 0)))
        _add(tally, "index_built", int(stats.get("index_built", 0)))
        _add(tally, "retrieval_errors", sum(1 for e in retrieval.errors.values() if e.stage == "retrieve"))
        if "embedded_texts" in stats:  # the embedder's count since it was made: this chunk's retrieval is the rest
            _add(tally, "embedded_texts", int(stats["embedded_texts"]) - encoded)
        if not self.index_quality:
            self.index_quality = _index_quality(retrieval)
        generation = None
        if self.generation is not None:
            t0 = time.perf_counter()
            retrieved = [c for c in cases if c.id not in retrieval.errors]  # no ranking, nothing to answer from
            n = self.generation.engine.n_passages
            docs = self.corpus.get_many(d.doc_id for c in retrieved for d in retrieval.rankings[c.id][:n])
            generation = self.generation.run(retrieved, retrieval.rankings, docs)
            stage_s["generate"] = stage_s.get("generate", 0.0) + time.perf_counter() - t0
            _add(tally, "generated", int(generation.stats["generated"]))
            _add(tally, "generation_errors", int(generation.stats["errors"]))
            _add(tally, "truncated", int(generation.stats.get("truncated", 0)))
        supplied = self.supplied
        if supplied is not None and supplied.has_answers:
            outputs = [supplied_case_output(c.id, supplied, retrieval) for c in cases]
        else:
            outputs = [_case_output(c.id, retrieval, generation, supplied) for c in cases]
        _add(tally, "cases", len(cases))
        _add(tally, "errors", sum(1 for o in outputs if o.error))
        if supplied is not None:
            _add(tally, "outputs_missing",
                 sum(1 for o in outputs if o.error is not None and o.error.stage == "outputs"))
            _add(tally, "outputs_unranked", supplied.unranked([c.id for c in cases]))
        return outputs

    def count_scores(self, scores: Sequence[Score]) -> None:
        _add(self.tally, "unscored", sum(1 for s in scores if s.value is None))

    def counts(self) -> dict[str, int]:
        t = self.tally
        counts = {
            "cases": t.get("cases", 0),
            "errors": t.get("errors", 0),
            "unscored": t.get("unscored", 0),
            "retrieved": t.get("retrieved", 0),
            "retrieval_errors": t.get("retrieval_errors", 0),
            "embedded_texts": t.get("embedded_texts", 0),
            "index_built": t.get("index_built", 0),
            "generated": t.get("generated", 0),
            "generation_errors": t.get("generation_errors", 0),
            "truncated": t.get("truncated", 0),
            # cache rows that failed their checksum or did not decode: recomputed, never trusted
            "cache_damaged": self.cache.damaged_total,
        }
        if self.supplied is not None:
            counts["outputs_missing"] = t.get("outputs_missing", 0)
            counts["outputs_unmatched"] = self.supplied.unmatched
            counts["outputs_unranked"] = t.get("outputs_unranked", 0)
        return counts

    def latency_stages(self) -> list[str]:
        """The latency columns of the run's table: the stages that run here, and what supplied outputs record."""
        stages = ["retrieve"] if self.retrieval is not None else []
        if self.generation is not None:
            stages.append("generate")
        if self.supplied is not None:
            given = {k for out in self.supplied.by_case.values() for k in out.latency_s}
            stages += sorted(given - set(stages))
            if "retrieve" not in stages and self.supplied.has_rankings and self.generation is not None:
                stages.insert(0, "retrieve")
        return stages


def _add(tally: dict[str, int], key: str, n: int) -> None:
    tally[key] = tally.get(key, 0) + n


def _prepare(loaded: LoadedManifest, *, progress: Progress, layout: Layout | None,
             cases: Sequence[GoldenCase] | None, scorers: Sequence[ScorerSpec] | None, concurrency: int | None,
             score_contracts: ContractSet | None, validated: bool, engine: ComputeEngine | None,
             stream: bool) -> _Prepared:
    t_start = time.perf_counter()
    layout = layout or Layout.for_manifest(loaded.path)
    stage_s: dict[str, float] = {}
    # Every input is read and validated before anything is written: bad input is exit 2 and leaves
    # no cache, snapshot or run behind. Then the pins; only then the cache (on a first run the pins
    # are hashed without the memo, so a mismatch creates no .harness either) and the snapshots.
    t0 = time.perf_counter()
    summary, source, inputs = _checked_inputs(loaded, cases, render_check=not (validated and cases is not None),
                                              stream=stream, store_root=layout.corpus_store)
    if concurrency is not None and inputs.generation is not None:
        gen_engine = inputs.generation.engine.model_copy(update={"concurrency": concurrency})
        inputs = replace(inputs, generation=replace(inputs.generation, engine=gen_engine))
    if engine is not None and inputs.retrieval is not None:
        inputs = replace(inputs, retrieval=replace(inputs.retrieval, engine=engine))
    compute = engine or loaded.manifest.engine or ComputeEngine()
    if compute.kind != "local":
        from harness.engine.ray_engine import require_ray

        require_ray()  # exit 2 naming the extra, before anything is written
    stage_s["load"] = time.perf_counter() - t0
    cache = Cache(layout.cache_db) if layout.cache_db.exists() else None
    corpus: Corpus = MemoryCorpus([])
    try:
        t0 = time.perf_counter()
        require_verified(loaded, HashMemo(cache))
        if cache is None:
            cache = Cache(layout.cache_db)
        snapshot_artifacts(inputs.snapshots, layout)
        stage_s["verify"] = time.perf_counter() - t0
        if "corpus" in loaded.manifest.artifacts:
            t0 = time.perf_counter()
            pin = loaded.manifest.artifact("corpus").sha256
            assert pin, "verified: every artifact is pinned"
            corpus = open_corpus(loaded.resolve("corpus"), pin, layout.corpus_store, summary.count, progress)
            stage_s["load"] += time.perf_counter() - t0

        supplied = inputs.supplied
        embed = None
        extras: dict[str, Any] = {}
        ray_engine = None  # one engine for the run's retrieval and scoring, closed with the run (RayScoring.close)
        if compute.kind != "local":
            from harness.engine import remote_engine

            ray_engine = remote_engine(compute)
        retrieval_stage = None
        encoder = None  # what the answers are embedded with (a scoring actor loads the same)
        if supplied is not None:
            if inputs.embedding is not None:
                embedder = make_embedder(inputs.embedding[0], inputs.embedding[1], cache, progress)
                embed = lambda texts: embedder.embed(texts, "", "embedding answers")  # noqa: E731
                extras["embed_identity"] = _embed_identity(embedder)
                encoder = embedder.spec if compute.kind != "local" else None
        else:
            assert inputs.retrieval is not None, "a manifest without outputs has a retriever (checked on load)"
            stage = RetrievalStage(inputs.retrieval, cache, IndexStore(layout.index_store), progress,
                                   engine=ray_engine)
            retrieval_stage = stage
            embed = lambda texts: stage.embedder.embed(texts, "", "embedding answers")  # noqa: E731
            extras["embed_identity"] = _embed_identity(stage.embedder)
            encoder = stage.embedder.spec if compute.kind != "local" else None
        remote = None
        if ray_engine is not None:
            from harness.engine.scoring import RayScoring

            remote = RayScoring(ray_engine, encoder)
        generation = GenerationStage(inputs.generation, cache, progress) if inputs.generation is not None else None
        specs = list(scorers) if scorers is not None else planned_scorer_specs(loaded.manifest, supplied)
        judged_by = score_contracts if score_contracts is not None else inputs.contracts
        ctx = ScoringContext(docs=corpus, contracts=judged_by, cache=cache, progress=progress, embed=embed,
                             extras=extras)
        return _Prepared(loaded=loaded, layout=layout, cache=cache, progress=progress, source=source,
                         corpus=corpus, specs=specs, ctx=ctx, retrieval=retrieval_stage, generation=generation,
                         supplied=supplied, stage_s=stage_s, t_start=t_start, remote=remote)
    except BaseException:
        corpus.close()
        if cache is not None:
            cache.close()
        raise


def execute_unscored(loaded: LoadedManifest, *, progress: Progress = NULL_PROGRESS, layout: Layout | None = None,
                     cases: Sequence[GoldenCase] | None = None, scorers: Sequence[ScorerSpec] | None = None,
                     concurrency: int | None = None, runs: RunStore | None = None,
                     score_contracts: ContractSet | None = None, validated: bool = False,
                     engine: ComputeEngine | None = None) -> PendingRun:
    """:func:`execute` up to the scoring: inputs checked (``cases`` are held in memory), pins verified,
    retrieval and generation done :data:`CHUNK_CASES` at a time (every answer in the cache), each chunk's
    outputs spooled to disk; :meth:`PendingRun.finish` scores and stores the run. Same arguments as
    :func:`execute`."""
    prep = _prepare(loaded, progress=progress, layout=layout, cases=cases, scorers=scorers, concurrency=concurrency,
                    score_contracts=score_contracts, validated=validated, engine=engine, stream=False)
    spool: _Spool | None = None
    try:
        store = runs or RunStore(prep.layout.runs)
        spool = _Spool(store.root / loaded.id)  # where the run's table will be: before anything is computed
        for chunk in prep.source.chunks(CHUNK_CASES):
            spool.write(prep.run_stages(chunk))
        prep.stage_s["_before_score"] = time.perf_counter() - prep.t_start
        return PendingRun(prep=prep, spool=spool, runs=store)
    except BaseException:
        try:
            if spool is not None:
                spool.remove()
        finally:
            prep.close()
        raise


@dataclass(frozen=True)
class StageInputs:
    """Each stage's typed inputs, resolved once from the manifest by :func:`stage_inputs`; no stage reads
    the manifest itself."""

    retrieval: RetrievalInputs | None  # None: supplied outputs replace retrieval
    generation: GenerationInputs | None  # None: the manifest has no generator
    contracts: ContractSet | None  # the validators' output contracts (generation and the format scorer)
    snapshots: tuple[SnapshotSource, ...]  # the pinned path artifacts, to snapshot once verified
    outputs: tuple[OutputsConfig, Path | None] | None = None  # the outputs artifact: its params and file
    embedding: tuple[EmbeddingConfig, Path | None] | None = None  # the embedding model (config, folder), if pinned
    supplied: SuppliedOutputs | None = None  # the outputs read and checked (set by load_inputs)


def stage_inputs(loaded: LoadedManifest) -> StageInputs:
    """The one place the stages' artifacts are resolved and parsed (paths leaving the project are refused
    unless the artifact opts in): the index recipe (its file overlaid with the artifact's params), the
    embedding model's folder, the output contracts, the prompt template, the generator's settings and the
    supplied outputs' file."""
    m = loaded.manifest
    embedding = None
    if "embedding" in m.artifacts:
        config = EmbeddingConfig.model_validate(m.artifact("embedding").params)
        embedding = (config, loaded.resolve("embedding") if config.backend == "sentence-transformers" else None)
    outputs = None
    if "outputs" in m.artifacts:
        art = m.artifact("outputs")
        outputs = (OutputsConfig.model_validate(art.params), loaded.resolve("outputs") if art.path else None)
    retrieval = _retrieval_inputs(loaded, embedding) if outputs is None else None
    contracts = load_contracts(loaded.resolve("validators")) if "validators" in m.artifacts else None
    generation = _generation_inputs(loaded, contracts) if "generator" in m.artifacts else None
    root = project_root(loaded.base_dir)
    snapshots = tuple(SnapshotSource(art, loaded.resolve(role), None if art.allow_outside else root)
                      for role, art in m.artifacts.items() if art.path is not None and art.sha256 is not None)
    return StageInputs(retrieval=retrieval, generation=generation, contracts=contracts, snapshots=snapshots,
                       outputs=outputs, embedding=embedding)


def _retrieval_inputs(loaded: LoadedManifest, embedding: tuple[EmbeddingConfig, Path | None] | None
                      ) -> RetrievalInputs:
    m = loaded.manifest
    assert embedding is not None, "a manifest that retrieves pins an embedding model (checked on load)"
    index = m.artifact("index")
    recipe_path = loaded.resolve("index") if index.path is not None else None
    raw = dict(index.params)
    if recipe_path is not None:
        raw = load_recipe_file(recipe_path) | raw
    return RetrievalInputs(
        config=RetrieverConfig.model_validate(m.artifact("retriever").params),
        embedding=embedding[0],
        recipe=normalize_recipe(raw),
        source=RecipeSource.read(loaded.path, recipe_path, frozenset(index.params)),
        model_dir=embedding[1],
        corpus_pin=m.artifact("corpus").sha256 or "",
        engine=m.engine or ComputeEngine(),
    )


def _generation_inputs(loaded: LoadedManifest, contracts: ContractSet | None) -> GenerationInputs:
    m = loaded.manifest
    if "prompt" not in m.artifacts:
        raise ManifestError(f"{loaded.path}: a generator needs a 'prompt' artifact (kind = \"prompt\")")
    params = dict(m.artifact("generator").params)
    if "name" not in params:
        raise ManifestError(f"{loaded.path}: artifacts.generator.params needs a 'name' "
                            "(a registered generator such as 'extractive' or 'openai')")
    return GenerationInputs(
        template=PromptTemplate.load(loaded.resolve("prompt")),
        engine=EngineConfig.model_validate({k: params[k] for k in ENGINE_KEYS if k in params}),
        args=generator_args(m.artifact("generator"), loaded.base_dir, ENGINE_KEYS),
        contracts=contracts,
    )


def load_inputs(loaded: LoadedManifest, given: Sequence[GoldenCase] | None = None, *, render_check: bool = True
                ) -> tuple[CorpusSummary, list[GoldenCase], StageInputs]:
    """Read and validate every input a run needs, writing nothing: corpus (read in batches: its
    :class:`~harness.corpus.CorpusSummary` comes back, not its documents), the stages' inputs, golden set
    (relevance against the corpus), supplied outputs (against the golden set and the corpus), and the prompt
    template rendered once per case (a passage of the corpus standing in for the retrieved ones), so any of
    them is bad input before a run starts. ``given`` cases replace the golden set (a manifest with supplied
    outputs answers its own golden set only, so it cannot take them). ``render_check=False`` skips the
    per-case render (for cases a caller has already checked against this manifest's template)."""
    corpus, source, inputs = _checked_inputs(loaded, given, render_check=render_check, stream=False)
    assert source.cases is not None
    return corpus, source.cases, inputs


def _checked_inputs(loaded: LoadedManifest, given: Sequence[GoldenCase] | None, *, render_check: bool,
                    stream: bool, store_root: Path | None = None) -> tuple[CorpusSummary, CaseSource, StageInputs]:
    """:func:`load_inputs`; with ``stream``, a golden file (without supplied outputs, which need its cases
    whole) is checked in batches and comes back as a :class:`CaseSource` to read again, keeping only its
    count and tag keys. ``store_root``: where passage stores are kept; one for the corpus's pin stands in for
    the corpus's scan (it was built from that content once it validated; the pin is verified before use)."""
    m = loaded.manifest
    corpus = EMPTY_SUMMARY
    if "corpus" in m.artifacts:
        corpus = summarize(loaded.resolve("corpus"), m.artifact("corpus").sha256, store_root)
    inputs = stage_inputs(loaded)
    if inputs.retrieval is not None:
        check_inputs(inputs.retrieval, corpus)
    doc_ids = corpus.ids if "corpus" in m.artifacts else None
    golden_path = loaded.resolve("golden")
    cases: list[GoldenCase] | None
    if given is not None:
        if inputs.outputs is not None:
            raise ManifestError(f"{loaded.path}: its outputs artifact answers its own golden set; it cannot "
                                "answer other queries (replay needs a manifest that retrieves and generates)")
        cases = list(given)
    elif stream and inputs.outputs is None:
        cases = None
    else:
        cases = load_golden(golden_path, doc_ids)
    if inputs.outputs is not None:
        assert cases is not None
        config, outputs_path = inputs.outputs
        supplied = load_outputs(outputs_path, config, golden_path, cases, doc_ids)
        _check_supplied(loaded, supplied, inputs, corpus)
        inputs = replace(inputs, supplied=supplied)
    contracts, generation = inputs.contracts, inputs.generation
    answered = generation is not None or (inputs.supplied is not None and inputs.supplied.has_answers)
    where = golden_path if given is None else loaded.path
    tag_keys: set[str] = set()
    count = 0

    def check(batch: Sequence[GoldenCase]) -> None:
        nonlocal count
        count += len(batch)
        for case in batch:
            tag_keys.update(case.tags)
        if not answered:
            return
        for case in batch:
            if case.contract is not None and (contracts is None or contracts.get(case.contract) is None):
                what = "the validators artifact" if contracts is not None else "the manifest (it has no validators)"
                raise InputError(where, f"case {case.id!r} names contract {case.contract!r}, which {what} does not "
                                        "define", field="contract")
        if generation is not None and render_check:
            d = corpus.first
            sample = [{"id": d.id, "title": d.title, "text": d.text, "score": 1.0, "rank": 1}] if d else []
            generation.template.check(batch, sample, contracts)

    if cases is not None:
        check(cases)
        return corpus, CaseSource(count=count, tag_keys=tuple(sorted(tag_keys)), cases=cases), inputs
    for batch in iter_golden(golden_path, doc_ids, batch=CHUNK_CASES):
        check(batch)
    return corpus, CaseSource(count=count, tag_keys=tuple(sorted(tag_keys)), path=golden_path,
                              doc_ids=doc_ids), inputs


def _check_supplied(loaded: LoadedManifest, supplied: SuppliedOutputs, inputs: StageInputs,
                    corpus: CorpusSummary) -> None:
    """Supplied outputs and a generator: either the outputs answer (then no generator may be pinned) or they
    only rank the corpus and the pinned generator answers from it; never both, never a generator with
    nothing to read."""
    if inputs.generation is None:
        return
    if supplied.has_answers:
        raise ManifestError(f"{loaded.path}: {supplied.source} carries answers and the manifest pins a generator; "
                            "one of them would be ignored",
                            hint="remove [artifacts.generator] to score the supplied answers, or the answers "
                                 "to generate them")
    if not supplied.has_rankings or not corpus.count:
        raise ManifestError(f"{loaded.path}: the generator needs ranked doc ids of a pinned corpus to read "
                            f"({supplied.source} has {'no rankings' if not supplied.has_rankings else 'no corpus'})",
                            hint="give 'retrieved' doc ids in the outputs and pin [artifacts.corpus]")


def scorer_specs(m: Manifest, generated: bool, *, supplied_answers: bool = False, ranked: bool = True
                 ) -> list[ScorerSpec]:
    """Retrieval metrics whenever there are rankings (supplied outputs of answers alone have none: their
    retrieval is not judged, rather than judged as having retrieved nothing); the built-in answer scorers
    when there are answers (generated, or supplied: then without ``truncation``, which needs a generator's
    finish reason); then the manifest's ``scorers`` (an entry replaces the default of the same name)."""
    specs = [ScorerSpec(name="retrieval", args={"metrics": list(m.metrics.retrieval),
                                                "relevance_level": m.metrics.relevance_level})] if ranked else []
    if generated:
        specs += [ScorerSpec(name=n) for n in DEFAULT_ANSWER_SCORERS if not (supplied_answers and n == "truncation")]
        if "validators" in m.artifacts:
            specs.append(ScorerSpec(name="format"))
    for extra in m.scorers or ():
        specs = [s for s in specs if s.name != extra.name] + [extra]
    return specs


def planned_scorer_specs(m: Manifest, supplied: SuppliedOutputs | None) -> list[ScorerSpec]:
    """The scorers a run of ``m`` runs: answer scorers when a generator answers or the supplied outputs carry
    answers, retrieval when there are rankings (:func:`scorer_specs`). The gates' check asks the same."""
    supplied_answers = supplied is not None and supplied.has_answers
    return scorer_specs(m, "generator" in m.artifacts or supplied_answers, supplied_answers=supplied_answers,
                        ranked=supplied is None or supplied.has_rankings)


def supplied_retrieval(cases: list[GoldenCase], supplied: SuppliedOutputs) -> RetrievalOutcome:
    """The supplied outputs' rankings as the retrieval stage's outcome: a case without a record, or whose
    system failed to retrieve, has no ranking and its error."""
    errors: dict[str, CaseError] = {}
    rankings: dict[str, list[RankedDoc]] = {}
    latency: dict[str, float] = {}
    for c in cases:
        out = supplied.by_case.get(c.id)
        missing = supplied.missing(c.id)
        if missing is not None:
            errors[c.id] = missing
        elif out is not None and out.error is not None and out.error.stage == "retrieve":
            errors[c.id] = CaseError(stage="retrieve", kind=out.error.kind, message=out.error.message)
        rankings[c.id] = list(out.retrieved) if out is not None else []
        if out is not None and "retrieve" in out.latency_s:  # never a made-up 0: a latency gate cannot judge it
            latency[c.id] = out.latency_s["retrieve"]
    return RetrievalOutcome(rankings=rankings, latency_s=latency, cache_hit={}, stats={"cases_retrieved": 0.0},
                            errors=errors)


def supplied_case_output(case_id: str, supplied: SuppliedOutputs, retrieval: RetrievalOutcome) -> CaseOutput:
    """A case's output as the supplied outputs give it (answers included): nothing was generated here."""
    out = supplied.by_case.get(case_id)
    error = retrieval.errors.get(case_id)
    if error is None and out is not None and out.error is not None:
        error = CaseError(stage=out.error.stage, kind=out.error.kind, message=out.error.message)
    return CaseOutput(case_id=case_id, ranking=tuple(retrieval.rankings[case_id]),
                      ranking_scored=out is None or out.scored, answer=out.answer if out is not None else None,
                      contexts=passages(out) if out is not None else (), error=error,
                      latency_s=dict(out.latency_s) if out is not None else {}, cache_hits={})


def _case_output(case_id: str, retrieval: RetrievalOutcome, generation: GenerationOutcome | None,
                 supplied: SuppliedOutputs | None = None) -> CaseOutput:
    # supplied outputs record a retrieval latency only where the system measured one, and no cache hits
    latency = {"retrieve": retrieval.latency_s[case_id]} if case_id in retrieval.latency_s else {}
    hits = {"retrieve": retrieval.cache_hit[case_id]} if case_id in retrieval.cache_hit else {}
    given = supplied.by_case.get(case_id) if supplied is not None else None
    scored = given is None or given.scored
    if generation is None or case_id in retrieval.errors:
        return CaseOutput(case_id=case_id, ranking=tuple(retrieval.rankings[case_id]),
                          ranking_scored=scored, latency_s=latency,
                          cache_hits=hits, error=retrieval.errors.get(case_id),
                          contexts=passages(given) if given is not None else ())
    latency["generate"] = generation.latency_s[case_id]
    hits["generate"] = generation.cache_hit[case_id]
    return CaseOutput(
        case_id=case_id,
        ranking=tuple(retrieval.rankings[case_id]),
        ranking_scored=scored,
        answer=generation.answers[case_id],
        messages=tuple(generation.messages[case_id]),
        error=generation.errors.get(case_id),
        generation=GenerationRecord(attempts=generation.attempts[case_id],
                                    passages_shown=tuple(generation.passages_shown[case_id]),
                                    finish_reason=generation.finish_reason.get(case_id)),
        latency_s=latency,
        cache_hits=hits,
    )


def run_manifest(manifest_path: str | Path | None = None, *, progress: Progress = NULL_PROGRESS,
                 engine_kind: str | None = None) -> RunReport:
    """Load the manifest and :func:`execute` it; ``engine_kind`` ("local" | "ray") overrides its ``[engine]``
    kind, keeping the table's other settings."""
    loaded = load_manifest(manifest_path)
    engine = None
    if engine_kind is not None:
        engine = (loaded.manifest.engine or ComputeEngine()).model_copy(update={"kind": engine_kind})
    return execute(loaded, progress=progress, engine=engine)


def summary(report: RunReport) -> dict[str, Any]:
    """The `--json` summary: aggregates as {metric: mean}, plus counts and where the run is (from the run's
    header: the run itself is not read)."""
    head = report.header
    return {
        "run_id": head.run_id,
        "manifest_id": head.manifest_id,
        "path": str(report.path),
        "aggregates": {k: v.mean for k, v in head.aggregates.overall.items()},
        "segments": {seg: {k: v.mean for k, v in ms.items()} for seg, ms in head.aggregates.segments.items()},
        "counts": head.counts,
        "stage_seconds": head.stage_seconds,
    } | ({"index_quality": quality} if (quality := report.environment.get("index_quality")) else {})
