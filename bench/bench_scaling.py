"""Embedding throughput (docs/s) of all-MiniLM-L6-v2: the single-process path against Ray workers (1, 2),
over SciFact and synthetic 50k / 500k corpora of SciFact-like documents.

Each measurement is one fresh process (``python -m bench.bench_scaling --one ...``) that embeds a corpus's
documents through the project's own code: :class:`harness.embed.Embedder` locally, or the same Embedder
with :class:`harness.engine.ray_engine.RayEngine` (a new local Ray cluster of this machine's cores, started
before the clock starts and timed apart). The clock covers the model load(s) and every vector written to
a fresh cache, so both paths do the same work. Peak RSS is the whole process tree's (the driver, Ray's
raylet and workers), sampled every 0.2 s.

The synthetic corpora resample SciFact's sentences (seeded by the corpus size): each document takes a
SciFact document's sentence count and that many sentences drawn at random, so lengths follow SciFact's.
MiniLM on 2 cores embeds about 30 docs/s: 500k documents would take hours, so a corpus larger than
``BENCH_SCALING_PREFIX`` documents (default 20,000) is measured on its first that many documents, and the
output says so (``measured_docs`` against ``corpus_docs``). Environment variables shorten a run:

- ``BENCH_SCALING_PREFIX``: documents measured per corpus at most (SciFact included), default 20,000;
- ``BENCH_SCALING_CORPORA``: comma-separated of ``scifact,50k,500k`` (default all three);
- ``BENCH_SCALING_WORKERS``: comma-separated Ray worker counts (default ``1,2``);
- ``BENCH_SCALING_BATCH``: texts per Ray batch (default 256, ``[engine] batch_size``'s default).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.measure import OFFLINE
from harness.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
SIZES = {"scifact": 0, "50k": 50_000, "500k": 500_000}


def _scifact_texts() -> list[str]:
    """SciFact's documents as the harness embeds them (title + " " + text, empty parts skipped)."""
    out = []
    with SCIFACT.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            out.append(" ".join(p for p in (row.get("title", ""), row.get("text", "")) if p))
    return out


def synthetic_docs(size: int, base: list[str]) -> Iterator[str]:
    """``size`` SciFact-like documents, streamed: each takes a SciFact document's sentence count and draws
    that many of SciFact's sentences (seed ``size``)."""
    import numpy as np

    split = [re.split(r"(?<=[.!?])\s+", t) for t in base]
    sentences = [s for doc in split for s in doc if s]
    counts = np.array([len(doc) for doc in split])
    rng = np.random.default_rng(size)
    for _ in range(size):
        n = int(counts[rng.integers(len(counts))])
        yield " ".join(sentences[int(i)] for i in rng.integers(len(sentences), size=n))


def corpus(name: str, limit: int) -> tuple[list[str], int]:
    """(the first ``limit`` documents of corpus ``name``, its full size)."""
    base = _scifact_texts()
    if name == "scifact":
        return base[:limit], len(base)
    size = SIZES[name]
    out = []
    for i, text in enumerate(synthetic_docs(size, base)):
        if i >= limit:
            break
        out.append(text)
    return out, size


class _TreeRss:
    """Peak summed RSS (MB) of this process and its descendants, sampled every 0.2 s on a thread."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        import psutil

        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a worker that exited meanwhile
                total += p.memory_info().rss
        self.peak = max(self.peak, total / 2**20)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self) -> _TreeRss:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


class _Clock(Progress):
    """A progress sink that records (time, documents done) at every advance: the steady rate is the one
    after the first batch came back (model loads and pipeline start excluded)."""

    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.marks: list[tuple[float, int]] = []

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        done = [0]

        def advance(n: int = 1) -> None:
            done[0] += n
            self.marks.append((time.perf_counter(), done[0]))

        yield advance

    def steady(self) -> float | None:
        if len(self.marks) < 3:
            return None
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def measure_one(engine: str, workers: int, name: str, limit: int, batch: int) -> dict[str, Any]:
    """One measurement in this process: embed corpus ``name``'s first ``limit`` docs on ``engine``."""
    from harness.cache import Cache
    from harness.embed import Embedder
    from harness.evaluate import MINILM_URI
    from harness.manifest import resolve_uri
    from harness.types import ComputeEngine

    texts, size = corpus(name, limit)
    model_dir = resolve_uri(MINILM_URI)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp, _TreeRss() as rss:
        cache = Cache(Path(tmp) / "cache.sqlite")
        remote = None
        cluster_s = 0.0
        if engine == "ray":
            from harness.engine.ray_engine import RayEngine

            remote = RayEngine(ComputeEngine(kind="ray", workers=workers, batch_size=batch))
            t0 = time.perf_counter()
            remote.connect()
            cluster_s = time.perf_counter() - t0
        clock = _Clock()
        embedder = Embedder(model_dir, "bench", cache, remote=remote, progress=clock)
        t0 = time.perf_counter()
        vectors = embedder.embed(texts, remote_min=0 if remote is not None else None)
        seconds = time.perf_counter() - t0
        if remote is not None:
            remote.close()
        cache.close()
    assert vectors.shape[0] == len(texts) and embedder.encoded == len(texts)
    return {"engine": engine, "workers": workers if engine == "ray" else None, "corpus": name,
            "corpus_docs": size, "measured_docs": len(texts), "prefix": len(texts) < size,
            "seconds": round(seconds, 2), "docs_per_s": round(len(texts) / seconds, 2),
            "steady_docs_per_s": round(steady, 2) if (steady := clock.steady()) is not None else None,
            "batches": len(clock.marks),
            "cluster_start_s": round(cluster_s, 2), "peak_rss_mb": round(rss.peak, 1),
            "mean_chars": round(sum(map(len, texts)) / max(1, len(texts)), 1)}


def _run_child(engine: str, workers: int, name: str, limit: int, batch: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.bench_scaling", "--one", engine, str(workers), name, str(limit), str(batch)]
    env = {**os.environ, **OFFLINE}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {"engine": engine, "workers": workers, "corpus": name, "error": tail}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _env_list(name: str, default: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, default).split(",") if p.strip()]


def bench_scaling() -> dict[str, Any]:
    """Throughput per (corpus, engine, workers), the Ray path's overhead at 1 worker (single-process docs/s
    over Ray-1-worker docs/s), and per-core figures for projections."""
    if not SCIFACT.is_file():
        raise FileNotFoundError(f"SciFact corpus not found at {SCIFACT}")
    limit = int(os.environ.get("BENCH_SCALING_PREFIX", "20000"))
    corpora = _env_list("BENCH_SCALING_CORPORA", "scifact,50k,500k")
    workers = [int(w) for w in _env_list("BENCH_SCALING_WORKERS", "1,2")]
    batch = int(os.environ.get("BENCH_SCALING_BATCH", "256"))
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    rows = []
    for name in corpora:
        for engine, w in [("local", 1), *(("ray", w) for w in workers)]:
            print(f"scaling: {name} {engine}{'' if engine == 'local' else f' x{w}'} ...", file=sys.stderr, flush=True)
            rows.append(_run_child(engine, w, name, limit, batch))
            print(f"  {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    overhead = {}
    for name in corpora:
        by = {(r["engine"], r.get("workers")): r for r in rows if r["corpus"] == name and "docs_per_s" in r}
        if ("local", None) in by and ("ray", 1) in by:
            local, one = by[("local", None)], by[("ray", 1)]
            overhead[name] = {"wall": round(local["docs_per_s"] / one["docs_per_s"], 3),
                              "steady": round(local["steady_docs_per_s"] / one["steady_docs_per_s"], 3)
                              if local["steady_docs_per_s"] and one["steady_docs_per_s"] else None}
    local_rates = [r["steady_docs_per_s"] for r in rows if r["engine"] == "local" and r.get("steady_docs_per_s")]
    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (CPU, max_seq_length 256, batch 32)",
        "cores": cores, "ray_batch_size": batch, "prefix_limit": limit,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": (f"corpora larger than {limit} documents are measured on their first {limit} documents (a prefix "
                 "of the seeded stream); docs_per_s is over the whole embed call (model loading and cache writes "
                 "included, the Ray cluster's start not: cluster_start_s); steady_docs_per_s from the first batch "
                 "back to the last"),
        "runs": rows,
        "ray_overhead_at_1_worker": overhead,  # single-process docs/s over Ray-1-worker docs/s (>1: Ray slower)
        "local_docs_per_s_per_core": round(sum(local_rates) / len(local_rates) / cores, 2) if local_rates else None,
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        engine, workers, name, limit, batch = argv[1:6]
        print(json.dumps(measure_one(engine, int(workers), name, int(limit), int(batch))), flush=True)
        return
    print(json.dumps(bench_scaling(), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
