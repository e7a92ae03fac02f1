"""`make bench corpus`: peak RSS and time of `harness run` as its corpus grows (10k, 100k, 1M synthetic
documents), to show that a run no longer holds its corpus whole (0d373de: scanned a batch at a time, then read
from a content-addressed SQLite passage store), against the pre-change way of holding it, measured in the same
command.

Each size is its own project: ``n`` documents of SciFact-like length (a title of a few words and about 1,500
characters of text of seeded random words) and a fixed golden set of ``CASES`` (1,000) cases, each query a few
words of one of the first 10,000 documents (the corpus is generated a block at a time from a seed per block, so
every size starts with the same documents and the golden set is the same file at every size), with qrels naming
that document. Retrieval only: the weightless hashing embedder of ``DIM`` (64) dimensions, so the vectors
(``n * DIM * 4`` bytes, reported beside the RSS) do not dominate, and a flat index.

Per size, each a fresh subprocess measured by :func:`bench.measure.run_measured` (wall, peak RSS from
``wait4``, CPU):

- ``cold``: ``harness run --json`` on an empty ``.harness`` (scan, passage store build, embedding, index);
- ``warm``: the same run again, everything kept (the store stands in for the scan, the index is stored and the
  rankings are cached);
- ``warm_uncached``: again with an empty ``HARNESS_CACHE_DIR``, so the stored index is loaded and searched
  (what a warm run costs when its rankings are not cached, e.g. a new golden set over the same corpus);
- ``reference``: ``harness.golden.load_corpus(path)`` and ``{d.id: d for d in docs}``, how a run held its corpus
  before 0d373de.

Also per size: the corpus file's size, the passage store's, the index store's and the cache's size on disk
(the cache holds every document's embedding), the vectors' size, microseconds per document of the cold run,
the runs' stage seconds and ndcg@10. Then RSS(largest) / RSS(smallest) of each of the above and the vectors'
share of each run's peak RSS.

``BENCH_CORPUS_RECIPE`` picks the index (default ``flat``; see :data:`RECIPES`: ``hnsw32`` = HNSW32 with
ef_construction 200, ``ivf-fastscan`` = ``IVF256,PQ16x4fs``), ``BENCH_CORPUS_DIM`` the hashing embedder's width
(default :data:`DIM`; 384 is MiniLM's, where a 1M corpus's vectors are 1.5 GB) and ``BENCH_CORPUS_RUNS`` which
runs to measure (default ``cold,warm,warm_uncached,reference``; e.g. ``cold`` alone for an index build's peak
RSS). ``BENCH_CORPUS_SIZES`` (default ``10000,100000,1000000``) sets the sizes; ``BENCH_CORPUS_DIR`` keeps the
projects (corpora included: 1M documents is about 1.6 GB of JSONL) and the commands' output there instead of a
temporary folder that is deleted afterwards. Run from the project root: ``make bench corpus`` or
``python -m bench.bench_corpus``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.measure import OFFLINE, run_measured
from harness.testing.project import ProjectSpec
from harness.testing.project import write_project as build_project

CASES = 1000
DIM = 64
BLOCK = 10_000
"""Documents generated from one seed: the first block is the same at every size, and holds every case's document."""
VOCAB_SIZE = 20_000
POOL_WORDS = 1 << 20
"""Words of the seeded text pool that documents are cut from (about 7 MB of text)."""
SLICES = 4
"""Runs of consecutive pool words a document's text is made of, each at its own random place."""
REFERENCE = (
    "import sys\n"
    "from harness.golden import load_corpus\n"
    "docs = load_corpus(sys.argv[1])\n"
    "by_id = {d.id: d for d in docs}\n"
    "print(len(by_id))\n"
)
IMPORT_ONLY = "import harness.golden, harness.types\n"
RECIPES = {
    "flat": 'type = "flat"\n',
    "hnsw32": 'type = "hnsw"\nM = 32\nef_construction = 200\nef_search = 128\n',
    "ivf-fastscan": 'type = "factory"\nfactory = "IVF256,PQ16x4fs"\nnprobe = 16\n',
}
"""Index recipes by ``BENCH_CORPUS_RECIPE`` name."""
RUNS = ("cold", "warm", "warm_uncached", "reference")


class _Pool:
    """A seeded text of lowercase words (Zipf-ish frequencies) and where each word starts, so a run of ``k``
    words from word ``a`` is one slice: a document is a few slices, no per-word work and no JSON escaping."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        vocab = ["".join(rng.choices(letters, k=2 + int(rng.random() * 9))) for _ in range(VOCAB_SIZE)]
        words = [vocab[int(rng.paretovariate(1.1)) % VOCAB_SIZE] if rng.random() < 0.3 else rng.choice(vocab)
                 for _ in range(POOL_WORDS)]
        self.text = " ".join(words)
        starts, pos = [], 0
        for w in words:
            starts.append(pos)
            pos += len(w) + 1
        starts.append(pos)  # one past the last word's space
        self.starts = starts

    def run(self, a: int, k: int) -> str:
        return self.text[self.starts[a]:self.starts[a + k] - 1]


def _doc(pool: _Pool, rng: random.Random) -> tuple[str, str]:
    """A document's title (4-8 words) and text (``SLICES`` runs of 41-56 words: about 1,500 characters)."""
    last = POOL_WORDS - 80
    title = pool.run(rng.randrange(last), 4 + rng.randrange(5))
    text = " ".join(pool.run(rng.randrange(last), 41 + rng.randrange(16)) for _ in range(SLICES))
    return title, text


def write_corpus(path: Path, n: int, pool: _Pool, seed: int, wanted: dict[int, int]) -> dict[int, str]:
    """``n`` documents ``d0``.. as JSONL (block ``b`` generated from ``seed`` and ``b`` alone); the texts of
    the documents in ``wanted`` are returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    texts: dict[int, str] = {}
    with path.open("w", encoding="ascii", buffering=1 << 22) as fh:
        for b in range(0, n, BLOCK):
            rng = random.Random(seed * 1_000_003 + b // BLOCK)
            lines = []
            for i in range(b, min(n, b + BLOCK)):
                title, text = _doc(pool, rng)
                if i in wanted:
                    texts[i] = text
                lines.append(f'{{"id": "d{i}", "title": "{title}", "text": "{text}"}}\n')
            fh.write("".join(lines))
    return texts


def write_project(root: Path, n_docs: int, seed: int = 0, *, recipe: str = "flat", dim: int = DIM) -> Path:
    """A locked project of ``n_docs`` documents and the fixed golden set of ``CASES`` cases, its index the
    :data:`RECIPES` entry ``recipe`` over the hashing embedder of ``dim`` dimensions."""
    rng = random.Random(seed)
    picks = [rng.randrange(min(n_docs, BLOCK)) for _ in range(CASES)]
    pool = _Pool(seed)
    staged = root / "corpus.jsonl.tmp"
    texts = write_corpus(staged, n_docs, pool, seed, {d: 1 for d in picks})
    cases = []
    for i, d in enumerate(picks):
        words = texts[d].split(" ")
        start = rng.randrange(max(1, len(words) - 6))
        query = " ".join(words[start:start + 3 + rng.randrange(4)]) + f" q{i}"  # unique: no two share a cache key
        cases.append({"id": f"c{i}", "query": query, "relevance": {f"d{d}": 1}})
    spec = ProjectSpec(name="bench-corpus", golden_version=str(CASES), dim=dim, index_dir="", k=10,
                       metrics=("ndcg@10", "recall@10"), recipe=recipe)
    manifest = build_project(root, spec, docs=(), cases=cases, recipes={recipe: RECIPES[recipe]}, lock=False)
    os.replace(staged, root / "golden" / "corpus.jsonl")
    from harness.manifest import lock

    lock(manifest)
    return manifest


def _env(cache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"HARNESS_HOME", "HARNESS_CACHE_DIR", "CI"}}
    env.update(OFFLINE)
    if cache is not None:
        env["HARNESS_CACHE_DIR"] = str(cache)
    return env


def _size_mb(path: Path) -> float | None:
    if not path.exists():
        return None
    if path.is_file():
        return round(path.stat().st_size / 1e6, 1)
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def _measured(m: dict[str, Any]) -> dict[str, Any]:
    row = {k: m[k] for k in ("exit", "wall_s", "peak_rss_mb", "cpu_s")}
    if m["exit"] != 0:
        row["stderr_tail"] = m["stderr_tail"]
    return row


def measure_run(manifest: Path, log: Path, n: int, cache: Path | None = None) -> dict[str, Any]:
    """One `harness run --json` in a fresh process; a failed run is reported with its stderr's tail."""
    argv = [sys.executable, "-m", "harness.cli", "-q", "run", "--manifest", str(manifest), "--json"]
    m = run_measured(argv, manifest.parent, log, _env(cache))
    row = _measured(m)
    row["us_per_doc"] = round(1e6 * m["wall_s"] / n, 1)
    if m["exit"] == 0:
        s = json.loads(Path(m["stdout"]).read_text("utf-8"))
        row["stage_seconds"] = {k: round(v, 2) for k, v in s["stage_seconds"].items()}
        row["ndcg@10"] = s["aggregates"].get("ndcg@10")
        row["errors"] = s["counts"]["errors"]
    return row


def measure_python(code: str, args: list[str], cwd: Path, log: Path) -> dict[str, Any]:
    return _measured(run_measured([sys.executable, "-c", code, *args], cwd, log, _env(None)))


def bench_corpus() -> dict[str, Any]:
    sizes = [int(x) for x in os.environ.get("BENCH_CORPUS_SIZES", "10000,100000,1000000").split(",") if x.strip()]
    recipe = os.environ.get("BENCH_CORPUS_RECIPE", "flat")
    if recipe not in RECIPES:
        raise SystemExit(f"BENCH_CORPUS_RECIPE = {recipe!r}: expected one of {', '.join(RECIPES)}")
    dim = int(os.environ.get("BENCH_CORPUS_DIM", str(DIM)))
    runs = [r for r in os.environ.get("BENCH_CORPUS_RUNS", ",".join(RUNS)).split(",") if r.strip()]
    if not runs or set(runs) - set(RUNS):
        raise SystemExit(f"BENCH_CORPUS_RUNS = {runs!r}: expected some of {', '.join(RUNS)}")
    keep = os.environ.get("BENCH_CORPUS_DIR")
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    base.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1]
    rows: dict[str, Any] = {}
    try:
        result: dict[str, Any] = {"cases": CASES, "dim": dim, "index": recipe, "embedder": "hashing",
                                  "import_only": measure_python(IMPORT_ONLY, [], root, base / "import.log")}
        for n in sizes:
            folder = base / f"n{n}"
            shutil.rmtree(folder, ignore_errors=True)
            print(f"bench corpus: writing {n} documents", file=sys.stderr, flush=True)
            manifest = write_project(folder / "project", n, recipe=recipe, dim=dim)
            project = manifest.parent
            corpus = project / "golden" / "corpus.jsonl"
            row: dict[str, Any] = {"docs": n, "corpus_mb": _size_mb(corpus),
                                   "vectors_mb": round(n * dim * 4 / 1e6, 1)}
            row["avg_doc_chars"] = round(corpus.stat().st_size / n, 0)
            for name in [str(r) for r in ("cold", "warm") if r in runs]:
                print(f"bench corpus: {n} documents, {name} run", file=sys.stderr, flush=True)
                row[name] = measure_run(manifest, folder / f"{name}.log", n)
            store = project / ".harness" / "store"
            row["passage_store_mb"] = _size_mb(store / "corpora")
            row["index_store_mb"] = _size_mb(store / "indexes")
            row["cache_mb"] = _size_mb(project / ".harness" / "cache")  # the corpus's embeddings are cached too
            if "warm_uncached" in runs:
                print(f"bench corpus: {n} documents, warm run, rankings not cached", file=sys.stderr, flush=True)
                row["warm_uncached"] = measure_run(manifest, folder / "warm_uncached.log", n, folder / "empty-cache")
            if "reference" in runs:
                print(f"bench corpus: {n} documents, reference (load_corpus + dict)", file=sys.stderr, flush=True)
                row["reference"] = measure_python(REFERENCE, [str(corpus)], root, folder / "reference.log")
            for name in runs:
                rss = row[name]["peak_rss_mb"]
                row[name]["vectors_share_of_rss"] = round(row["vectors_mb"] / rss, 3) if rss else None
            rows[str(n)] = row
            print(json.dumps({n: row}), file=sys.stderr, flush=True)
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)  # the next corpus needs the room, not this one
        result["sizes"] = rows
        if len(sizes) > 1:
            small, large = rows[str(min(sizes))], rows[str(max(sizes))]
            result["docs_ratio"] = max(sizes) // min(sizes)
            result["rss_ratio_largest_to_smallest"] = {
                name: round(large[name]["peak_rss_mb"] / small[name]["peak_rss_mb"], 2)
                for name in runs}
        if len(sizes) > 1 and "cold" in runs:
            result["cold_rss_less_vectors_ratio"] = round(
                (large["cold"]["peak_rss_mb"] - large["vectors_mb"])
                / (small["cold"]["peak_rss_mb"] - small["vectors_mb"]), 2)
            result["us_per_doc_cold_ratio_largest_to_smallest"] = round(
                large["cold"]["us_per_doc"] / small["cold"]["us_per_doc"], 2)
        return result
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(bench_corpus(), indent=2))
