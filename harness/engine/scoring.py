"""Scoring on the Ray engine: the groundedness checks of a chunk's answers on an actor pool.

What runs where. A run's scorers are built and called in the driver as on the local path, in the same
order, over the same chunk: the driver decides what each case gets (errors, empty answers, no passages,
the contract's answer text), orders the scores and writes them, so the scores, their order, the
aggregates and the stored run are the local path's. Only the expensive part of a scorer goes to the
cluster: for ``groundedness`` (without a language model) the claim checks of the answers the cache does
not hold (:meth:`RayScoring.check`). They go out in batches of :data:`SCORE_BATCH` answers (a multiple of
the checker's own 64-answer batch) to a pool of :class:`GroundednessActor`, each of which loads the
run's embedding model once from the very :class:`~harness.embed.EncoderSpec` the local path embeds with,
builds one checker (same threshold, same frozen model; an actor whose checker identity, the code and
versions a verdict depends on, is not the driver's fails the call) and returns each answer's verdict as the JSON the
run cache stores. The pool (:class:`~harness.engine.ray_engine.WorkerPool`) is started at the run's first
call and kept for the whole run (:meth:`RayScoring.close` ends it), so a run of many chunks places its
actors and loads the model once, not once per chunk; it is started again only after a failure, or for a
scorer with another threshold or checker. Inside the engine's discipline: one placement group for the
pool, bounded waits, no restarts, a worker that raises or dies is an
:class:`~harness.engine.ray_engine.EngineError` (exit 2) and closes the pool, and a verdict that does not
come back fails the call rather than leaving a score out.

The rule for what stays in the driver is :data:`REMOTE_SCORERS` (scorer name -> the wrapper that ships
its work); every other scorer runs in the driver. Measured (``bench/bench_ray_scoring.py``, 300 SciFact
cases, 2 cores under a load average of 9-13 from other work): retrieval metrics 99 us per case, correctness
141, facts 3, truncation 3, signals 101, against 96 us to prepare a case for a worker and about 9.5 s of
fixed cost to start a pool (placement group, actors, imports; paid once per run); a 4,096-case chunk of
all of them costs about 1.5 s in the driver. Groundedness with MiniLM costs about a second per
answer on this machine, which is what the cluster is for (0.9 cases/s here, 1.5 on Ray x1, 2.3 on Ray x2,
scores within 2e-8). The LLM judge waits on its endpoint (driver, behind its own cache) and the
groundedness language-model feature (``lm = ...``) stays in the driver too (its per-claim values are
cached in the run cache). Fewer than :data:`REMOTE_MIN` answers to check are checked in the driver (a warm
re-run's few new answers do not start a pool).

The cache (``harness/cache.py``, SQLite on the driver's disk). Actors never see it, so it works for a
remote cluster: the driver looks the verdicts up first (under the same keys and checker identity as the
local path's :meth:`~harness.scorers.grounded.GroundednessScorer._cached_check`), ships only the misses,
and writes each batch's verdicts under those keys as the batch comes back, so a call that fails after
some batches keeps theirs and a re-run ships only the rest. Either engine therefore warms the other, and
a re-run on Ray ships nothing. The vectors an
actor computes for the checks are memoized in the actor for its batches only and are not written to the
driver's ``embeddings`` namespace (they would cost more to ship back than to recompute, and the verdicts
they lead to are cached). With the hashing embedder the verdicts equal the local ones exactly; with a
transformer the vectors may differ in the last float bits (a batch's padding differs), so supports agree
to about 1e-7.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.embed import EncoderSpec, encode_batch
from harness.scorers.grounded import GroundednessScorer, _verdict_from_json, _verdict_json

if TYPE_CHECKING:
    from harness.engine.ray_engine import RayEngine, WorkerPool
    from harness.scorers import Scorer, ScoringContext

SCORE_BATCH = 256
"""Answers per Ray batch (a multiple of the checker's 64-answer batch, so its embedding batches match)."""
REMOTE_MIN = 64
"""Fewer answers to check than this are checked in the driver: a pool's start costs more."""


class GroundednessActor:
    """A scoring pool's actor: loads the encoder once, builds one groundedness checker, then checks batches
    of ``{"i", "text", "passages"}`` rows (passages a JSON list) into ``{"i", "verdict"}`` (the cache's JSON)."""

    def __init__(self, spec: EncoderSpec, threshold: float | None = None, expect: tuple[str, str] | None = None,
                 threads: int = 1) -> None:
        from harness.grounding import GroundednessChecker
        from harness.scorers.grounded import checker_identity

        if spec.backend != "hashing":
            import torch

            torch.set_num_threads(max(1, threads))
        self.spec = spec
        self.model = spec.load()
        self.checker = GroundednessChecker(embed=self._embed, threshold=threshold)
        self._memo: dict[str, np.ndarray] = {}
        if expect is not None:  # (the driver's checker identity, its embedding identity)
            mine = checker_identity(self.checker, expect[1])
            if mine != expect[0]:  # other grounding code, model or library versions than the driver's
                raise RuntimeError(f"this worker's groundedness checker is not the driver's (identity {mine[:12]} "
                                   f"here, {expect[0][:12]} there): install the same rag-harness on the cluster")

    def _embed(self, texts: list[str]) -> np.ndarray:
        """As :meth:`harness.embed.Embedder.embed` computes them (missing texts longest first, in the
        encoder's batches), memoized for this actor's batch."""
        missing = sorted({t for t in texts if t not in self._memo}, key=lambda t: -len(t))
        for b in range(0, len(missing), self.spec.batch_size):
            part = missing[b : b + self.spec.batch_size]
            vecs = encode_batch(self.model, part, self.spec.batch_size)
            self._memo.update(zip(part, vecs, strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._memo = {}
        texts = [str(t) for t in batch["text"].tolist()]
        passages = [json.loads(str(p)) for p in batch["passages"].tolist()]
        results = self.checker.check_many(texts, passages)
        self._memo = {}
        verdicts = np.empty(len(results), dtype=object)
        verdicts[:] = [json.dumps(_verdict_json(r)) for r in results]
        return {"i": np.asarray(batch["i"], dtype=np.int64), "verdict": verdicts}


class RayScoring:
    """A run's scoring on the Ray engine: :meth:`wrap` its scorers, :meth:`close` when the run ends (which
    ends the pool of actors kept for the run, and the cluster if the engine started it)."""

    def __init__(self, engine: RayEngine, spec: EncoderSpec | None, *,
                 actor: type[GroundednessActor] | None = None) -> None:
        self.engine = engine
        self.spec = spec
        self.actor = actor  # None: GroundednessActor (tests put a failing actor here)
        self.shipped = 0  # answers checked on the cluster (tests and the bench read it)
        self._pool: WorkerPool | None = None
        self._pool_key: tuple[Any, ...] | None = None
        self._starts = 0  # of the pools replaced or closed so far

    def wrap(self, scorers: Sequence[Scorer]) -> list[Scorer]:
        """The scorers, those of :data:`REMOTE_SCORERS` shipping their heavy work to the cluster."""
        out: list[Scorer] = []
        for scorer in scorers:
            make = REMOTE_SCORERS.get(str(scorer.spec.get("name", ""))) if hasattr(scorer, "spec") else None
            wrapped = make(scorer, self) if make is not None else None
            out.append(wrapped if wrapped is not None else scorer)
        return out

    @property
    def pool_starts(self) -> int:
        """How often this run's scoring actors were started (once, unless a call failed or the checker changed)."""
        return self._starts + (self._pool.starts if self._pool is not None else 0)

    def _pool_for(self, threshold: float | None, expect: tuple[str, str] | None) -> WorkerPool:
        """The run's pool for this checker: kept from call to call; a new one for another threshold or identity."""
        actor = self.actor or GroundednessActor
        key = (actor, threshold, expect)
        if self._pool is None or self._pool_key != key:
            if self._pool is not None:
                self._starts += self._pool.starts
                self._pool.close()
            self._pool = self.engine.pool(actor, {"spec": self.spec, "threshold": threshold, "expect": expect},
                                          stage="a scoring worker",
                                          hint="the verdicts that came back are cached: run again to check "
                                               "only the rest, or run with --engine local")
            self._pool_key = key
        return self._pool

    def check(self, todo: Sequence[tuple[str, str, list[str]]], threshold: float | None,
              expect: tuple[str, str] | None = None, *,
              done: Callable[[list[int], list[dict[str, Any]]], None] | None = None) -> list[Any]:
        """The groundedness verdicts of ``todo``'s (case id, answer text, passages), in its order. ``expect``:
        (the driver's checker identity, its embedding identity); an actor whose own checker differs (other
        code or versions on the cluster: its verdicts would be cached under the driver's key) fails the call.
        ``done(positions, verdicts)`` is called in the driver with each batch's verdicts (the cache's JSON) as
        the batch comes back, before the next is read: what it stores stays stored if a later batch fails."""
        if not todo:
            return []
        assert self.spec is not None
        import pyarrow as pa

        from harness.engine.ray_engine import EngineError

        rows = len(todo)
        blocks = [pa.table({"i": pa.array(range(a, min(a + SCORE_BATCH, rows)), pa.int64()),
                            "text": pa.array([t[1] for t in todo[a : a + SCORE_BATCH]], pa.string()),
                            "passages": pa.array([json.dumps(t[2]) for t in todo[a : a + SCORE_BATCH]], pa.string())})
                  for a in range(0, rows, SCORE_BATCH)]
        verdicts: list[dict[str, Any] | None] = [None] * rows
        pool = self._pool_for(threshold, expect)
        with contextlib.closing(pool.map(blocks, f"checking the groundedness of {rows} answers")) as batches:
            for batch in batches:
                positions = [int(i) for i in batch["i"].tolist()]
                if any(not 0 <= i < rows for i in positions):
                    pool.close()
                    raise EngineError(f"ray engine: a scoring worker answered for rows that were not sent "
                                      f"({rows} answers)", hint="run again, or run with --engine local")
                values = [json.loads(str(v)) for v in batch["verdict"].tolist()]
                for i, v in zip(positions, values, strict=True):
                    verdicts[i] = v
                if done is not None:
                    done(positions, values)
        lost = sum(1 for v in verdicts if v is None)
        if lost:
            raise EngineError(f"ray engine: {lost} of {rows} groundedness verdicts did not come back from the "
                              "scoring workers", hint="run again, or run with --engine local")
        self.shipped += rows
        return [_verdict_from_json(v) for v in verdicts if v is not None]

    def close(self) -> None:
        """End the run's pool (its CPUs given back), then the engine (its cluster, if it started one)."""
        try:
            if self._pool is not None:
                self._starts += self._pool.starts
                self._pool.close()
                self._pool = None
        finally:
            self.engine.close()


class RayGroundednessScorer(GroundednessScorer):
    """:class:`GroundednessScorer` whose claim checks of uncached answers run on the cluster; everything
    else (what each case gets, the scores' order) is the scorer's own code, and the cache protocol its
    :meth:`~GroundednessScorer._cached_check`'s (same keys), except that verdicts are stored batch by batch."""

    def __init__(self, base: GroundednessScorer, remote: RayScoring) -> None:  # a copy of base: no super().__init__
        self.__dict__.update(base.__dict__)
        self.remote = remote

    def _cached_check(self, checker: Any, todo: list[tuple[str, str, list[str]]], ctx: ScoringContext
                      ) -> list[Any]:
        """The base's lookup (same keys), then the misses: checked here if fewer than :data:`REMOTE_MIN`, else on
        the cluster with each batch's verdicts written to the cache as it comes back."""
        identity = ctx.extras.get("embed_identity")
        cache = ctx.cache
        if cache is None or not isinstance(identity, str) or not todo:
            return super()._cached_check(checker, todo, ctx)  # nothing is cached: the base's path (self._check)
        from harness.hashing import sha256_parts
        from harness.scorers.grounded import checker_identity

        who = checker_identity(checker, identity)
        keys = [sha256_parts("groundedness-v1", who, text, *passages) for _, text, passages in todo]  # the base's
        found = cache.get_many_json("groundedness", keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        results: list[Any] = [None] * len(todo)
        if len(missing) < REMOTE_MIN:
            fresh = super()._check(checker, [todo[i] for i in missing], ctx)
            if fresh:
                cache.put_many_json("groundedness", {keys[i]: _verdict_json(res)
                                                     for i, res in zip(missing, fresh, strict=True)})
        else:
            def store(positions: list[int], verdicts: list[dict[str, Any]]) -> None:
                cache.put_many_json("groundedness", {keys[missing[p]]: v for p, v in zip(positions, verdicts,
                                                                                          strict=True)})

            fresh = self.remote.check([todo[i] for i in missing], self.threshold, (who, identity), done=store)
        for i, res in zip(missing, fresh, strict=True):
            results[i] = res
        for i, k in enumerate(keys):
            if results[i] is None:
                results[i] = _verdict_from_json(found[k])
        return results

    def _check(self, checker: Any, todo: list[tuple[str, str, list[str]]], ctx: ScoringContext) -> list[Any]:
        """Without a cache (no embedding identity): the cluster for :data:`REMOTE_MIN` answers or more."""
        if len(todo) < REMOTE_MIN:
            return super()._check(checker, todo, ctx)
        from harness.scorers.grounded import checker_identity

        identity = ctx.extras.get("embed_identity")
        embed = identity if isinstance(identity, str) else ""
        return self.remote.check(todo, self.threshold, (checker_identity(checker, embed), embed))


def _groundedness(scorer: Scorer, remote: RayScoring) -> Scorer | None:
    if not isinstance(scorer, GroundednessScorer) or scorer.lm is not None or remote.spec is None:
        return None  # a language model's feature is computed in the driver (see the module docstring)
    return RayGroundednessScorer(scorer, remote)


REMOTE_SCORERS: dict[str, Callable[[Scorer, RayScoring], Scorer | None]] = {"groundedness": _groundedness}
"""The scorers whose work goes to the cluster on the Ray engine (by registered name), and how; the rest run
in the driver (measured: cheaper than shipping; see the module docstring)."""


__all__ = ["REMOTE_MIN", "REMOTE_SCORERS", "SCORE_BATCH", "GroundednessActor", "RayGroundednessScorer",
           "RayScoring"]
