"""The Ray engine: corpus (and large query set) embedding, index building and scoring on a Ray cluster.

Embedding goes through Ray Data: the texts still missing from the cache become Arrow blocks of
``ComputeEngine.batch_size`` rows, ``map_batches`` runs them through a pool of actors
(:class:`EncodeActor`), each of which loads the model once with the same :class:`~harness.embed.EncoderSpec`
this process would use and encodes with the same :func:`~harness.embed.encode_batch`. The vectors come back
to the driver, which writes them into the project's cache under the keys :class:`~harness.embed.Embedder`
uses locally: the engine is never part of a vector's identity, so a run on either engine warms the other.

Index building (:meth:`RayEngine.build_index`): the recipe's layout is trained on the driver on the seeded
sample :func:`harness.index.train_sample` picks (the local path's sample), copies of the trained, empty
index are filled with consecutive shards of the vectors by Ray tasks, and the shards are merged in order:
the same bytes one ``add`` builds. Layouts that cannot be merged exactly (HNSW graphs, fast-scan PQ) are
filled on the driver.

Scoring (:mod:`harness.engine.scoring`) runs its actors through :meth:`RayEngine.map_actors`, the same
Ray Data pool discipline as embedding.

Connecting: an already initialized Ray (a test's cluster, a notebook's) is used as it is; otherwise
``ComputeEngine.address`` or ``RAY_ADDRESS``, else a new local cluster with this machine's cores. Only a
cluster this engine started is shut down by :meth:`RayEngine.close`. ``ray`` is imported only here, only
when the engine is used: the local path pays nothing for it.

Failures are typed: a worker that raises or dies is an :class:`EngineError` (exit 2) naming the stage and
the worker's exception, never a hang (actors are not restarted, tasks not retried) or a silent partial
result (a vector that does not come back fails the embedding).

Bounded, and nothing left behind: each :meth:`RayEngine.encode` and sharded build first reserves its CPUs as
one placement group and waits at most :attr:`RayEngine.start_timeout` seconds for it (a cluster whose CPUs
are held elsewhere is an :class:`EngineError`, not a pool waiting forever); the actors or tasks run inside
it, actor start-up (the model load) is bounded by :data:`ACTOR_START_TIMEOUT_S` and a stalled execution by
:data:`STALL_TIMEOUT_S`; and the group is removed when the call ends, however it ends, which kills its
actors and tasks. Ray Data itself only drops its references to a finished pool's actors, so an exception
traceback still holding one (a test runner's, a caller's) would keep their CPUs and starve the next pool.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from harness.embed import EncoderSpec, encode_batch
from harness.errors import HarnessError, MissingDependencyError
from harness.index import empty_index, merge_shards, mergeable, train_index
from harness.types import ComputeEngine

INSTALL_HINT = "pip install 'rag-harness[ray]'"
MIN_SHARD = 1_000
"""Fewest vectors per index shard worth a Ray task (smaller corpora are filled on the driver)."""
START_TIMEOUT_S = 120.0
"""Longest wait for the cluster to grant a call's CPUs (its placement group) before it fails."""
ACTOR_START_TIMEOUT_S = 600
"""Longest wait for an embedding actor to start (process, imports, model load) before the call fails."""
STALL_TIMEOUT_S = 900.0
"""Longest time an embedding may go without a batch finishing before it fails."""
RELEASE_TIMEOUT_S = 30.0
"""Longest wait, after a call, for the cluster to report its placement group removed."""


class EngineError(HarnessError):
    """The Ray engine failed: the cluster could not be reached, or a worker raised or died."""


def ray_installed() -> bool:
    """Whether ``import ray`` can work, without importing it (it costs about a second)."""
    if "ray" in sys.modules:
        return sys.modules["ray"] is not None
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def require_ray() -> None:
    """:class:`MissingDependencyError` (exit 2) unless Ray (with Ray Data) is installed."""
    if not ray_installed():
        raise MissingDependencyError("--engine ray needs Ray (with Ray Data), which is not installed",
                                     hint=f"{INSTALL_HINT}, or run with --engine local")


def _import_ray() -> Any:
    require_ray()
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(f"--engine ray: Ray does not import ({exc})", hint=INSTALL_HINT) from None
    return ray


_RAISED = re.compile(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit))\b[^:]*: ")
_RAYS_OWN = ("ray.", "RayTaskError", "UserCodeException", "ActorDiedError", "RayActorError", "ObjectLostError")


def _reason(exc: BaseException) -> str:
    """The worker's own exception on one line: Ray wraps it in layers whose messages carry the worker's
    traceback, so the last exception line there that is not one of Ray's own names it."""
    chain, seen = [exc], {id(exc)}
    while True:
        nxt = getattr(chain[-1], "cause", None) or chain[-1].__cause__
        if not isinstance(nxt, BaseException) or id(nxt) in seen:
            break
        seen.add(id(nxt))
        chain.append(nxt)
    for layer in reversed(chain):
        if not type(layer).__module__.startswith("ray"):  # the user's exception object itself
            return f"{type(layer).__name__}: {str(layer).strip().splitlines()[0][:300] if str(layer).strip() else ''}"
    for layer in reversed(chain):
        lines = [line.strip() for line in str(layer).splitlines() if line.strip()]
        raised = [line for line in lines if (m := _RAISED.match(line)) and not m.group(1).startswith(_RAYS_OWN)]
        if raised:
            return raised[-1][:300]
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {(first[0] if first else '')[:300]}"


class EncodeActor:
    """A Ray Data actor: loads the encoder once, then encodes batches of ``{"i", "text"}`` rows into
    ``{"i", "vector"}``."""

    def __init__(self, spec: EncoderSpec, threads: int = 1) -> None:
        if spec.backend != "hashing":
            import torch

            torch.set_num_threads(max(1, threads))
        self.spec = spec
        self.model = spec.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"].tolist()]
        return {"i": np.asarray(batch["i"], dtype=np.int64),
                "vector": encode_batch(self.model, texts, self.spec.batch_size)}


def _fill_shard(trained: bytes, vectors: np.ndarray) -> bytes:
    """A Ray task: a copy of the trained empty index filled with one shard of the vectors, serialized."""
    import faiss

    index = faiss.deserialize_index(np.frombuffer(trained, dtype=np.uint8))
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return bytes(faiss.serialize_index(index).tobytes())


class RayEngine:
    """Runs embedding and index building on a Ray cluster for one stage; :meth:`close` when done."""

    def __init__(self, config: ComputeEngine, *, actor: type[EncodeActor] | None = None,
                 start_timeout: float = START_TIMEOUT_S) -> None:
        require_ray()
        self.config = config
        self.actor = actor  # None: this module's EncodeActor when encoding (tests put a failing actor here)
        self.start_timeout = start_timeout
        self.started = False
        self._ray: Any = None

    # --- the cluster -------------------------------------------------------------------------------

    def connect(self) -> Any:
        """The ``ray`` module, connected (once): the running Ray, the configured address, or a new local cluster."""
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            address = self.config.address or os.environ.get("RAY_ADDRESS") or None
            common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": logging.WARNING}
            try:
                if address:
                    ray.init(address=address, **common)
                else:  # "local": a new cluster, never one another process started on this machine
                    ray.init(address="local", num_cpus=os.cpu_count() or 1, **common)
            except Exception as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise EngineError(f"ray engine: cannot start or reach {where}: {_reason(exc)}",
                                  hint="check [engine] address / RAY_ADDRESS, or run with --engine local") from None
            self.started = True
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S  # the pool's start is awaited, bounded (default: never)
        ctx.execution_no_progress_timeout_s = STALL_TIMEOUT_S
        self._ray = ray
        return ray

    @contextmanager
    def _reserved(self, bundles: int, cpus: float, what: str) -> Iterator[Any]:
        """A placement group of ``bundles`` x ``cpus`` CPUs, granted within :attr:`start_timeout` seconds, removed
        on exit (killing whatever still runs in it)."""
        ray = self.connect()
        from ray.util import placement_group, placement_group_table, remove_placement_group

        pg = placement_group([{"CPU": cpus}] * bundles, strategy="SPREAD")
        try:
            try:
                ray.get(pg.ready(), timeout=self.start_timeout)
            except ray.exceptions.GetTimeoutError:
                free = ray.available_resources().get("CPU", 0.0)
                raise EngineError(f"ray engine: {what}: the cluster did not grant {bundles} x {cpus:g} CPUs within "
                                  f"{self.start_timeout:g} s ({free:g} of {self.cpus():g} CPUs free)",
                                  hint="free the cluster's CPUs, lower [engine] workers, or run with --engine local"
                                  ) from None
            yield pg
        finally:
            remove_placement_group(pg)
            deadline = time.monotonic() + RELEASE_TIMEOUT_S
            while placement_group_table(pg).get("state") != "REMOVED" and time.monotonic() < deadline:
                time.sleep(0.05)

    def cpus(self) -> float:
        return float(self.connect().cluster_resources().get("CPU", 1.0))

    def workers(self) -> int:
        """Embedding actors: ``[engine] workers``, else one per CPU of the cluster."""
        return self.config.workers or max(1, int(self.cpus()))

    def close(self) -> None:
        """Shut the cluster down if this engine started it (never one it found running)."""
        if self._ray is not None and self.started:
            self._ray.shutdown()
        self._ray = None
        self.started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- embedding ---------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], spec: EncoderSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions in ``texts``, their vectors), batch by batch as the actors finish them (any order). The
        actors live for this call only: when it ends (done, failed, or the caller stopped reading) they are
        killed and their CPUs free."""
        if not texts:
            return
        import pyarrow as pa

        size = self.config.batch_size
        blocks = [pa.table({"i": pa.array(range(start, min(start + size, len(texts))), pa.int64()),
                            "text": pa.array(texts[start : start + size], pa.string())})
                  for start in range(0, len(texts), size)]
        for batch in self.map_actors(blocks, self.actor or EncodeActor, {"spec": spec}, batch_size=size,
                                     what=f"embedding {len(texts)} texts", stage="an embedding worker",
                                     hint="vectors finished before the failure are cached; fix the cause and run "
                                          "again, or run with --engine local"):
            yield np.asarray(batch["i"], dtype=np.int64), np.asarray(batch["vector"], dtype=np.float32)

    # --- any actor pool (scoring) ------------------------------------------------------------------

    def map_actors(self, blocks: Sequence[Any], actor: type, kwargs: dict[str, Any], *, batch_size: int, what: str,
                   stage: str, hint: str = "fix the cause and run again, or run with --engine local"
                   ) -> Iterator[dict[str, np.ndarray]]:
        """``blocks`` (Arrow tables) through a pool of ``actor(**kwargs, threads=...)`` built once per actor, batch
        by batch as they finish (any order), with :meth:`encode`'s discipline: one placement group for the
        call, bounded start and stall, no restarts or retries, the pool killed when the call ends; a worker
        that raises or dies is an :class:`EngineError` naming ``stage`` and its exception."""
        if not blocks:
            return
        ray = self.connect()
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        workers = min(self.workers(), len(blocks))
        per_actor = self.cpus() / workers
        # from_blocks reads the blocks' metadata here; from_arrow would run a CPU task per block outside the
        # reservation, which waits forever on a cluster whose CPUs are held
        source = ray.data.from_blocks(list(blocks))
        what = f"{what} on {workers} actors"
        with self._reserved(workers, per_actor, what) as pg:
            with warnings.catch_warnings():  # Ray 2.60 deprecates remote args here but has no other way to set them
                warnings.simplefilter("ignore", DeprecationWarning)
                # a dead actor is not restarted nor its batch retried: a deterministic crash fails, never loops
                ds = source.map_batches(
                    actor, fn_constructor_kwargs=dict(kwargs) | {"threads": max(1, int(per_actor))},
                    batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
                    num_cpus=per_actor, max_restarts=0, max_task_retries=0,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(pg))
            try:
                yield from ds.iter_batches(batch_format="numpy", batch_size=None)
            except HarnessError:
                raise
            except Exception as exc:
                reason = _reason(exc)
                if isinstance(exc, ray.exceptions.GetTimeoutError):
                    reason = f"the actors did not start within {ACTOR_START_TIMEOUT_S} s"
                raise EngineError(f"ray engine: {stage} failed ({what}): {reason}", hint=hint) from None

    # --- index building ----------------------------------------------------------------------------

    def build_index(self, vectors: np.ndarray, recipe: dict[str, Any]) -> Any:
        """The recipe's FAISS index over ``vectors``, byte for byte what :class:`harness.index.IndexStore`
        builds locally: trained on the driver (the seeded sample), filled by shards on the cluster, merged
        in order (:data:`harness.index.Builder`)."""
        n, dim = vectors.shape
        index = train_index(empty_index(dim, n, recipe), vectors, recipe)
        shards = min(self.workers(), n // MIN_SHARD)
        if shards < 2 or not mergeable(index):
            index.add(vectors)
            return index
        ray = self.connect()
        import faiss
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        per_task = min(1.0, self.cpus() / shards)
        with self._reserved(shards, per_task, f"building a {recipe['type']} index in {shards} shards") as pg:
            trained = ray.put(bytes(faiss.serialize_index(index).tobytes()))
            bounds = np.linspace(0, n, shards + 1).astype(np.int64).tolist()
            refs = [ray.remote(_fill_shard).options(  # each shard in its own reserved bundle: never starved
                        num_cpus=per_task, max_retries=0,
                        scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i),
                    ).remote(trained, vectors[a:b]) for i, (a, b) in enumerate(itertools.pairwise(bounds))]
            try:
                blobs = ray.get(refs)
            except Exception as exc:
                raise EngineError(f"ray engine: an index-building task failed ({recipe['type']}, {n} vectors in "
                                  f"{shards} shards): {_reason(exc)}", hint="run with --engine local") from None
        filled = [faiss.deserialize_index(np.frombuffer(b, dtype=np.uint8)) for b in blobs]
        return merge_shards(index, filled)
