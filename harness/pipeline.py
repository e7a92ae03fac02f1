"""`harness run`: manifest -> verified artifacts -> retrieval -> scores -> stored RunResult.

Each stage is a function of its inputs' hashes and caches under them (see the stage modules);
this module only wires them in one direction and records what happened.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness.aggregate import aggregate
from harness.cache import Cache
from harness.contracts import ContractSet, load_contracts
from harness.errors import InputError, ManifestError
from harness.generate.stage import ENGINE_KEYS, EngineConfig, GenerationInputs, GenerationOutcome, GenerationStage
from harness.golden import load_corpus, load_golden
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
from harness.runs import RunStore, new_run_id
from harness.scorers import SCORERS, ScoringContext
from harness.snapshots import SnapshotSource, snapshot_artifacts
from harness.storage import Layout
from harness.types import (
    CaseError,
    CaseOutput,
    ComputeEngine,
    CorpusDoc,
    GenerationRecord,
    GoldenCase,
    Manifest,
    RankedDoc,
    RunResult,
    Score,
    ScorerSpec,
)

DEFAULT_ANSWER_SCORERS = ("correctness", "facts", "instructions", "groundedness", "truncation")


@dataclass
class RunReport:
    run: RunResult
    path: Path


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

    The release checks run the same pipeline over other cases: ``cases`` replaces the golden set (logged
    production queries for ``harness replay``; the golden artifact is still verified), ``scorers`` replaces
    the planned scorer list, ``concurrency`` the generator's calls in flight, ``runs`` the store the run
    is saved in (default: the project's run store), and ``score_contracts`` the output contracts answers are
    judged by (default: the manifest's own; a replay judges both sides by the baseline's, the contracts
    production records name, while each side's prompt still shows its own). ``validated``: the caller has
    already checked these ``cases`` with :func:`load_inputs` (the prompt rendered once per case), so the
    render check is not repeated. ``engine`` replaces the manifest's ``[engine]`` (``harness run --engine``)."""
    return execute_unscored(loaded, progress=progress, layout=layout, cases=cases, scorers=scorers,
                            concurrency=concurrency, runs=runs, score_contracts=score_contracts,
                            validated=validated, engine=engine).finish()


@dataclass
class PendingRun:
    """A run retrieved and generated but not yet scored nor stored (:func:`execute_unscored`): it holds the
    open cache until :meth:`finish` (which scores, stores and closes it) or :meth:`close`. ``finish`` may run
    in another thread than the one that made it (a replay scores its baseline while the candidate generates);
    the cache connection allows it and nothing else is shared."""

    loaded: LoadedManifest
    layout: Layout
    cache: Cache
    progress: Progress
    cases: list[GoldenCase]
    outputs: list[CaseOutput]
    specs: list[ScorerSpec]
    ctx: ScoringContext
    retrieval: RetrievalOutcome
    generation: GenerationOutcome | None
    supplied: SuppliedOutputs | None
    stage_s: dict[str, float]
    runs: RunStore | None
    _closed: bool = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cache.close()

    def finish(self) -> RunReport:
        """Score the outputs, aggregate, store the run; close the cache whatever happens."""
        try:
            return self._finish()
        finally:
            self.close()

    def _finish(self) -> RunReport:
        cases, outputs, stage_s, cache = self.cases, self.outputs, self.stage_s, self.cache
        retrieval, generation, supplied = self.retrieval, self.generation, self.supplied
        t0 = time.perf_counter()
        scores: list[Score] = []
        infos: dict[str, MetricInfo] = {}
        with self.progress.task("scoring", len(self.specs)) as advance:
            for spec in self.specs:
                scorer = SCORERS.build(spec.name, spec.args)
                scores.extend(scorer.score(cases, outputs, self.ctx))
                infos |= {info.name: info for info in scorer.metrics()}
                advance(1)
        aggregates = aggregate(cases, scores, infos)
        stage_s["score"] = time.perf_counter() - t0
        stage_s["total"] = stage_s.pop("_before_score") + stage_s["score"]

        counts = {
            "cases": len(cases),
            "errors": sum(1 for o in outputs if o.error),
            "unscored": sum(1 for s in scores if s.value is None),
            "retrieved": int(retrieval.stats.get("cases_retrieved", 0)),
            "retrieval_errors": sum(1 for e in retrieval.errors.values() if e.stage == "retrieve"),
            "embedded_texts": int(retrieval.stats.get("embedded_texts", 0)),
            "index_built": int(retrieval.stats.get("index_built", 0)),
            "generated": int(generation.stats["generated"]) if generation else 0,
            "generation_errors": int(generation.stats["errors"]) if generation else 0,
            "truncated": int(generation.stats.get("truncated", 0)) if generation else 0,
            # cache rows that failed their checksum or did not decode: recomputed, never trusted
            "cache_damaged": cache.damaged_total,
        }
        if supplied is not None:
            counts["outputs_missing"] = sum(1 for o in outputs if o.error is not None and o.error.stage == "outputs")
            counts["outputs_unmatched"] = supplied.unmatched
            counts["outputs_unranked"] = supplied.unranked([c.id for c in cases])
        loaded = self.loaded
        run = RunResult(
            run_id=new_run_id(),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            manifest_id=loaded.id,
            manifest=loaded.manifest,
            manifest_path=str(loaded.path),
            environment=_environment(loaded.base_dir) | _index_quality(retrieval),
            scorers=tuple(self.specs),
            cases=tuple(cases),
            outputs=tuple(outputs),
            scores=tuple(scores),
            aggregates=aggregates,
            stage_seconds=stage_s,
            counts=counts,
        )
        path = (self.runs or RunStore(self.layout.runs)).save(run)
        return RunReport(run=run, path=path)


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


def execute_unscored(loaded: LoadedManifest, *, progress: Progress = NULL_PROGRESS, layout: Layout | None = None,
                     cases: Sequence[GoldenCase] | None = None, scorers: Sequence[ScorerSpec] | None = None,
                     concurrency: int | None = None, runs: RunStore | None = None,
                     score_contracts: ContractSet | None = None, validated: bool = False,
                     engine: ComputeEngine | None = None) -> PendingRun:
    """:func:`execute` up to the scoring: inputs checked, pins verified, retrieval and generation done (every
    answer in the cache); :meth:`PendingRun.finish` scores and stores the run. Same arguments as
    :func:`execute`."""
    t_start = time.perf_counter()
    layout = layout or Layout.for_manifest(loaded.path)
    stage_s: dict[str, float] = {}
    # Every input is read and validated before anything is written: bad input is exit 2 and leaves
    # no cache, snapshot or run behind. Then the pins; only then the cache (on a first run the pins
    # are hashed without the memo, so a mismatch creates no .harness either) and the snapshots.
    t0 = time.perf_counter()
    corpus, cases, inputs = load_inputs(loaded, cases, render_check=not (validated and cases is not None))
    if concurrency is not None and inputs.generation is not None:
        gen_engine = inputs.generation.engine.model_copy(update={"concurrency": concurrency})
        inputs = replace(inputs, generation=replace(inputs.generation, engine=gen_engine))
    if engine is not None and inputs.retrieval is not None:
        inputs = replace(inputs, retrieval=replace(inputs.retrieval, engine=engine))
    stage_s["load"] = time.perf_counter() - t0
    cache = Cache(layout.cache_db) if layout.cache_db.exists() else None
    try:
        t0 = time.perf_counter()
        require_verified(loaded, HashMemo(cache))
        if cache is None:
            cache = Cache(layout.cache_db)
        snapshot_artifacts(inputs.snapshots, layout)
        stage_s["verify"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        supplied = inputs.supplied
        embed = None
        extras: dict[str, Any] = {}
        if supplied is not None:
            retrieval = supplied_retrieval(cases, supplied)
            if inputs.embedding is not None:
                embedder = make_embedder(inputs.embedding[0], inputs.embedding[1], cache, progress)
                embed = lambda texts: embedder.embed(texts, "", "embedding answers")  # noqa: E731
                extras["embed_identity"] = _embed_identity(embedder)
        else:
            assert inputs.retrieval is not None, "a manifest without outputs has a retriever (checked on load)"
            retrieval_stage = RetrievalStage(inputs.retrieval, cache, IndexStore(layout.index_store), progress)
            retrieval = retrieval_stage.run(cases, corpus)
            embed = lambda texts: retrieval_stage.embedder.embed(texts, "", "embedding answers")  # noqa: E731
            extras["embed_identity"] = _embed_identity(retrieval_stage.embedder)
        stage_s["retrieve"] = time.perf_counter() - t0

        docs = {d.id: d for d in corpus}
        m = loaded.manifest
        generation = None
        if inputs.generation is not None:
            t0 = time.perf_counter()
            stage = GenerationStage(inputs.generation, cache, progress)
            retrieved = [c for c in cases if c.id not in retrieval.errors]  # no ranking, nothing to answer from
            generation = stage.run(retrieved, retrieval.rankings, docs)
            stage_s["generate"] = time.perf_counter() - t0
        if supplied is not None and supplied.has_answers:
            outputs = [supplied_case_output(c.id, supplied, retrieval) for c in cases]
        else:
            outputs = [_case_output(c.id, retrieval, generation, supplied) for c in cases]

        specs = list(scorers) if scorers is not None else planned_scorer_specs(m, supplied)
        judged_by = score_contracts if score_contracts is not None else inputs.contracts
        ctx = ScoringContext(docs=docs, contracts=judged_by, cache=cache, progress=progress, embed=embed,
                             extras=extras)
        stage_s["_before_score"] = time.perf_counter() - t_start
        return PendingRun(loaded=loaded, layout=layout, cache=cache, progress=progress, cases=cases,
                          outputs=outputs, specs=specs, ctx=ctx, retrieval=retrieval, generation=generation,
                          supplied=supplied, stage_s=stage_s, runs=runs)
    except BaseException:
        if cache is not None:
            cache.close()
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
                ) -> tuple[list[CorpusDoc], list[GoldenCase], StageInputs]:
    """Read and validate every input a run needs, writing nothing: corpus, the stages' inputs, golden set
    (relevance against the corpus), supplied outputs (against the golden set and the corpus), and the prompt
    template rendered once per case (a passage of the corpus standing in for the retrieved ones), so any of
    them is bad input before a run starts. ``given`` cases replace the golden set (a manifest with supplied
    outputs answers its own golden set only, so it cannot take them). ``render_check=False`` skips the
    per-case render (for cases a caller has already checked against this manifest's template)."""
    m = loaded.manifest
    corpus = load_corpus(loaded.resolve("corpus")) if "corpus" in m.artifacts else []
    inputs = stage_inputs(loaded)
    if inputs.retrieval is not None:
        check_inputs(inputs.retrieval, corpus)
    doc_ids = frozenset(d.id for d in corpus) if "corpus" in m.artifacts else None
    golden_path = loaded.resolve("golden")
    if given is not None:
        if inputs.outputs is not None:
            raise ManifestError(f"{loaded.path}: its outputs artifact answers its own golden set; it cannot "
                                "answer other queries (replay needs a manifest that retrieves and generates)")
        cases = list(given)
    else:
        cases = load_golden(golden_path, doc_ids)
    if inputs.outputs is not None:
        config, outputs_path = inputs.outputs
        supplied = load_outputs(outputs_path, config, golden_path, cases, doc_ids)
        _check_supplied(loaded, supplied, inputs, corpus)
        inputs = replace(inputs, supplied=supplied)
    contracts, generation = inputs.contracts, inputs.generation
    if generation is None and (inputs.supplied is None or not inputs.supplied.has_answers):
        return corpus, cases, inputs
    for case in cases:
        if case.contract is not None and (contracts is None or contracts.get(case.contract) is None):
            where = "the validators artifact" if contracts is not None else "the manifest (it has no validators)"
            raise InputError(golden_path if given is None else loaded.path,
                             f"case {case.id!r} names contract {case.contract!r}, which {where} does not define",
                             field="contract")
    if generation is not None and render_check:
        d = corpus[0]
        sample = [{"id": d.id, "title": d.title, "text": d.text, "score": 1.0, "rank": 1}]
        generation.template.check(cases, sample, contracts)
    return corpus, cases, inputs


def _check_supplied(loaded: LoadedManifest, supplied: SuppliedOutputs, inputs: StageInputs,
                    corpus: list[CorpusDoc]) -> None:
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
    if not supplied.has_rankings or not corpus:
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
    """The `--json` summary: aggregates as {metric: mean}, plus counts and where the run is."""
    run = report.run
    return {
        "run_id": run.run_id,
        "manifest_id": run.manifest_id,
        "path": str(report.path),
        "aggregates": {k: v.mean for k, v in run.aggregates.overall.items()},
        "segments": {seg: {k: v.mean for k, v in ms.items()} for seg, ms in run.aggregates.segments.items()},
        "counts": run.counts,
        "stage_seconds": run.stage_seconds,
    }
