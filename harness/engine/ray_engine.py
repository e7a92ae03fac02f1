"""The Ray engine: corpus (and large query set) embedding, index building and scoring on a Ray cluster.

Actors (:class:`WorkerPool`): a pool of ``workers`` Ray actors of one class, each built once in its own
bundle of one placement group (the model loaded once per actor), fed Arrow blocks of rows (two in flight
per actor, so an actor never waits for the driver) and answering each with a batch of numpy columns,
batch by batch as they finish (any order). A pool lives until :meth:`WorkerPool.close`: scoring
(:mod:`harness.engine.scoring`) keeps one for the whole run, so a run of many chunks starts its actors
and loads its model once, not once per chunk (Ray Data's ``map_batches`` would start a new actor pool
per chunk: 3-12 s each, measured).

Embedding goes through Ray Data (:meth:`RayEngine.map_actors`): the texts still missing from the cache
become Arrow blocks of ``ComputeEngine.batch_size`` rows, and ``map_batches`` runs them through an actor
pool (``ActorPoolStrategy``) of :class:`EncodeActor`, each of which loads the model once with the same
:class:`~harness.embed.EncoderSpec` this process would use and encodes with the same
:func:`~harness.embed.encode_batch`. The vectors come back to the driver, which writes them into the
project's cache under the keys :class:`~harness.embed.Embedder` uses locally: the engine is never part of a
vector's identity, so a run on either engine warms the other.

Index building (:meth:`RayEngine.fill_index`): the recipe's layout is trained on the driver on the seeded
sample :func:`harness.index.train_sample` picks (the local path's sample), copies of the trained, empty
index are filled with consecutive shards of the vectors by Ray tasks as the vectors stream from the cache, and
the shards are merged in order as they come back (a bounded number in flight): the same bytes one ``add``
builds, without the driver ever holding the corpus's vectors. Layouts that cannot be merged exactly (HNSW
graphs, fast-scan PQ, pre-transforms) are filled on the driver from the same stream, as the local path fills
them (:func:`harness.index.fill`: the same fixed add batches).

Connecting: an already initialized Ray (a test's cluster, a notebook's) is used as it is; otherwise
``ComputeEngine.address`` or ``RAY_ADDRESS``, else a new local cluster with this machine's cores. Only a
cluster this engine started is shut down by :meth:`RayEngine.close`, which first closes every pool the
engine made. ``ray`` is imported only here, only when the engine is used: the local path pays nothing.

Failures are typed: a worker that raises or dies is an :class:`EngineError` (exit 2) naming the stage and
the worker's exception, never a hang (actors are not restarted, tasks not retried) or a silent partial
result (a vector or verdict that does not come back fails the call). A pool that failed, or whose reader
stopped early, is closed at once (its actors killed, its CPUs given back); the next call starts a new one.

Bounded, and nothing left behind: a pool (and a sharded build) first reserves its CPUs as one placement
group and waits at most :attr:`RayEngine.start_timeout` seconds for it (a cluster whose CPUs are held
elsewhere is an :class:`EngineError`, not a pool waiting forever); actor start-up (the model load) is
bounded by :data:`ACTOR_START_TIMEOUT_S` and a call in which no batch finishes by :data:`STALL_TIMEOUT_S`;
every ``ray.get`` has a timeout. The group is removed when the pool closes, however it ends, which kills
its actors. A reservation that finds too few CPUs free while idle pools of this process hold some closes
those pools first (they start again at their next call): a run's held scoring pool never starves its own
corpus embedding or index build.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import logging
import os
import re
import sys
import time
import warnings
import weakref
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from harness.embed import EncoderSpec, encode_batch
from harness.errors import HarnessError, MissingDependencyError
from harness.index import add_batches, empty_index, fill, merge_shards, mergeable, train_index
from harness.types import ComputeEngine

INSTALL_HINT = "pip install 'rag-harness[ray]'"
MIN_SHARD = 1_000
"""Fewest vectors per index shard worth a Ray task (smaller corpora are filled on the driver)."""
SHARD_ROWS = 65_536
"""Most vectors per index shard (a task's input, 96 MB at 384 dimensions): the driver holds at most one shard per
CPU slot in flight, whatever the corpus's size. Shard bounds do not change the merged index (it is the bytes of
one add), so this is a bound on memory, not part of any key."""
START_TIMEOUT_S = 120.0
"""Longest wait for the cluster to grant a call's CPUs (its placement group) before it fails."""
ACTOR_START_TIMEOUT_S = 600
"""Longest wait for a pool's actors to start (process, imports, model load) before the call fails."""
STALL_TIMEOUT_S = 900.0
"""Longest time a call may go without a batch finishing before it fails."""
RELEASE_TIMEOUT_S = 30.0
"""Longest wait, after a pool closes, for the cluster to report its placement group removed."""
IN_FLIGHT = 2
"""Blocks queued on each actor at once: the next is there when one finishes, while the driver reads it."""


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
    """:class:`MissingDependencyError` (exit 2) unless Ray is installed."""
    if not ray_installed():
        raise MissingDependencyError("--engine ray needs Ray, which is not installed",
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
    """A pool's actor (:class:`WorkerPool`): loads the encoder once, then encodes batches of ``{"i", "text"}``
    rows into ``{"i", "vector"}``."""

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


class _PoolWorker:
    """The Ray actor of a :class:`WorkerPool`: builds ``actor(**kwargs)`` once, then runs it on Arrow blocks as
    numpy batches (each column an array; strings as objects)."""

    def __init__(self, actor: type, kwargs: dict[str, Any]) -> None:
        self.fn = actor(**kwargs)

    def ready(self) -> bool:
        return True

    def run(self, block: Any) -> dict[str, np.ndarray]:
        return self.fn({name: block.column(name).to_numpy(zero_copy_only=False) for name in block.column_names})


_LIVE: weakref.WeakSet[WorkerPool] = weakref.WeakSet()
"""This process's started pools (:meth:`RayEngine._reserve` closes the idle ones when it lacks CPUs)."""


class WorkerPool:
    """``workers`` actors of one class (:meth:`RayEngine.pool`), each built once (its model loaded once) in its
    own bundle of one placement group, alive from the first :meth:`map` until :meth:`close`. Each actor holds
    ``engine.cpus() / workers`` CPUs and ``threads`` = that many whole CPUs (at least 1). Not thread-safe:
    one :meth:`map` at a time."""

    def __init__(self, engine: RayEngine, actor: type, kwargs: dict[str, Any], *, workers: int, stage: str,
                 hint: str) -> None:
        self.engine = engine
        self.actor = actor
        self.kwargs = dict(kwargs)
        self.workers = max(1, workers)
        self.stage = stage
        self.hint = hint
        self.busy = False
        self.starts = 0  # how often its actors were started (tests and the bench read it)
        self._pg: Any = None
        self._actors: list[Any] = []
        self._finalizer: weakref.finalize | None = None

    @property
    def started(self) -> bool:
        return self._pg is not None

    def _error(self, exc: BaseException, what: str) -> EngineError:
        if isinstance(exc, EngineError):
            return exc
        return EngineError(f"ray engine: {self.stage} failed ({what}): {_reason(exc)}", hint=self.hint)

    def _start(self, what: str) -> None:
        ray = self.engine.connect()
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        per_actor = int(self.engine.cpus() / self.workers * 10_000) / 10_000  # Ray counts CPUs in 1/10,000s
        pg = self.engine._reserve(self.workers, per_actor, what)
        self._pg = pg
        _LIVE.add(self)
        self._finalizer = weakref.finalize(self, _remove_group, pg)  # dropped unclosed: its CPUs still come back
        self.starts += 1
        kwargs = self.kwargs | {"threads": max(1, int(per_actor))}
        worker = ray.remote(_PoolWorker)
        # a dead actor is not restarted nor its batch retried: a deterministic crash fails, never loops
        self._actors = [worker.options(num_cpus=per_actor, max_restarts=0, max_task_retries=0,
                                       scheduling_strategy=PlacementGroupSchedulingStrategy(
                                           pg, placement_group_bundle_index=i)).remote(self.actor, kwargs)
                        for i in range(self.workers)]
        try:
            ray.get([a.ready.remote() for a in self._actors], timeout=ACTOR_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise EngineError(f"ray engine: {self.stage} failed ({what}): the actors did not start within "
                              f"{ACTOR_START_TIMEOUT_S} s", hint=self.hint) from None

    def map(self, blocks: Sequence[Any], what: str) -> Generator[dict[str, np.ndarray], None, None]:
        """Each of ``blocks`` (Arrow tables) through one actor, batch by batch as they finish (any order),
        starting the actors first if they are not running. Any failure (a worker that raises or dies, a
        start or stall past its bound, the caller's own exception or early stop) closes the pool; a worker's
        is an :class:`EngineError` naming the stage and ``what``, raised after the other batches that had
        already finished are yielded (the caller keeps all that came back)."""
        if not blocks:
            return
        what = f"{what} on {self.workers} actors"
        if self.busy:
            raise RuntimeError(f"{self.stage}: one call at a time on a pool")
        self.busy = True
        try:
            if not self.started:
                self._start(what)
            ray = self.engine.connect()
            queue = iter(range(len(blocks)))
            pending: dict[Any, int] = {}  # result ref -> the actor it runs on

            def feed(actor: int) -> None:
                nxt = next(queue, None)
                if nxt is not None:
                    pending[self._actors[actor].run.remote(blocks[nxt])] = actor

            for _ in range(IN_FLIGHT):
                for actor in range(self.workers):
                    feed(actor)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=STALL_TIMEOUT_S)
                if not done:
                    raise EngineError(f"ray engine: {self.stage} failed ({what}): no batch finished within "
                                      f"{STALL_TIMEOUT_S:g} s", hint=self.hint)
                actor = pending.pop(done[0])
                try:
                    batch = ray.get(done[0], timeout=STALL_TIMEOUT_S)
                except Exception:
                    yield from self._finished(ray, pending)  # what else came back is still the caller's to keep
                    raise
                feed(actor)
                yield batch
        except HarnessError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise self._error(exc, what) from None
        except BaseException:  # the reader stopped early (GeneratorExit), an interrupt: nothing left running
            self.close()
            raise
        finally:
            self.busy = False

    @staticmethod
    def _finished(ray: Any, pending: dict[Any, int]) -> Iterator[dict[str, np.ndarray]]:
        """The batches of ``pending`` that already finished well (after another failed), without waiting."""
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in ready:
            try:
                batch = ray.get(ref, timeout=RELEASE_TIMEOUT_S)
            except Exception:
                continue
            yield batch

    def close(self) -> None:
        """Kill the actors and give their CPUs back (idempotent); the next :meth:`map` starts new ones."""
        actors, pg = self._actors, self._pg
        self._actors, self._pg = [], None
        _LIVE.discard(self)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if pg is None:
            return
        ray = self.engine._ray or sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            for a in actors:
                with contextlib.suppress(Exception):
                    ray.kill(a, no_restart=True)
        self.engine._release(pg)


def _remove_group(pg: Any) -> None:
    """A pool dropped without :meth:`WorkerPool.close`: its placement group removed (its actors with it)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        from ray.util import remove_placement_group

        with contextlib.suppress(Exception):
            remove_placement_group(pg)


class RayEngine:
    """Runs embedding, index building and actor pools (:meth:`pool`) on a Ray cluster for a stage or a run;
    :meth:`close` when done."""

    def __init__(self, config: ComputeEngine, *, actor: type[EncodeActor] | None = None,
                 start_timeout: float = START_TIMEOUT_S) -> None:
        require_ray()
        self.config = config
        self.actor = actor  # None: this module's EncodeActor when encoding (tests put a failing actor here)
        self.start_timeout = start_timeout
        self.started = False
        self._ray: Any = None
        self._pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()  # closed at close()

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

    def _reserve(self, bundles: int, cpus: float, what: str) -> Any:
        """A placement group of ``bundles`` x ``cpus`` CPUs, granted within :attr:`start_timeout` seconds (else
        removed and an :class:`EngineError`). Idle pools of this process are closed first if the cluster has
        too few CPUs free without theirs."""
        ray = self.connect()
        from ray.util import placement_group

        idle = [pool for pool in list(_LIVE) if not pool.busy]
        if idle and ray.available_resources().get("CPU", 0.0) < bundles * cpus:
            for pool in idle:
                pool.close()
        pg = placement_group([{"CPU": cpus}] * bundles, strategy="SPREAD")
        try:
            ray.get(pg.ready(), timeout=self.start_timeout)
        except ray.exceptions.GetTimeoutError:
            free = ray.available_resources().get("CPU", 0.0)
            self._release(pg)
            raise EngineError(f"ray engine: {what}: the cluster did not grant {bundles} x {cpus:g} CPUs within "
                              f"{self.start_timeout:g} s ({free:g} of {self.cpus():g} CPUs free)",
                              hint="free the cluster's CPUs, lower [engine] workers, or run with --engine local"
                              ) from None
        except BaseException:
            self._release(pg)
            raise
        return pg

    def _release(self, pg: Any) -> None:
        """Remove a placement group (killing whatever still runs in it) and wait, bounded, until it is gone."""
        ray = self._ray or sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return  # the cluster is gone, and the group with it
        from ray.util import placement_group_table, remove_placement_group

        try:
            remove_placement_group(pg)
        except Exception:  # already removed
            return
        deadline = time.monotonic() + RELEASE_TIMEOUT_S
        while placement_group_table(pg).get("state") != "REMOVED" and time.monotonic() < deadline:
            time.sleep(0.05)

    @contextlib.contextmanager
    def _reserved(self, bundles: int, cpus: float, what: str) -> Iterator[Any]:
        """:meth:`_reserve` for a ``with`` block, removed on exit (killing whatever still runs in it)."""
        pg = self._reserve(bundles, cpus, what)
        try:
            yield pg
        finally:
            self._release(pg)

    def cpus(self) -> float:
        return float(self.connect().cluster_resources().get("CPU", 1.0))

    def workers(self) -> int:
        """Actors of a pool: ``[engine] workers``, else one per CPU of the cluster."""
        return self.config.workers or max(1, int(self.cpus()))

    def close(self) -> None:
        """Close the pools this engine made (their CPUs given back), then shut the cluster down if this engine
        started it (never one it found running)."""
        for pool in list(self._pools):
            pool.close()
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

    # --- actor pools -------------------------------------------------------------------------------

    def pool(self, actor: type, kwargs: dict[str, Any], *, stage: str,
             hint: str = "fix the cause and run again, or run with --engine local", workers: int | None = None
             ) -> WorkerPool:
        """A :class:`WorkerPool` of ``workers`` (default :meth:`workers`) ``actor(**kwargs, threads=...)``,
        started at its first :meth:`WorkerPool.map` and kept until it (or this engine) is closed."""
        pool = WorkerPool(self, actor, kwargs, workers=workers or self.workers(), stage=stage, hint=hint)
        self._pools.add(pool)
        return pool

    def map_actors(self, blocks: Sequence[Any], actor: type, kwargs: dict[str, Any], *, batch_size: int, what: str,
                   stage: str, hint: str = "fix the cause and run again, or run with --engine local"
                   ) -> Iterator[dict[str, np.ndarray]]:
        """``blocks`` (Arrow tables) through Ray Data: ``map_batches`` over an actor pool of this call
        (``ActorPoolStrategy``, ``actor(**kwargs, threads=...)`` built once per actor, so its model loads once), batch
        by batch as they finish (any order). One placement group for the call (:meth:`_reserved`: bounded wait,
        idle scoring pools give way), no restarts or retries, the actors gone when the call ends however it ends;
        a worker that raises or dies is an :class:`EngineError` naming ``stage`` and its exception. One call
        embeds a whole corpus batch, so Ray Data's per-call start-up is paid once per batch; scoring, called once
        per chunk of cases, keeps a :class:`WorkerPool` for the run instead."""
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
        builds locally (:func:`harness.index._build_faiss`): trained on the driver (the seeded sample), filled by
        :meth:`fill_index`."""
        n, dim = vectors.shape
        index = train_index(empty_index(dim, n, recipe), vectors, recipe)
        step = max(1, SHARD_ROWS)
        return self.fill_index(index, (vectors[a:a + step] for a in range(0, n, step)), n, recipe)

    def fill_index(self, index: Any, batches: Iterable[np.ndarray], n: int, recipe: dict[str, Any]) -> Any:
        """``index`` (trained, empty) filled with the ``n`` vectors of ``batches`` (in order, any sizes), byte
        for byte what :func:`harness.index.fill` builds here. A mergeable layout (:func:`harness.index.mergeable`)
        of :data:`MIN_SHARD` x 2 vectors or more is filled by Ray tasks, one per shard of at most
        :data:`SHARD_ROWS` consecutive vectors, at most one per reserved CPU slot in flight, and each filled shard
        is merged into ``index`` in order as soon as it and those before it are back: the driver holds the
        shards in flight, never the corpus's vectors nor every shard. Other layouts (HNSW graphs, fast-scan,
        pre-transforms) are filled on the driver as the batches stream past, by :func:`harness.index.fill`."""
        slots = min(self.workers(), n // MIN_SHARD)
        if slots < 2 or not mergeable(index):
            return fill(index, batches, recipe)
        ray = self.connect()
        import faiss
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        rows = max(MIN_SHARD, min(SHARD_ROWS, -(-n // slots)))
        shards = -(-n // rows)
        per_task = min(1.0, self.cpus() / slots)
        what = f"building a {recipe['type']} index in {shards} shards"
        with self._reserved(slots, per_task, what) as pg:
            trained = ray.put(bytes(faiss.serialize_index(index).tobytes()))
            in_flight: collections.deque[Any] = collections.deque()

            def submit(i: int, vectors: np.ndarray) -> None:
                bundle = i % slots
                in_flight.append(ray.remote(_fill_shard).options(  # each in a reserved bundle: never starved
                    num_cpus=per_task, max_retries=0,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=bundle),
                ).remote(trained, vectors))

            def merge_oldest() -> None:
                ref = in_flight.popleft()
                try:
                    blob = ray.get(ref, timeout=STALL_TIMEOUT_S)
                except Exception as exc:
                    raise EngineError(f"ray engine: an index-building task failed ({recipe['type']}, {n} vectors "
                                      f"in {shards} shards): {_reason(exc)}", hint="run with --engine local") from None
                del ref
                merge_shards(index, [faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))])

            for i, shard in enumerate(add_batches(batches, rows)):
                if len(in_flight) >= slots:
                    merge_oldest()
                submit(i, np.ascontiguousarray(shard, dtype=np.float32))
                del shard
            while in_flight:
                merge_oldest()
        return index
