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
run cache stores. Inside the engine's discipline (:meth:`~harness.engine.ray_engine.RayEngine.map_actors`):
one placement group per call, bounded waits, no restarts, a worker that raises or dies is an
:class:`~harness.engine.ray_engine.EngineError` (exit 2), and a verdict that does not come back fails the
call rather than leaving a score out.

The rule for what stays in the driver is :data:`REMOTE_SCORERS` (scorer name -> the wrapper that ships
its work); every other scorer runs in the driver. Measured (``bench/bench_ray_scoring.py``, 300 SciFact
cases, 2 cores under a load average of 9-13 from other work): retrieval metrics 99 us per case, correctness
141, facts 3, truncation 3, signals 101, against 96 us to prepare a case for a worker and about 9.5 s of
fixed cost per Ray call (placement group, pool start, imports); a 4,096-case chunk of all of them costs
about 1.5 s in the driver, less than one call's start. Groundedness with MiniLM costs about a second per
answer on this machine, which is what the cluster is for (0.9 cases/s here, 1.5 on Ray x1, 2.3 on Ray x2,
scores within 2e-8). The LLM judge waits on its endpoint (driver, behind its own cache) and the
groundedness language-model feature (``lm = ...``) stays in the driver too (its per-claim values are
cached in the run cache). Fewer than :data:`REMOTE_MIN` answers to check are checked in the driver (a warm
re-run's few new answers do not start a pool).

The cache (``harness/cache.py``, SQLite on the driver's disk). Actors never see it, so it works for a
remote cluster: the driver looks the verdicts up first (the scorer's own lookup, under the same keys and
checker identity as the local path), ships only the misses, and writes what the actors return under
those keys. Either engine therefore warms the other, and a re-run on Ray ships nothing. The vectors an
actor computes for the checks are memoized in the actor for its batches only and are not written to the
driver's ``embeddings`` namespace (they would cost more to ship back than to recompute, and the verdicts
they lead to are cached). With the hashing embedder the verdicts equal the local ones exactly; with a
transformer the vectors may differ in the last float bits (a batch's padding differs), so supports agree
to about 1e-7.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.embed import EncoderSpec, encode_batch
from harness.scorers.grounded import GroundednessScorer, _verdict_from_json, _verdict_json

if TYPE_CHECKING:
    from harness.engine.ray_engine import RayEngine
    from harness.scorers import Scorer, ScoringContext

SCORE_BATCH = 256
"""Answers per Ray batch (a multiple of the checker's 64-answer batch, so its embedding batches match)."""
REMOTE_MIN = 64
"""Fewer answers to check than this are checked in the driver: a pool's start costs more."""


class GroundednessActor:
    """A Ray Data actor: loads the encoder once, builds one groundedness checker, then checks batches of
    ``{"i", "text", "passages"}`` rows (passages a JSON list) into ``{"i", "verdict"}`` (the cache's JSON)."""

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
    """A run's scoring on the Ray engine: :meth:`wrap` its scorers, :meth:`close` when the run ends."""

    def __init__(self, engine: RayEngine, spec: EncoderSpec | None, *,
                 actor: type[GroundednessActor] | None = None) -> None:
        self.engine = engine
        self.spec = spec
        self.actor = actor  # None: GroundednessActor (tests put a failing actor here)
        self.shipped = 0  # answers checked on the cluster (tests and the bench read it)

    def wrap(self, scorers: Sequence[Scorer]) -> list[Scorer]:
        """The scorers, those of :data:`REMOTE_SCORERS` shipping their heavy work to the cluster."""
        out: list[Scorer] = []
        for scorer in scorers:
            make = REMOTE_SCORERS.get(str(scorer.spec.get("name", ""))) if hasattr(scorer, "spec") else None
            wrapped = make(scorer, self) if make is not None else None
            out.append(wrapped if wrapped is not None else scorer)
        return out

    def check(self, todo: Sequence[tuple[str, str, list[str]]], threshold: float | None,
              expect: tuple[str, str] | None = None) -> list[Any]:
        """The groundedness verdicts of ``todo``'s (case id, answer text, passages), in its order. ``expect``:
        (the driver's checker identity, its embedding identity); an actor whose own checker differs (other
        code or versions on the cluster: its verdicts would be cached under the driver's key) fails the call."""
        if not todo:
            return []
        assert self.spec is not None
        import pyarrow as pa

        rows = len(todo)
        blocks = [pa.table({"i": pa.array(range(a, min(a + SCORE_BATCH, rows)), pa.int64()),
                            "text": pa.array([t[1] for t in todo[a : a + SCORE_BATCH]], pa.string()),
                            "passages": pa.array([json.dumps(t[2]) for t in todo[a : a + SCORE_BATCH]], pa.string())})
                  for a in range(0, rows, SCORE_BATCH)]
        verdicts: list[str | None] = [None] * rows
        actor = self.actor or GroundednessActor
        kwargs = {"spec": self.spec, "threshold": threshold, "expect": expect}
        for batch in self.engine.map_actors(blocks, actor, kwargs,
                                            batch_size=SCORE_BATCH, what=f"checking the groundedness of {rows} "
                                            "answers", stage="a scoring worker"):
            for i, v in zip(batch["i"].tolist(), batch["verdict"].tolist(), strict=True):
                verdicts[int(i)] = str(v)
        lost = sum(1 for v in verdicts if v is None)
        if lost:
            from harness.engine.ray_engine import EngineError

            raise EngineError(f"ray engine: {lost} of {rows} groundedness verdicts did not come back from the "
                              "scoring workers", hint="run again, or run with --engine local")
        self.shipped += rows
        return [_verdict_from_json(json.loads(v)) for v in verdicts if v is not None]

    def close(self) -> None:
        self.engine.close()


class RayGroundednessScorer(GroundednessScorer):
    """:class:`GroundednessScorer` whose claim checks of uncached answers run on the cluster; everything
    else (what each case gets, the cache lookup and write, the scores' order) is the scorer's own code."""

    def __init__(self, base: GroundednessScorer, remote: RayScoring) -> None:  # a copy of base: no super().__init__
        self.__dict__.update(base.__dict__)
        self.remote = remote

    def _check(self, checker: Any, todo: list[tuple[str, str, list[str]]], ctx: ScoringContext) -> list[Any]:
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
