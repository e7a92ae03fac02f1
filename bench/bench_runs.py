"""`make bench runs`: peak RSS and time of `harness run` at 10k, 100k and 1M synthetic cases (retrieval only,
the weightless hashing embedder), to show that a run's memory stays flat as its cases grow.

Each size is its own project: the same corpus of ``BENCH_RUNS_DOCS`` (3,000) synthetic documents and a golden
set of that many cases (each query a few words of one document, with qrels naming that document and a second
one, so ndcg/recall/mrr are real numbers; two tag keys, ``topic`` with 8 values and ``lang`` with 3). Each run
is a fresh ``harness run --json`` subprocess (:func:`bench.measure.run_measured`: wall time, peak RSS, CPU from
``wait4``) on an empty cache. Reported per size: peak RSS, wall and CPU seconds, microseconds per case, the
run's table and cache sizes; then RSS(largest)/RSS(smallest) (target: about 1x) and the time per case's ratio.

With a second run of the largest project (its cache warm, so only storing and scoring are measured again),
``harness diff`` and ``harness gate`` between the two runs are measured too (``BENCH_RUNS_COMPARE=0`` skips).

``BENCH_RUNS_SIZES`` (default ``10000,100000,1000000``) sets the sizes; ``BENCH_RUNS_DIR`` keeps the projects
and the commands' output there instead of a temporary folder. Run from the project root:
``make bench runs`` or ``python -m bench.bench_runs``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.measure import OFFLINE, run_measured
from harness.testing.project import ProjectSpec
from harness.testing.project import write_project as build_project

ROOT = Path(__file__).resolve().parents[1]
VOCAB_SIZE = 5000
TOPICS = [f"t{i}" for i in range(8)]
LANGS = ["en", "de", "fr"]
GATES = """
[[gates]]
metric = "ndcg@10"
max_drop = 0.02

[[gates]]
metric = "recall@10"
segment = "topic=*"
max_abs_drop = 0.05
"""


def _words(rng: random.Random, vocab: list[str], n: int) -> list[str]:
    return [vocab[int(rng.paretovariate(1.1)) % len(vocab)] if rng.random() < 0.3 else rng.choice(vocab)
            for _ in range(n)]


def write_project(root: Path, n_cases: int, n_docs: int, seed: int = 0) -> Path:
    """A locked project of ``n_cases`` cases over ``n_docs`` documents (files written a line at a time)."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(VOCAB_SIZE)]
    texts: list[list[str]] = []

    def docs() -> Iterator[dict[str, str]]:
        for i in range(n_docs):
            words = _words(rng, vocab, 40 + rng.randrange(60))
            texts.append(words)
            yield {"id": f"d{i}", "title": " ".join(words[:4]), "text": " ".join(words)}

    def cases() -> Iterator[dict[str, Any]]:
        for i in range(n_cases):
            d = rng.randrange(n_docs)
            words = texts[d]
            start = rng.randrange(max(1, len(words) - 6))
            query = " ".join(words[start:start + 3 + rng.randrange(4)]) + f" q{i}"  # unique: no two share a cache key
            other = rng.randrange(n_docs)
            rel = {f"d{d}": 2} | ({f"d{other}": 1} if other != d else {})
            tags = {"topic": TOPICS[d % len(TOPICS)], "lang": LANGS[rng.randrange(len(LANGS))]}
            yield {"id": f"c{i}", "query": query, "relevance": rel, "tags": tags}

    spec = ProjectSpec(name="bench-runs", golden_version=str(n_cases), dim=128, index_dir="", k=10,
                       metrics=("ndcg@10", "recall@10", "mrr@10", "map"), tail=GATES)
    return build_project(root, spec, docs=docs(), cases=cases(), recipes={"flat": 'type = "flat"\n'})


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"HARNESS_HOME", "CI"}}
    env.update(OFFLINE, HARNESS_CACHE_DIR=str(cache))
    return env


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "-q", *args]


def _size_mb(path: Path) -> float:
    if path.is_file():
        return round(path.stat().st_size / 1e6, 1)
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def measure_run(manifest: Path, cache: Path, log: Path) -> dict[str, Any]:
    """One `harness run --json` in a fresh process: the measurement and the run's summary."""
    res = run_measured(_harness("run", "--manifest", str(manifest), "--json"), manifest.parent, log, _env(cache))
    if res["exit"] != 0:
        raise RuntimeError(f"harness run exited {res['exit']}: {res['stderr_tail']}")
    data = json.loads(Path(res["stdout"]).read_text("utf-8"))
    header = Path(data["path"])
    table = header.with_suffix(".parquet")
    return {"measured": res, "summary": data, "header": header,
            "table_mb": _size_mb(table) if table.exists() else None, "cache_mb": _size_mb(cache)}


def compare_hook(manifest: Path, cache: Path, first: dict[str, Any], out: Path) -> dict[str, Any]:
    """`harness diff` and `harness gate` between ``first`` and a second run of the same project, each measured
    in a fresh process (the second run's cache is warm: retrieval is cached, storing and scoring are not)."""
    second = measure_run(manifest, cache, out / "second.log")
    base, head = str(first["header"]), str(second["header"])
    result: dict[str, Any] = {"second_run": _row(second, int(second["summary"]["counts"]["cases"]))}
    for name, argv in (("diff", _harness("diff", base, head, "--json")),
                       ("gate", _harness("gate", "--manifest", str(manifest), "--base", base, "--format", "json"))):
        res = run_measured(argv, manifest.parent, out / f"{name}.log", _env(cache))
        result[name] = {k: res[k] for k in ("exit", "wall_s", "peak_rss_mb", "cpu_s")}
        if res["exit"] not in (0, 1):
            result[name]["stderr_tail"] = res["stderr_tail"]
    return result


def _row(r: dict[str, Any], n: int) -> dict[str, Any]:
    m, s = r["measured"], r["summary"]
    return {"cases": n, "peak_rss_mb": m["peak_rss_mb"], "wall_s": m["wall_s"], "cpu_s": m["cpu_s"],
            "us_per_case": round(1e6 * m["wall_s"] / n, 1), "stage_seconds": {k: round(v, 2) for k, v in
                                                                             s["stage_seconds"].items()},
            "table_mb": r["table_mb"], "cache_mb": r["cache_mb"],
            "ndcg@10": s["aggregates"].get("ndcg@10"), "errors": s["counts"]["errors"]}


def bench_runs() -> dict[str, Any]:
    sizes = [int(x) for x in os.environ.get("BENCH_RUNS_SIZES", "10000,100000,1000000").split(",") if x.strip()]
    n_docs = int(os.environ.get("BENCH_RUNS_DOCS", "3000"))
    keep = os.environ.get("BENCH_RUNS_DIR")
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench-runs-"))
    base.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    last: tuple[Path, Path, dict[str, Any]] | None = None
    try:
        for n in sizes:
            folder = base / f"n{n}"
            shutil.rmtree(folder, ignore_errors=True)
            manifest = write_project(folder / "project", n, n_docs)
            cache = folder / "cache"
            print(f"bench runs: {n} cases", file=sys.stderr, flush=True)
            r = measure_run(manifest, cache, folder / "run.log")
            rows[str(n)] = _row(r, n)
            print(json.dumps({n: rows[str(n)]}), file=sys.stderr, flush=True)
            last = (manifest, cache, r)
        result: dict[str, Any] = {"docs": n_docs, "runs": rows}
        if len(sizes) > 1:
            small, large = rows[str(min(sizes))], rows[str(max(sizes))]
            result["rss_ratio_largest_to_smallest"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)
            result["us_per_case_ratio_largest_to_smallest"] = round(large["us_per_case"] / small["us_per_case"], 3)
            result["cases_ratio"] = max(sizes) // min(sizes)
        if last is not None and os.environ.get("BENCH_RUNS_COMPARE", "1") != "0":
            manifest, cache, first = last
            result["compare_largest"] = compare_hook(manifest, cache, first, manifest.parent.parent)
        return result
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(bench_runs(), indent=2))
