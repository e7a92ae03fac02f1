"""WorkerPool.map's order of events when a batch fails, against a scripted stand-in for Ray (no cluster: which
batch Ray reports first is not something a real cluster lets a test decide).

The oracle is the contract of :meth:`harness.engine.ray_engine.WorkerPool.map`: every batch that had finished
when a failure is seen reaches the caller before the :class:`EngineError`, none that never ran does, and the
pool is closed (actors killed, placement group removed) whatever the reader does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.engine.ray_engine import EngineError, WorkerPool


class _Ref:
    def __init__(self, block: int) -> None:
        self.block = block


class _Ray:
    """Every submitted batch has finished; ``wait`` reports them in submission order, as Ray's does."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.killed: list[int] = []

    def wait(self, refs: list[_Ref], *, num_returns: int = 1, timeout: float | None = None) -> tuple[list, list]:
        assert timeout is not None  # never an unbounded wait
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: _Ref, *, timeout: float | None = None) -> dict[str, Any]:
        assert timeout is not None  # never an unbounded get
        if ref.block in self.failing:
            raise ValueError(f"cannot check block {ref.block}")
        return {"block": ref.block}

    def is_initialized(self) -> bool:
        return True

    def kill(self, actor: _Actor, *, no_restart: bool = True) -> None:
        self.killed.append(actor.index)


class _Method:
    def __init__(self, sent: list[int]) -> None:
        self.sent = sent

    def remote(self, block: int) -> _Ref:
        self.sent.append(block)
        return _Ref(block)


class _Actor:
    def __init__(self, index: int, sent: list[int]) -> None:
        self.index = index
        self.run = _Method(sent)


class _Engine:
    def __init__(self, ray: _Ray) -> None:
        self._ray = ray
        self.released: list[str] = []

    def connect(self) -> _Ray:
        return self._ray

    def _release(self, pg: str) -> None:
        self.released.append(pg)


def _pool(failing: set[int]) -> tuple[WorkerPool, _Engine, list[int]]:
    engine = _Engine(_Ray(failing))
    pool = WorkerPool(engine, object, {}, workers=2, stage="a scoring worker", hint="run again")  # type: ignore[arg-type]
    sent: list[int] = []
    pool._pg = "group"  # as if started: two actors in their placement group
    pool._actors = [_Actor(0, sent), _Actor(1, sent)]
    return pool, engine, sent


def test_a_failed_batch_still_hands_over_the_batches_that_had_finished() -> None:
    pool, engine, sent = _pool(failing={0})
    got: list[int] = []
    batches: Iterator[dict[str, Any]] = pool.map(list(range(6)), "checking the groundedness of 6 batches")
    with pytest.raises(EngineError, match=r"ray engine: a scoring worker failed \(checking the groundedness of 6 "
                                          r"batches on 2 actors\): ValueError: cannot check block 0"):
        for batch in batches:
            got.append(int(batch["block"]))
    assert sent == [0, 1, 2, 3]  # two in flight per actor: blocks 4 and 5 never ran
    assert got == [1, 2, 3]  # block 0 failed first; the three that had finished still reached the caller
    assert engine._ray.killed == [0, 1] and engine.released == ["group"] and not pool.started and not pool.busy


def test_batches_before_a_failure_arrive_and_the_rest_never_run() -> None:
    pool, engine, sent = _pool(failing={3})
    got: list[int] = []
    with pytest.raises(EngineError, match=r"ValueError: cannot check block 3"):
        for batch in pool.map(list(range(8)), "checking"):
            got.append(int(batch["block"]))
    # 0, 1, 2 came back (each freeing its actor for 4, 5, 6); 3 failed; 4, 5, 6 had finished and are handed over
    assert sent == [0, 1, 2, 3, 4, 5, 6] and got == [0, 1, 2, 4, 5, 6]
    assert engine.released == ["group"] and not pool.started


def test_a_reader_that_stops_early_closes_the_pool() -> None:
    pool, engine, _ = _pool(failing=set())
    batches = pool.map(list(range(8)), "checking")
    assert next(batches) == {"block": 0}
    batches.close()
    assert engine._ray.killed == [0, 1] and engine.released == ["group"] and not pool.started and not pool.busy


def test_a_finished_call_keeps_the_pool_for_the_next() -> None:
    pool, engine, sent = _pool(failing=set())
    assert sorted(b["block"] for b in pool.map(list(range(5)), "checking")) == [0, 1, 2, 3, 4]
    assert pool.started and not pool.busy and engine.released == [] and engine._ray.killed == []
    assert sorted(b["block"] for b in pool.map(list(range(3)), "checking")) == [0, 1, 2]  # the same actors
    assert sent == [0, 1, 2, 3, 4, 0, 1, 2]
    pool.close()
    assert engine.released == ["group"]
