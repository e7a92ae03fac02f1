"""`harness run`: manifest -> verified artifacts -> retrieval -> scores -> stored RunResult.

Each stage is a function of its inputs' hashes and caches under them (see the stage modules);
this module only wires them in one direction and records what happened.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness.aggregate import aggregate
from harness.cache import Cache
from harness.contracts import ContractSet
from harness.errors import InputError
from harness.generate.stage import GenerationOutcome, GenerationStage, load_project_contracts
from harness.golden import load_corpus, load_golden
from harness.index import IndexStore
from harness.manifest import HashMemo, LoadedManifest, Manifest, load_manifest, require_verified
from harness.metrics import MetricInfo
from harness.progress import NULL_PROGRESS, Progress
from harness.prompts import PromptTemplate
from harness.retrieve import RetrievalOutcome, RetrievalStage
from harness.runs import RunStore, new_run_id
from harness.scorers import SCORERS, ScoringContext
from harness.snapshots import snapshot_artifacts
from harness.storage import Layout
from harness.types import CaseOutput, CorpusDoc, GenerationRecord, GoldenCase, RunResult, Score, ScorerSpec

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


def execute(loaded: LoadedManifest, *, progress: Progress = NULL_PROGRESS, layout: Layout | None = None) -> RunReport:
    t_start = time.perf_counter()
    layout = layout or Layout.for_manifest(loaded.path)
    stage_s: dict[str, float] = {}
    # Every input is read and validated before anything is written: bad input is exit 2 and leaves
    # no cache, snapshot or run behind. Then the pins; only then the cache (on a first run the pins
    # are hashed without the memo, so a mismatch creates no .harness either) and the snapshots.
    t0 = time.perf_counter()
    corpus, cases, contracts = load_inputs(loaded)
    stage_s["load"] = time.perf_counter() - t0
    cache = Cache(layout.cache_db) if layout.cache_db.exists() else None
    try:
        t0 = time.perf_counter()
        require_verified(loaded, HashMemo(cache))
        if cache is None:
            cache = Cache(layout.cache_db)
        snapshot_artifacts(loaded, layout)
        stage_s["verify"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        retrieval_stage = RetrievalStage(loaded, cache, IndexStore(layout.index_store), progress)
        retrieval = retrieval_stage.run(cases, corpus)
        stage_s["retrieve"] = time.perf_counter() - t0

        docs = {d.id: d for d in corpus}
        m = loaded.manifest
        generation = None
        if "generator" in m.artifacts:
            t0 = time.perf_counter()
            stage = GenerationStage(loaded, cache, contracts, progress)
            retrieved = [c for c in cases if c.id not in retrieval.errors]  # no ranking, nothing to answer from
            generation = stage.run(retrieved, retrieval.rankings, docs)
            stage_s["generate"] = time.perf_counter() - t0
        outputs = [_case_output(c.id, retrieval, generation) for c in cases]

        t0 = time.perf_counter()
        specs = scorer_specs(m, generation is not None)
        ctx = ScoringContext(docs=docs, contracts=contracts, cache=cache, progress=progress,
                             embed=lambda texts: retrieval_stage.embedder.embed(texts, "", "embedding answers"))
        scores: list[Score] = []
        infos: dict[str, MetricInfo] = {}
        with progress.task("scoring", len(specs)) as advance:
            for spec in specs:
                scorer = SCORERS.build(spec.name, spec.args)
                scores.extend(scorer.score(cases, outputs, ctx))
                infos |= {info.name: info for info in scorer.metrics()}
                advance(1)
        aggregates = aggregate(cases, scores, infos)
        stage_s["score"] = time.perf_counter() - t0
        stage_s["total"] = time.perf_counter() - t_start

        counts = {
            "cases": len(cases),
            "errors": sum(1 for o in outputs if o.error),
            "unscored": sum(1 for s in scores if s.value is None),
            "retrieved": int(retrieval.stats.get("cases_retrieved", 0)),
            "retrieval_errors": len(retrieval.errors),
            "embedded_texts": int(retrieval.stats.get("embedded_texts", 0)),
            "index_built": int(retrieval.stats.get("index_built", 0)),
            "generated": int(generation.stats["generated"]) if generation else 0,
            "generation_errors": int(generation.stats["errors"]) if generation else 0,
            "truncated": int(generation.stats.get("truncated", 0)) if generation else 0,
            # cache rows that failed their checksum or did not decode: recomputed, never trusted
            "cache_damaged": cache.damaged_total,
        }
        run = RunResult(
            run_id=new_run_id(),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            manifest_id=loaded.id,
            manifest=m,
            manifest_path=str(loaded.path),
            environment=_environment(loaded.base_dir),
            scorers=tuple(specs),
            cases=tuple(cases),
            outputs=tuple(outputs),
            scores=tuple(scores),
            aggregates=aggregates,
            stage_seconds=stage_s,
            counts=counts,
        )
        path = RunStore(layout.runs).save(run)
        return RunReport(run=run, path=path)
    finally:
        if cache is not None:
            cache.close()


def load_inputs(loaded: LoadedManifest) -> tuple[list[CorpusDoc], list[GoldenCase], ContractSet | None]:
    """Read and validate every input a run needs, writing nothing: corpus, golden set (relevance
    against the corpus), output contracts, and the prompt template rendered once per case (a passage
    of the corpus standing in for the retrieved ones), so any of them is bad input before a run starts."""
    corpus = load_corpus(loaded.resolve("corpus"))
    from harness.retrieve import check_inputs

    check_inputs(loaded, corpus)
    cases = load_golden(loaded.resolve("golden"), frozenset(d.id for d in corpus))
    contracts = load_project_contracts(loaded)
    if "generator" not in loaded.manifest.artifacts:
        return corpus, cases, contracts
    golden_path = loaded.resolve("golden")
    for case in cases:
        if case.contract is not None and (contracts is None or contracts.get(case.contract) is None):
            where = "the validators artifact" if contracts is not None else "the manifest (it has no validators)"
            raise InputError(golden_path, f"case {case.id!r} names contract {case.contract!r}, which {where} "
                             "does not define", field="contract")
    if "prompt" in loaded.manifest.artifacts:
        d = corpus[0]
        sample = [{"id": d.id, "title": d.title, "text": d.text, "score": 1.0, "rank": 1}]
        PromptTemplate.load(loaded.resolve("prompt")).check(cases, sample, contracts)
    return corpus, cases, contracts


def scorer_specs(m: Manifest, generated: bool) -> list[ScorerSpec]:
    """Retrieval metrics always; the built-in answer scorers when there is a generator; then the
    manifest's ``scorers`` (an entry replaces the default of the same name, e.g. to pass arguments)."""
    specs = [ScorerSpec(name="retrieval", args={"metrics": list(m.metrics.retrieval),
                                                "relevance_level": m.metrics.relevance_level})]
    if generated:
        specs += [ScorerSpec(name=n) for n in DEFAULT_ANSWER_SCORERS]
        if "validators" in m.artifacts:
            specs.append(ScorerSpec(name="format"))
    for extra in m.scorers or ():
        specs = [s for s in specs if s.name != extra.name] + [extra]
    return specs


def _case_output(case_id: str, retrieval: RetrievalOutcome, generation: GenerationOutcome | None) -> CaseOutput:
    latency = {"retrieve": retrieval.latency_s[case_id]}
    hits = {"retrieve": retrieval.cache_hit[case_id]}
    if generation is None or case_id in retrieval.errors:
        return CaseOutput(case_id=case_id, ranking=tuple(retrieval.rankings[case_id]), latency_s=latency,
                          cache_hits=hits, error=retrieval.errors.get(case_id))
    latency["generate"] = generation.latency_s[case_id]
    hits["generate"] = generation.cache_hit[case_id]
    return CaseOutput(
        case_id=case_id,
        ranking=tuple(retrieval.rankings[case_id]),
        answer=generation.answers[case_id],
        messages=tuple(generation.messages[case_id]),
        error=generation.errors.get(case_id),
        generation=GenerationRecord(attempts=generation.attempts[case_id],
                                    passages_shown=tuple(generation.passages_shown[case_id]),
                                    finish_reason=generation.finish_reason.get(case_id)),
        latency_s=latency,
        cache_hits=hits,
    )


def run_manifest(manifest_path: str | Path | None = None, *, progress: Progress = NULL_PROGRESS) -> RunReport:
    return execute(load_manifest(manifest_path), progress=progress)


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
