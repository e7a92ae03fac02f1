"""Benchmark: ``harness metrics`` vs pytrec_eval on a synthetic 10,000-query x 1,000-doc TREC run.

Both sides start from the files (parse + evaluate the same measures: trec_eval's all_trec measures
that harness implements) in this process; the result is a ratio, never a timed assertion. The run
has tied scores (broken by doc id) and graded qrels with unretrieved judged documents.
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from pathlib import Path

import numpy as np

PYTREC_MEASURES = {
    "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank", "P", "recall", "ndcg", "ndcg_cut",
    "map_cut", "success",
}  # fmt: skip
_CORPUS = 10_000_000
_STRIDE = 9_973


def _put_digits(out: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """Write ``values`` as zero-padded decimal ASCII into ``out[:, col:col + width]``."""
    for k in range(width):
        out[:, col + k] = (values // 10 ** (width - 1 - k)) % 10 + 48


def _put_text(out: np.ndarray, col: int, text: bytes) -> None:
    out[:, col : col + len(text)] = np.frombuffer(text, dtype=np.uint8)


def write_synthetic(directory: Path, n_queries: int, depth: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``qrels.txt`` and ``run.txt`` (fixed-width lines, built with numpy) into ``directory``."""
    if depth * _STRIDE >= _CORPUS:
        raise ValueError(f"depth {depth} too large for the synthetic corpus")
    rng = np.random.default_rng(seed)
    qw = max(len(str(n_queries - 1)), 5)
    base = rng.integers(0, _CORPUS, n_queries)
    docs = (base[:, None] + _STRIDE * np.arange(depth)[None, :]) % _CORPUS
    scores = -np.sort(-rng.integers(0, 10**6, (n_queries, depth)), axis=1)  # ties: ~0.5 pair per query
    n = n_queries * depth
    # "q<qid> Q0 d<doc> <rank> <ss.ssss> run\n"
    width = 1 + qw + 5 + 8 + 1 + 4 + 1 + 7 + 5
    lines = np.empty((n, width), dtype=np.uint8)
    q = np.repeat(np.arange(n_queries), depth)
    c = 0
    _put_text(lines, c, b"q")
    _put_digits(lines, c + 1, q, qw)
    c += 1 + qw
    _put_text(lines, c, b" Q0 d")
    _put_digits(lines, c + 5, docs.ravel(), 8)
    c += 13
    _put_text(lines, c, b" ")
    _put_digits(lines, c + 1, np.tile(np.arange(1, depth + 1), n_queries), 4)
    c += 5
    _put_text(lines, c, b" ")
    flat = scores.ravel()
    _put_digits(lines, c + 1, flat // 10**4, 2)
    _put_text(lines, c + 3, b".")
    _put_digits(lines, c + 4, flat % 10**4, 4)
    c += 8
    _put_text(lines, c, b" run\n")
    run_path = directory / "run.txt"
    lines.tofile(run_path)
    del lines
    # qrels: 10 judged retrieved docs (grades 0-3) and 10 judged unretrieved docs per query
    judged_ret = np.take_along_axis(docs, rng.integers(0, depth, (n_queries, 10)), axis=1)
    judged_other = rng.integers(0, _CORPUS, (n_queries, 10))
    jd = np.concatenate((judged_ret, judged_other), axis=1).ravel()
    jq = np.repeat(np.arange(n_queries), 20)
    _, first = np.unique(jq * _CORPUS + jd, return_index=True)
    jq, jd = jq[first], jd[first]
    grades = rng.integers(0, 4, len(jq))
    qlines = np.empty((len(jq), 1 + qw + 4 + 8 + 3), dtype=np.uint8)
    _put_text(qlines, 0, b"q")
    _put_digits(qlines, 1, jq, qw)
    _put_text(qlines, 1 + qw, b" 0 d")
    _put_digits(qlines, 5 + qw, jd, 8)
    _put_text(qlines, 13 + qw, b" ")
    _put_digits(qlines, 14 + qw, grades, 1)
    _put_text(qlines, 15 + qw, b"\n")
    qrels_path = directory / "qrels.txt"
    qlines.tofile(qrels_path)
    return qrels_path, run_path


def _time_harness(qrels_path: Path, run_path: Path) -> tuple[float, dict[str, float]]:
    from harness.metrics.trec import evaluate_files, parse_measures

    gc.collect()
    t0 = time.perf_counter()
    result = evaluate_files(qrels_path, run_path, parse_measures(["all_trec"]))
    elapsed = time.perf_counter() - t0
    return elapsed, {tv.name: tv.summary for tv in result.values}


def _time_pytrec(qrels_path: Path, run_path: Path) -> tuple[float, dict[str, float]]:
    import pytrec_eval

    gc.collect()
    t0 = time.perf_counter()
    with open(qrels_path) as f:
        qrels = pytrec_eval.parse_qrel(f)
    with open(run_path) as f:
        run = pytrec_eval.parse_run(f)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES).evaluate(run)
    elapsed = time.perf_counter() - t0
    names = next(iter(per_query.values())).keys()
    means = {
        name: float(np.mean([v[name] for v in per_query.values()]))
        * (len(per_query) if name.startswith("num_") else 1)
        for name in names
    }
    return elapsed, means


def bench_metrics(n_queries: int = 10_000, depth: int = 1_000, seed: int = 0) -> dict[str, float]:
    """Time parse + evaluate from files for harness and pytrec_eval; ``ratio`` = harness / pytrec_eval.

    Also reports ``max_abs_diff``, the largest difference between the two tools' summary values
    over the shared measures (a correctness check, expected below 1e-9).
    """
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        qrels_path, run_path = write_synthetic(Path(tmp), n_queries, depth, seed)
        harness_s, ours = _time_harness(qrels_path, run_path)
        pytrec_s, theirs = _time_pytrec(qrels_path, run_path)
    shared = sorted(set(ours) & set(theirs))
    max_diff = max((abs(ours[k] - theirs[k]) for k in shared), default=float("nan"))
    return {
        "harness_s": round(harness_s, 3),
        "pytrec_eval_s": round(pytrec_s, 3),
        "ratio": round(harness_s / pytrec_s, 3),
        "run_lines": n_queries * depth,
        "measures_compared": len(shared),
        "max_abs_diff": max_diff,
    }


if __name__ == "__main__":
    print(json.dumps(bench_metrics(), indent=2))
